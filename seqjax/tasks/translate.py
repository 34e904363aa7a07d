"""Translation (Tatoeba English -> X): a seq2seq model trained with teacher forcing.

A batch is ``{"src": int32 [B, L], "src_lengths": int32 [B], "tgt": int32 [B, L + 1],
"weight": float32 [B]}`` with ``tgt = <sos> y_1 .. y_n <eos> <pad>..``; the decoder reads
``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``. Pairs are length-bucketed by
``max(len(src), len(tgt) - 1)`` (``seqjax.data.batching``), so the train step compiles
once per bucket boundary; rows that only fill a bucket's last batch have weight 0.

Loss: token cross-entropy averaged over the real (non-padding) target tokens of the batch
(``<eos>`` included). Metrics (as sums, so every token counts once): ``loss``, ``ppl``,
``acc`` (token accuracy under teacher forcing).

At the end of training (:meth:`TranslateTask.final_report`) the best parameters translate
the held-out test split with greedy decoding and beam search (``decode.beam``), both
batched and jit-compiled (``seqjax.core.decoding``); sacrebleu gives corpus BLEU and chrF
against the references (lowercased on both sides at word level, where the model's
vocabulary is lowercase; :mod:`seqjax.core.evaluation`), and the wall time per sentence is
recorded. The sentences of the Keras example (:data:`EXAMPLE_SENTENCES`) are translated too.

The run directory gets ``src_vocab.json`` and ``tgt_vocab.json``, so ``seqjax translate
WORKDIR TEXT...`` needs the run alone, not the dataset. Unknown characters or words map
to ``<unk>``; inputs longer than ``data.max_len`` tokens are truncated with a warning.
"""
from __future__ import annotations

import functools
import pathlib
import time
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from seqjax.core import decoding, evaluation
from seqjax.data import pairs, sources
from seqjax.data.batching import pad_batch
from seqjax.data.vocab import EOS, PAD, SOS, UNK, Vocab
from seqjax.errors import UsageError
from seqjax.models import build
from seqjax.models.seq2seq import Seq2Seq
from seqjax.tasks.base import BucketedTask, bucket_boundaries, synthetic_vocab

SRC_VOCAB_FILE = "src_vocab.json"
TGT_VOCAB_FILE = "tgt_vocab.json"

#: The sentences the Keras character-level seq2seq example translates.
EXAMPLE_SENTENCES = ("You'll do it now!", "Are you wrong", "Can you help me?", "I hate you all",
                  "I liked that hair")


