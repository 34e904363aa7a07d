"""Text classification (AG News, or any texts with labels): token ids -> one of ``num_classes`` labels.

Batches are length-bucketed (``seqjax.data.batching``): every batch is padded to one of
the few bucket boundaries, so the train step compiles once per boundary, not per batch.
A batch is ``{"tokens": int32 [B, T], "lengths": int32 [B], "labels": int32 [B],
"weight": float32 [B]}``; rows that only fill a bucket's last batch have weight 0.

The run directory gets ``vocab.json`` and ``classes.json`` (:meth:`ClassifyTask.save_assets`),
so ``seqjax classify WORKDIR TEXT...`` loads the model from the run alone, without the data.
"""
from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from seqjax.data.batching import length_buckets, pad_batch
from seqjax.data.sources import truncation_warning
from seqjax.data.textclass import load_text_classes, tokenize
from seqjax.data.vocab import PAD, UNK, Vocab
from seqjax.errors import DataError
from seqjax.models import build
from seqjax.models.classifier import TextClassifier
from seqjax.tasks.base import BucketedTask, bucket_boundaries, synthetic_vocab

VOCAB_FILE = "vocab.json"
CLASSES_FILE = "classes.json"


def boundaries(cfg: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Padded lengths of the batches: ``data.buckets`` below ``data.max_len``, then
    ``data.max_len``. ``data.buckets=[]`` (or ``[max_len]``) is one shape: no bucketing."""
    return bucket_boundaries(cfg, cfg.data.max_len, "e.g. [32,48,64,128]")


class ClassifyTask(BucketedTask):
    main_metric = "acc"
    lower_is_better = False

    def __init__(self, cfg: ml_collections.ConfigDict, data_dir: str | None = None, *,
                 vocab: Vocab | None = None, class_names: Sequence[str] | None = None):
        """Loads the data, or, given ``vocab`` and ``class_names`` (inference from a run
        directory, see :meth:`from_run`), nothing: the data methods are then unavailable."""
        super().__init__(cfg, data_dir)
        d = cfg.data
        self.bounds = boundaries(cfg)
        self.eval_batch_size = d.eval_batch_size or d.batch_size
        if vocab is not None:
            self.data = None
            self.vocab, self.class_names = vocab, list(class_names)
            return
        self.data = load_text_classes(d, data_dir, cfg.seed)
        self.vocab, self.class_names = self.data.vocab, list(self.data.class_names)
        self.splits = {"train": self.data.train, "valid": self.data.valid, "test": self.data.test}
        full = {k: np.array([len(t) for t in s.tokens], np.int64) for k, s in self.splits.items()}
        truncation_warning(f"data.source={d.source} (train)", full["train"], d.max_len)
        self.lengths = {k: np.minimum(n, d.max_len) for k, n in full.items()}

    @classmethod
    def from_run(cls, workdir: str | pathlib.Path, cfg: ml_collections.ConfigDict) -> ClassifyTask:
        """The task of a run directory for inference: vocabulary and class names from its
        assets, no dataset read."""
        workdir = pathlib.Path(workdir)
        vocab = Vocab.load(workdir / VOCAB_FILE)
        try:
            class_names = json.loads((workdir / CLASSES_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"missing {workdir / CLASSES_FILE}; "
                            f"was {workdir} written by 'seqjax train'?") from None
        return cls(cfg, vocab=vocab, class_names=class_names)

    @classmethod
    def synthetic(cls, cfg):
        """A vocabulary of ``data.vocab_size`` (else 10,000) words, ``data.num_classes`` (else 4) classes."""
        size = cfg.data.get("vocab_size", 0) or 10000
        classes = [f"class{i}" for i in range(int(cfg.data.get("num_classes", 0) or 4))]
        return cls(cfg, vocab=synthetic_vocab(size, (PAD, UNK)), class_names=classes)

    def synthetic_batch(self, rng, batch_size):
        """Random word ids ``[batch_size, data.max_len]`` (every row full length) and labels."""
        b, t = batch_size, self.bounds[-1]
        return {"tokens": rng.integers(2, len(self.vocab), (b, t)).astype(np.int32),
                "lengths": np.full(b, t, np.int32),
                "labels": rng.integers(0, len(self.class_names), b).astype(np.int32),
                "weight": np.ones(b, np.float32)}

    # -- model -------------------------------------------------------------------------
    @functools.cache
    def model(self) -> TextClassifier:
        return build.text_classifier(self.cfg, len(self.vocab), len(self.class_names))

    def init_batch(self):
        b = self.cfg.data.batch_size
        z = np.zeros(b, np.int32)
        return {"tokens": np.zeros((b, self.bounds[0]), np.int32), "lengths": z, "labels": z,
                "weight": np.zeros(b, np.float32)}

    def model_inputs(self, batch, carry=None):
        return {"tokens": batch["tokens"], "seq_lengths": batch["lengths"] if self.cfg.data.mask else None}

    # -- data --------------------------------------------------------------------------
    def bucket_lengths(self, split):
        return self.lengths[split]

    def _materialize(self, split: str, plan) -> Iterator[dict]:
        s = self.splits[split]
        for bt in plan:
            tokens, lengths, weight = pad_batch(s.tokens, bt.indices, bt.length)
            labels = np.where(bt.indices >= 0, s.labels[np.maximum(bt.indices, 0)], 0).astype(np.int32)
            yield {"tokens": tokens, "lengths": lengths, "labels": labels, "weight": weight}

    def tokens(self, batch):
        """Real (unpadded) tokens of the batch."""
        return int(batch["lengths"].sum())

    # -- loss --------------------------------------------------------------------------
    def loss(self, params, batch, carry, rng, train):
        logits = self.step_model(train).apply({"params": params}, **self.model_inputs(batch),
                                              deterministic=not train, rngs={"dropout": rng})
        w = batch["weight"]
        per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
        metrics = {
            "loss_sum": (per * w).sum(),
            "count": w.sum(),
            "correct": ((jnp.argmax(logits, -1) == batch["labels"]) * w).sum(),
        }
        return metrics["loss_sum"] / jnp.maximum(metrics["count"], 1.0), (metrics, carry)

    def summarize(self, sums):
        n = max(sums["count"], 1.0)
        return {"loss": sums["loss_sum"] / n, "acc": sums["correct"] / n}

    # -- run directory ---------------------------------------------------------------
    def save_assets(self, workdir):
        workdir = pathlib.Path(workdir)
        self.vocab.save(workdir / VOCAB_FILE)
        (workdir / CLASSES_FILE).write_text(json.dumps(self.class_names) + "\n", encoding="utf-8")

    # -- inference ---------------------------------------------------------------------
    def predict(self, params, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities of raw texts: ``(labels int [n], probs float32 [n, C])``.

        Texts are tokenized as in training (unknown words -> ``<unk>``, an empty text is a
        row of length 0) and batched by length into the same padded shapes as evaluation,
        so a text gets the probabilities that ``seqjax eval`` scored.
        """
        ids = [self.vocab.encode(tokenize(t)) for t in texts]
        lengths = np.minimum([len(i) for i in ids], self.cfg.data.max_len)
        probs = np.zeros((len(texts), len(self.class_names)), np.float32)
        apply = self._probs_fn()
        for bt in length_buckets(lengths, self.eval_batch_size, self.bounds, shuffle=False):
            tokens, lens, _ = pad_batch(ids, bt.indices, bt.length)
            p = np.asarray(apply(params, tokens, lens if self.cfg.data.mask else None))
            real = bt.indices >= 0
            probs[bt.indices[real]] = p[real]
        return probs.argmax(-1), probs

    @functools.cache
    def _probs_fn(self):
        model = self.model()
        return jax.jit(lambda params, tokens, lengths: jax.nn.softmax(
            model.apply({"params": params}, tokens, lengths)))
