"""Language modelling with truncated BPTT: word level (PTB) and character level.

The train stream is cut into ``batch_size`` parallel rows walked in windows of ``bptt``
steps (:func:`seqjax.data.lm.bptt_windows`); the recurrent carry is threaded from one
window to the next (no gradient across windows) and reset at the start of each epoch and
of each evaluation. Evaluation counts every token of the split exactly once.

Metrics: ``loss`` (nats per token), ``ppl`` for words, ``bpc`` (bits per character) and
``nats_per_char`` for characters.
"""
from __future__ import annotations

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import config as config_lib
from seqjax.data import vbptt
from seqjax.data.lm import LMCorpus, bptt_windows, corpus_unit, load_lm_corpus
from seqjax.data.vocab import Vocab
from seqjax.errors import UsageError
from seqjax.models import build
from seqjax.models.language_model import LanguageModel
from seqjax.tasks.base import Task, synthetic_vocab


def lm_config():
    """Base config of ``task=lm`` (experiments/ptb_lm.py, experiments/char_lm.py). LM keys:

    data.source          ptb | ptb_char | shakespeare | toy | text | csv | json | parquet | disk | hub:NAME
                         (seqjax/config.py OPTIONS); the text is data.text_column of every row
    data.level           word | char: the unit of user text (the built-in corpora fix their own)
    data.bptt            truncated-BPTT window (time steps per step)
    data.variable_bptt   q >= 1: AWD-LSTM's random window lengths around data.bptt, rounded to a
                         multiple of q (1: the paper's), lr scaled by length; 0: off
    data.test_batch_size parallel streams for the test split (0: data.eval_batch_size)
    data.max_tokens      keep the first N tokens of each split (0: all)
    data.sum_over_time   objective summed over the BPTT steps, averaged over the batch
                         (TF sequence_loss, Zaremba's "lr 1") instead of the per-token mean
    model.embed          embedding size
    model.tie_weights    softmax shares the embedding matrix
    model.input_dropout  dropout on the embedded inputs (-1: model.dropout; AWD-LSTM's dropouti)
    model.output_dropout dropout on the last layer's outputs (-1: model.dropout; AWD-LSTM's dropout)
    model.word_dropout   embedding dropout: whole words dropped per batch (AWD-LSTM's dropoute)
    sample.prompt        prompt of the sample written to summary.json (char models)
    sample.length        characters sampled
    sample.temperature   sampling temperature (0: greedy)
    sample.prompt_on_finish  write a sample into summary.json at the end
    """
    c = config_lib.base_config()
    c.task = "lm"
    c.data.update(dict(source="ptb", level="word", bptt=20, test_batch_size=0, max_tokens=0,
                       sum_over_time=False, variable_bptt=0))
    c.model.update(dict(embed=200, tie_weights=False, input_dropout=-1.0, output_dropout=-1.0,
                        word_dropout=0.0))
    c.sample = dict(prompt="", length=300, temperature=0.8, prompt_on_finish=True)
    return c


#: vocabulary sizes of the built-in corpora (what a synthetic stream of their shapes uses)
CORPUS_VOCAB = {"ptb": 10000, "ptb_char": 50, "shakespeare": 65, "toy": 64}
CHAR_CORPORA = ("ptb_char", "shakespeare")
#: the corpus's token unit and the ids its training text lacks, for :meth:`LanguageModelTask.from_run`
LM_FILE = "lm.json"