def boundaries(cfg: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Padded source/decoder lengths: ``data.buckets`` below ``data.max_len + 1``, then
    ``data.max_len + 1`` (a target of ``max_len`` tokens plus ``<eos>``). ``data.buckets=[]``
    is one shape: no bucketing."""
    return bucket_boundaries(cfg, cfg.data.max_len + 1, "e.g. [8,16]")


class TranslateTask(BucketedTask):
    main_metric = "loss"
    lower_is_better = True

    def __init__(self, cfg: ml_collections.ConfigDict, data_dir: str | None = None, *,
                 src_vocab: Vocab | None = None, tgt_vocab: Vocab | None = None):
        """Loads the data, or, given both vocabularies (inference from a run directory, see
        :meth:`from_run`), nothing: the data methods are then unavailable."""
        super().__init__(cfg, data_dir)
        d = cfg.data
        if cfg.decode.beam < 1:
            raise UsageError(f"decode.beam={cfg.decode.beam}: must be >= 1")
        if cfg.decode.penalty not in decoding.PENALTIES:
            raise UsageError(f"decode.penalty={cfg.decode.penalty!r}: "
                             f"choose one of {', '.join(decoding.PENALTIES)}")
        self.level = d.level
        self.bounds = boundaries(cfg)
        self.eval_batch_size = d.eval_batch_size or d.batch_size
        self.decode_batch_size = cfg.decode.batch_size or self.eval_batch_size
        if src_vocab is not None and tgt_vocab is not None:
            self.data = None
            self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
            return
        self.data = pairs.load_translation(d, data_dir, cfg.seed)
        if self.data.dropped_long:
            sources.log.warning(f"warning: data.source={d.source}: {self.data.dropped_long} pairs longer "
                                f"than data.max_len={d.max_len} tokens left out")
        self.src_vocab, self.tgt_vocab = self.data.src_vocab, self.data.tgt_vocab
        train = self.data.train
        if d.max_examples and d.max_examples < len(train):
            keep = np.sort(np.random.default_rng([cfg.seed, 1]).permutation(len(train))[: d.max_examples])
            train = [train[i] for i in keep]
        self.splits = {"train": train, "valid": self.data.valid, "test": self.data.test}
        self.keys = {k: np.array([max(len(s), len(t) - 1) for s, t in v], np.int64)
                     for k, v in self.splits.items()}

    @classmethod
    def from_run(cls, workdir: str | pathlib.Path, cfg: ml_collections.ConfigDict) -> TranslateTask:
        """The task of a run directory for inference: vocabularies from its assets."""
        workdir = pathlib.Path(workdir)
        return cls(cfg, src_vocab=Vocab.load(workdir / SRC_VOCAB_FILE),
                   tgt_vocab=Vocab.load(workdir / TGT_VOCAB_FILE))

    @classmethod
    def synthetic(cls, cfg):
        """Vocabularies of ``data.{src,tgt}_vocab_size`` (else 100 characters / 10,000 words)."""
        d, specials = cfg.data, (PAD, UNK, SOS, EOS)
        default = 100 if d.level == "char" else 10000
        return cls(cfg, src_vocab=synthetic_vocab(d.get("src_vocab_size", 0) or default, specials),
                   tgt_vocab=synthetic_vocab(d.get("tgt_vocab_size", 0) or default, specials))

    def synthetic_batch(self, rng, batch_size):
        """Random ``src [batch_size, L]`` and ``tgt [batch_size, L + 1]`` (``<sos>`` first) at
        the longest bucket ``L``, every row full length."""
        b, t, first = batch_size, self.bounds[-1], len((PAD, UNK, SOS, EOS))
        tgt = rng.integers(first, len(self.tgt_vocab), (b, t + 1)).astype(np.int32)
        tgt[:, 0] = self.tgt_vocab.sos_id
        return {"src": rng.integers(first, len(self.src_vocab), (b, t)).astype(np.int32),
                "src_lengths": np.full(b, t, np.int32), "tgt": tgt, "weight": np.ones(b, np.float32)}

    # -- model -------------------------------------------------------------------------
    @functools.cache
    def model(self) -> Seq2Seq:
        return build.seq2seq(self.cfg, len(self.src_vocab), len(self.tgt_vocab))

    def init_batch(self):
        b, n = self.cfg.data.batch_size, self.bounds[0]
        return {"src": np.zeros((b, n), np.int32), "src_lengths": np.ones(b, np.int32),
                "tgt": np.zeros((b, n + 1), np.int32), "weight": np.zeros(b, np.float32)}

    def model_inputs(self, batch, carry=None):
        return {"src": batch["src"], "src_lengths": batch["src_lengths"], "tgt_in": batch["tgt"][:, :-1]}

    # -- data --------------------------------------------------------------------------
    def bucket_lengths(self, split):
        """``max(len(src), len(tgt) - 1)`` per pair."""
        return self.keys[split]

    def _materialize(self, split: str, plan) -> Iterator[dict]:
        pairs = self.splits[split]
        src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
        pad = self.tgt_vocab.pad_id
        for bt in plan:
            s, s_len, weight = pad_batch(src, bt.indices, bt.length, pad)
            t, _, _ = pad_batch(tgt, bt.indices, bt.length + 1, pad)
            yield {"src": s, "src_lengths": s_len, "tgt": t, "weight": weight}

    def tokens(self, batch):
        """Real target tokens predicted in the batch (``<eos>`` included)."""
        return int((batch["tgt"][:, 1:] != self.tgt_vocab.pad_id).sum())

    # -- loss --------------------------------------------------------------------------
    def loss(self, params, batch, carry, rng, train):
        labels = batch["tgt"][:, 1:]
        mask = (labels != self.tgt_vocab.pad_id) * batch["weight"][:, None]
        # the model sums NLL and correct tokens itself (fused read-out: no [B, T, V] logits)
        (nll, correct), _ = self.step_model(train).apply(
            {"params": params}, **self.model_inputs(batch), deterministic=not train, rngs={"dropout": rng},
            targets=labels, weights=mask,
        )
        metrics = {"loss_sum": nll, "count": mask.sum(), "correct": correct}
        return metrics["loss_sum"] / jnp.maximum(metrics["count"], 1.0), (metrics, carry)

    def summarize(self, sums):
        n = max(sums["count"], 1.0)
        loss = sums["loss_sum"] / n
        return {"loss": loss, "ppl": float(np.exp(min(loss, 50.0))), "acc": sums["correct"] / n}

    # -- run directory ---------------------------------------------------------------
    def save_assets(self, workdir):
        workdir = pathlib.Path(workdir)
        self.src_vocab.save(workdir / SRC_VOCAB_FILE)
        self.tgt_vocab.save(workdir / TGT_VOCAB_FILE)

    # -- decoding ----------------------------------------------------------------------
    @property
    def decode_max_len(self) -> int:
        """Most target tokens generated (``<eos>`` included): ``decode.max_len`` or
        ``data.max_len + 1``."""
        return self.cfg.decode.max_len or self.cfg.data.max_len + 1

    @functools.lru_cache(maxsize=8)
    def decode_fn(self, beam: int):
        """``jit((params, src [N, L], src_len [N], active [N]) -> Decoded)``: greedy for ``beam=1``, else
        beam search (``Decoded`` fields then have a beam axis). One compilation per
        ``(beam, N, L)``; :meth:`translate_ids` always calls it with the same ``N`` and ``L``."""
        model, v, d = self.model(), self.tgt_vocab, self.cfg.decode
        if beam > 1 and 2 * beam > len(v):
            raise UsageError(f"beam {beam} is too wide for a target vocabulary of {len(v)} tokens")
        kw = dict(sos_id=v.sos_id, eos_id=v.eos_id, max_len=self.decode_max_len, pad_id=v.pad_id)

        def run(params, src, src_len, active):
            memory, state = model.apply({"params": params}, src, src_len, method=Seq2Seq.encode)
            step = decoding.seq2seq_step_fn(model, params)
            if beam == 1:
                return decoding.greedy(step, memory, state, active=active, **kw)
            return decoding.beam_search(step, memory, state, beam=beam, alpha=d.alpha, penalty=d.penalty,
                                        active=active, **kw)

        return jax.jit(run)

    def encode_sources(self, texts: Sequence[str], warn=None) -> list[np.ndarray]:
        """Texts -> source ids, unknown tokens as ``<unk>``, truncated to ``data.max_len``
        (``warn(message)`` is called for each truncated text)."""
        out, max_len = [], self.cfg.data.max_len
        for i, text in enumerate(texts):
            ids = pairs.encode_source(text, self.src_vocab, self.level)
            if len(ids) > max_len:
                if warn is not None:
                    warn(f"input {i + 1} has {len(ids)} {self.level} tokens; "
                         f"truncated to data.max_len={max_len}")
                ids = ids[:max_len]
            out.append(ids)
        return out

    def translate_ids(self, params, src: Sequence[np.ndarray], beam: int = 1) -> decoding.Decoded:
        """Source id lists -> best hypothesis per source, as NumPy :class:`Decoded` fields
        without a beam axis: ``tokens [n, max_len]``, ``lengths [n]``, ``scores [n]``,
        ``attention [n, max_len, data.max_len]``. Batches are padded to one shape
        (``decode.batch_size`` rows of ``data.max_len`` tokens), so decoding compiles once.
        Sources are decoded in order of length, so that a batch's rows end at similar steps
        and its ``while_loop`` exits early; results come back in the input order."""
        fn, b, n_src = self.decode_fn(beam), self.decode_batch_size, self.cfg.data.max_len
        order = np.argsort([len(x) for x in src], kind="stable")
        parts = []
        for start in range(0, len(src), b):
            idx = order[start:start + b]
            idx = np.concatenate([idx, np.full(b - len(idx), -1)])
            s, s_len, active = pad_batch(src, idx, n_src, self.src_vocab.pad_id)
            out = jax.device_get(fn(params, s, s_len, active > 0))
            if beam > 1:  # keep the best hypothesis
                out = out._replace(**{f: getattr(out, f)[:, 0]
                                      for f in ("tokens", "lengths", "scores", "attention")})
            parts.append([np.asarray(x)[: (idx >= 0).sum()] for x in out[:4]])
        if not parts:
            return decoding.Decoded(*(np.zeros((0,)) for _ in range(4)), steps=0)
        inverse = np.argsort(order, kind="stable")
        return decoding.Decoded(*(np.concatenate(p)[inverse] for p in zip(*parts)), steps=0)

    def detokenize(self, ids) -> str:
        return pairs.decode_target(ids, self.tgt_vocab, self.level)

    def translate(self, params, texts: Sequence[str], beam: int = 1,
                  warn=None) -> tuple[list[str], decoding.Decoded]:
        """Raw texts -> (translations, :class:`Decoded` as in :meth:`translate_ids`)."""
        out = self.translate_ids(params, self.encode_sources(texts, warn), beam)
        return [self.detokenize(t) for t in out.tokens], out

    def evaluate_translation(self, params, split: str = "test", beams: Sequence[int] = (1,)) -> dict:
        """BLEU, chrF and decode time per sentence of ``split`` for each beam size.

        ``exact_match`` is the fraction of hypotheses equal to their reference (case-folded at
        word level). ``bleu``/``chrf`` score every pair against its own reference (a source with k
        translations in the file counts k times, each time against one of them);
        ``bleu_multiref``/``chrf_multiref`` score each distinct source once against all of
        its translations in the split (the standard multi-reference BLEU; Tatoeba often
        lists several correct translations of one English sentence, and the split keeps
        them together). Time: wall time of all batches after one warm-up batch
        (compilation excluded)."""
        self._require_data()
        pairs = self.data.test_pairs if split == "test" else self.data.valid_pairs
        src = [p[0] for p in self.splits[split]]
        sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
        lower = self.level == "word"  # the word-level vocabulary is lowercase
        out = {}
        for beam in beams:
            self.translate_ids(params, src[: self.decode_batch_size], beam)  # compile
            t0 = time.perf_counter()
            dec = self.translate_ids(params, src, beam)
            dt = time.perf_counter() - t0
            hyps = [self.detokenize(t) for t in dec.tokens]
            multi = evaluation.bleu_chrf_per_source(sources, hyps, refs, lower)
            name = "greedy" if beam == 1 else f"beam{beam}"
            exact = sum((h.lower() == r.lower()) if lower else h == r for h, r in zip(hyps, refs))
            out[name] = {**evaluation.bleu_chrf(hyps, refs, lower),
                         "bleu_multiref": multi["bleu"], "chrf_multiref": multi["chrf"],
                         "exact_match": round(exact / max(len(refs), 1), 4),
                         "decode_ms_per_sentence": round(1000 * dt / max(len(src), 1), 3),
                         "sentences": len(src), "sources": len(set(sources))}
        return out

    def eval_report(self, params, split):
        """``seqjax eval``: BLEU/chrF (single- and multi-reference) of ``split``, greedy and
        beam ``decode.beam``."""
        return {"translation": self.evaluate_translation(params, split, sorted({1, self.cfg.decode.beam}))}

    def final_report(self, params):
        """BLEU/chrF of ``params`` on the test split (greedy and beam ``decode.beam``) and
        translations of :data:`EXAMPLE_SENTENCES`. The beam (else greedy) BLEU/chrF also go
        under ``"test"``, so the reported test metrics and the ``test`` line of metrics.jsonl
        carry them."""
        beams = sorted({1, self.cfg.decode.beam})
        report = self.evaluate_translation(params, "test", beams)
        main = report["greedy" if self.cfg.decode.beam == 1 else f"beam{self.cfg.decode.beam}"]
        samples = {}
        for beam in beams:
            hyps, _ = self.translate(params, EXAMPLE_SENTENCES, beam)
            samples["greedy" if beam == 1 else f"beam{beam}"] = dict(zip(EXAMPLE_SENTENCES, hyps))
        return {"test": {k: main[k] for k in ("bleu", "chrf", "bleu_multiref", "exact_match")},
                "translation": {"test": report, "samples": samples}}