class LanguageModelTask(Task):
    stateful = True

    def __init__(self, cfg, data_dir=None, corpus: LMCorpus | None = None, unseen: list[int] | None = None):
        """Loads the corpus, or takes ``corpus`` (:meth:`synthetic`, :meth:`from_run`);
        ``unseen``: ids the training text lacks (default: counted in ``corpus.train``)."""
        super().__init__(cfg, data_dir)
        d = cfg.data
        self.corpus = corpus or load_lm_corpus(d, data_dir, cfg.seed)
        self.word = self.corpus.level == "word"
        self.main_metric = "ppl" if self.word else "bpc"
        self._windows = {}
        if unseen is None:
            unseen = np.flatnonzero(np.bincount(self.corpus.train, minlength=len(self.corpus.vocab)) == 0)
        #: bool [V]: tokens that sampling may generate (those of the training text)
        self.allowed = np.ones(len(self.corpus.vocab), bool)
        self.allowed[np.asarray(unseen, np.int64)] = False

    @classmethod
    def from_run(cls, workdir, cfg) -> LanguageModelTask:
        """The task of a run directory for sampling: ``vocab.json`` and ``lm.json`` (the
        corpus's token unit and the ids its training text lacks), no corpus read. A run
        without ``lm.json`` takes the unit from its config and never samples ``<unk>``."""
        workdir = pathlib.Path(workdir)
        vocab = Vocab.load(workdir / "vocab.json")
        try:
            info = json.loads((workdir / LM_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            info = corpus_unit(cfg.data)
            info["unseen"] = [vocab.unk_id] if vocab.unk_id is not None else []
        empty = np.zeros(0, np.int32)
        corpus = LMCorpus(empty, empty, empty, vocab, info["level"], str(cfg.data.source), info["unit"],
                          info["space"])
        return cls(cfg, corpus=corpus, unseen=info["unseen"])

    @classmethod
    def synthetic(cls, cfg):
        """Random token streams (a couple of train windows) over a vocabulary of the corpus's size."""
        d = cfg.data
        level = "char" if d.source in CHAR_CORPORA or d.level == "char" else "word"
        v = CORPUS_VOCAB.get(d.source, 100 if level == "char" else 10000)
        rng = np.random.default_rng(cfg.seed)
        n = d.batch_size * d.bptt * 2 + 1
        stream = lambda: rng.integers(0, v, size=n).astype(np.int32)  # noqa: E731
        return cls(cfg, corpus=LMCorpus(stream(), stream(), stream(), synthetic_vocab(v), level, d.source))

    def synthetic_batch(self, rng, batch_size):
        """``inputs``, ``targets`` int32 ``[batch_size, data.bptt]``, ``weight`` all ones."""
        shape, v = (batch_size, self.cfg.data.bptt), len(self.corpus.vocab)
        return {"inputs": rng.integers(0, v, shape).astype(np.int32),
                "targets": rng.integers(0, v, shape).astype(np.int32),
                "weight": np.ones(shape, np.float32)}

    # -- model -------------------------------------------------------------------------
    @functools.cache
    def model(self) -> LanguageModel:
        return build.language_model(self.cfg, len(self.corpus.vocab))

    def initial_carry(self, batch_size):
        return build.recurrent_spec(self.cfg).zero_carry(batch_size)

    def init_batch(self):
        if len(self.corpus.train) == 0:  # loaded for sampling (:meth:`from_run`): the shapes only
            shape = (self.cfg.data.batch_size, self.cfg.data.bptt)
            return {"inputs": np.zeros(shape, np.int32), "targets": np.zeros(shape, np.int32),
                    "weight": np.zeros(shape, np.float32)}
        return self.windows("train")[0]

    def model_inputs(self, batch, carry):
        return {"tokens": batch["inputs"], "carry": carry}

    # -- data --------------------------------------------------------------------------
    def windows(self, split: str):
        if split not in self._windows:
            d = self.cfg.data
            b = {"train": d.batch_size, "valid": d.eval_batch_size or d.batch_size,
                 "test": d.test_batch_size or d.eval_batch_size or d.batch_size}[split]
            self._windows[split] = bptt_windows(self.corpus.split(split), b, d.bptt,
                                                cover_all=split != "train")
        return self._windows[split]

    def steps_per_epoch(self):
        return len(self.train_windows(0))

    def train_batches(self, epoch, start=0):
        w = self.train_windows(epoch)
        return (w[k] for k in range(start, len(w)))

    def train_windows(self, epoch: int):
        """The train windows of ``epoch``: ``data.bptt`` long, or with ``data.variable_bptt``
        AWD-LSTM's random lengths, drawn per epoch (:mod:`seqjax.data.vbptt`)."""
        d = self.cfg.data
        if d.get("variable_bptt", 0) <= 0:
            return self.windows("train")
        return vbptt.epoch_windows(self.corpus.train, d.batch_size, d.bptt, self.cfg.seed, epoch,
                                   int(d.variable_bptt))

    def eval_batches(self, split):
        return iter(self.windows(split))

    def tokens(self, batch):
        return int(batch["weight"].sum())

    # -- loss --------------------------------------------------------------------------
    def loss(self, params, batch, carry, rng, train):
        w = batch["weight"]
        # the model computes the weighted NLL sum itself (fused read-out: no [B, T, V] logits)
        nll, carry = self.apply_model(
            train, {"params": params}, batch["inputs"], carry, deterministic=not train, rngs={"dropout": rng},
            targets=batch["targets"], weights=w,
        )
        metrics = {"loss_sum": nll, "count": w.sum()}
        if self.cfg.data.sum_over_time:
            # TF sequence_loss(average_across_timesteps=False): summed over the BPTT steps,
            # averaged over the batch (Zaremba's "lr 1" is on this scale).
            objective = nll / w.shape[0]
        else:
            objective = nll / jnp.maximum(w.sum(), 1.0)
        carry = jax.lax.stop_gradient(carry)
        return objective, (metrics, carry)

    def objective_weight(self, batch, metrics):
        """Rows with ``data.sum_over_time`` (the objective is a per-row sum), else tokens."""
        return jnp.float32(batch["weight"].shape[0]) if self.cfg.data.sum_over_time else metrics["count"]

    def summarize(self, sums):
        nats = sums["loss_sum"] / max(sums["count"], 1.0)
        if self.word:
            return {"loss": nats, "ppl": math.exp(min(nats, 50.0))}
        return {"loss": nats, "bpc": nats / math.log(2), "nats_per_char": nats}

    # -- run directory -----------------------------------------------------------------
    def save_assets(self, workdir):
        """``vocab.json`` and ``lm.json`` (:meth:`from_run` samples from them alone)."""
        workdir = pathlib.Path(workdir)
        self.corpus.vocab.save(workdir / "vocab.json")
        c = self.corpus
        info = {"level": c.level, "unit": c.unit, "space": c.space,
                "unseen": np.flatnonzero(~self.allowed).tolist()}
        (workdir / LM_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")

    def final_report(self, params):
        if self.word or not self.cfg.sample.prompt_on_finish:
            return {}
        text = sample(self, params, self.cfg.sample.prompt, self.cfg.sample.length,
                      self.cfg.sample.temperature, 0)
        return {"sample": {"prompt": self.cfg.sample.prompt, "temperature": self.cfg.sample.temperature,
                           "text": text}}


# ----------------------------------------------------------------------------- sampling


def _start_ids(task: LanguageModelTask, prompt: str) -> np.ndarray:
    """Prompt -> ids; unknown tokens map to ``<unk>`` (or are dropped when there is none)."""
    vocab: Vocab = task.corpus.vocab
    ids = vocab.encode(task.corpus.text_to_tokens(prompt)) if prompt else np.zeros(0, np.int32)
    if len(ids) == 0:  # an empty prompt starts from the start-of-line token
        start = vocab.eos_id if vocab.eos_id is not None else vocab.stoi.get("\n", 0)
        ids = np.array([start], np.int32)
    return ids


@functools.partial(jax.jit, static_argnames=("model", "length", "greedy"))
def _generate(model, params, prompt, carry, rng, temperature, allowed, *, length: int, greedy: bool):
    """Run ``prompt [1, P]`` then sample ``length`` tokens in one ``lax.scan`` -> ``[length]``.

    ``allowed [V]`` bool: tokens that may be generated.
    """
    logits, carry = model.apply({"params": params}, prompt, carry)

    def step(state, key):
        last_logits, carry = state
        last_logits = jnp.where(allowed, last_logits, -jnp.inf)
        if greedy:
            tok = jnp.argmax(last_logits, -1)
        else:
            tok = jax.random.categorical(key, last_logits / temperature, axis=-1)
        logits, carry = model.apply({"params": params}, tok[:, None], carry)
        return (logits[:, -1], carry), tok[0]

    _, toks = jax.lax.scan(step, (logits[:, -1], carry), jax.random.split(rng, length))
    return toks


def sample(task: LanguageModelTask, params, prompt: str, length: int, temperature: float, seed: int) -> str:
    """Continue ``prompt`` by ``length`` tokens; temperature 0 is greedy. Returns the continuation."""
    if length < 0 or temperature < 0:
        raise UsageError("--length and --temperature must be >= 0")
    ids = _start_ids(task, prompt)
    # never generate a token the training text does not contain (e.g. <unk> of a char model)
    allowed = task.allowed
    toks = _generate(
        task.model(),
        params,
        jnp.asarray(ids)[None],
        task.initial_carry(1),
        jax.random.PRNGKey(seed),
        jnp.float32(max(temperature, 1e-6)),
        jnp.asarray(allowed),
        length=length,
        greedy=temperature == 0,
    )
    return task.corpus.tokens_to_text(task.corpus.vocab.decode(np.asarray(toks)))
