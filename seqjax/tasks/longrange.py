"""Long-range tasks, generated (no files): the adding problem, copy memory and selective copying.

``data.problem`` picks one, ``data.length`` sets T:

- ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): inputs
  ``x [N, T, 2]``, a number drawn from U(0, 1) and a marker at every step; exactly two
  steps are marked, one in each half. The target is the sum of the two marked numbers;
  predicting the mean, 1, scores MSE 1/6 (``baseline``). Read out after the last step.
- ``copy`` (copy memory, Arjovsky et al. 2016): ``data.n_tokens`` K (10) symbols from
  1..A (``data.n_symbols``, 8), T - 1 blanks, a delimiter, K blanks: length T + 2K. The
  target is blank at every step except the last K, which repeat the symbols. The loss is
  the cross-entropy averaged over all T + 2K steps; guessing blanks, then uniformly
  among the symbols, scores ``baseline`` = K log A / (T + 2K) (10 log 8 / (T + 20)).
- ``selective-copy`` (Gu & Dao 2023): K symbols at random (ordered) positions among T
  blanks, then K markers; the last K steps must output the symbols in order. The loss is
  the cross-entropy of those K answers; the uniform guess scores ``baseline`` = log A.

Copy tasks one-hot their tokens (blank 0, symbols 1..A, delimiter / marker A + 1) as
float inputs ``[N, T', A + 2]``, and a Dense reads every step's output; ``acc`` is the
fraction of answer symbols recalled. Training batches are drawn fresh for every step
(deterministic in ``seed``, the epoch and the batch index; ``data.n_train`` rows an
epoch); valid and test are fixed sets of ``data.n_eval`` rows.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.errors import UsageError
from seqjax.models import build
from seqjax.models.spec import RecurrentSpec
from seqjax.tasks.base import Task

PROBLEMS = ("adding", "copy", "selective-copy")


def make_adding(rng: np.random.Generator, n: int, length: int) -> dict:
    """``x [n, T, 2]`` float32 (values, markers), ``y [n]`` (the sum of the two marked values)."""
    values = rng.uniform(0.0, 1.0, (n, length))
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    marks = np.zeros((n, length))
    rows = np.arange(n)
    marks[rows, first] = marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return {"x": np.stack([values, marks], -1).astype(np.float32), "y": y.astype(np.float32)}


def make_copy(rng: np.random.Generator, n: int, length: int, k: int, a: int) -> dict:
    """Copy memory: ``tokens [n, T + 2k]`` (inputs), ``targets [n, T + 2k]`` int32."""
    symbols = rng.integers(1, a + 1, (n, k))
    tokens = np.zeros((n, length + 2 * k), np.int32)
    tokens[:, :k] = symbols
    tokens[:, k + length - 1] = a + 1  # the delimiter
    targets = np.zeros_like(tokens)
    targets[:, -k:] = symbols
    return {"tokens": tokens, "targets": targets}


def make_selective_copy(rng: np.random.Generator, n: int, length: int, k: int, a: int) -> dict:
    """Selective copying: ``tokens [n, T + k]``, ``targets [n, T + k]`` (the symbols in order at the
    last k steps, blank elsewhere)."""
    if k > length:
        raise UsageError(f"data.n_tokens={k} symbols do not fit in data.length={length}")
    symbols = rng.integers(1, a + 1, (n, k))
    positions = np.sort(np.argsort(rng.random((n, length)), axis=1)[:, :k], axis=1)
    tokens = np.zeros((n, length + k), np.int32)
    np.put_along_axis(tokens, positions, symbols, axis=1)
    tokens[:, length:] = a + 1  # the markers
    targets = np.zeros_like(tokens)
    targets[:, -k:] = symbols
    return {"tokens": tokens, "targets": targets}


class PerStep(nn.Module):
    """``Stacked`` recurrent layers and a Dense at every step: inputs ``[B, T, D]`` ->
    logits ``[B, T, out_features]``."""

    out_features: int
    rnn: RecurrentSpec

    @nn.compact
    def __call__(self, inputs, *, deterministic: bool = True):
        outputs, _ = self.rnn.stacked(name="Stacked_0")(inputs, deterministic=deterministic)
        return nn.Dense(self.out_features)(outputs)


class LongRangeTask(Task):
    """The generated long-range problems (module docstring)."""

    def __init__(self, cfg, data_dir=None):
        super().__init__(cfg, data_dir)
        d = cfg.data
        if d.problem not in PROBLEMS:
            raise UsageError(f"data.problem={d.problem!r}: choose one of {', '.join(PROBLEMS)}")
        if d.length < 2:
            raise UsageError(f"data.length={d.length}: must be >= 2 (the tasks are posed for 100..16384)")
        if d.n_train < d.batch_size:
            raise UsageError(f"data.n_train={d.n_train} is smaller than data.batch_size={d.batch_size}")
        self.problem = d.problem
        self.k, self.a = int(d.n_tokens), int(d.n_symbols)
        if self.problem != "adding" and (self.k < 1 or self.a < 1):
            raise UsageError(f"data.n_tokens={self.k}, data.n_symbols={self.a}: both must be >= 1")
        self.splits = {split: self._make(np.random.default_rng([cfg.seed, i]), d.n_eval)
                       for i, split in ((1, "valid"), (2, "test"))}

    def _make(self, rng: np.random.Generator, n: int) -> dict:
        length = self.cfg.data.length
        if self.problem == "adding":
            arrays = make_adding(rng, n, length)
        elif self.problem == "copy":
            arrays = make_copy(rng, n, length, self.k, self.a)
        else:
            arrays = make_selective_copy(rng, n, length, self.k, self.a)
        return {**arrays, "weight": np.ones(n, np.float32)}

    @property
    def baseline(self) -> float:
        """The loss of the trivial predictor (module docstring)."""
        if self.problem == "adding":
            return 1.0 / 6.0
        if self.problem == "copy":
            return self.k * math.log(self.a) / (self.cfg.data.length + 2 * self.k)
        return math.log(self.a)

    @classmethod
    def synthetic(cls, cfg):
        """The task itself: it generates its data."""
        return cls(cfg)

    def synthetic_batch(self, rng, batch_size):
        return self._make(rng, batch_size)

    # -- model ---------------------------------------------------------------------
    @functools.cache
    def model(self):
        if self.problem == "adding":
            return build.many_to_one(self.cfg, 1)
        return PerStep(out_features=self.a + 1, rnn=build.recurrent_spec(self.cfg))

    def init_batch(self):
        return self._make(np.random.default_rng(0), self.cfg.data.batch_size)

    def model_inputs(self, batch, carry):
        if self.problem == "adding":
            return {"inputs": batch["x"]}
        return {"inputs": jax_one_hot(batch["tokens"], self.a + 2)}

    # -- data ----------------------------------------------------------------------
    def steps_per_epoch(self):
        return self.cfg.data.n_train // self.cfg.data.batch_size

    def train_batches(self, epoch, start=0):
        for i in range(start, self.steps_per_epoch()):
            yield self._make(np.random.default_rng([self.cfg.seed, 3, epoch, i]), self.cfg.data.batch_size)

    def eval_batches(self, split) -> Iterator[dict]:
        arrays = self.splits[split]
        n = len(arrays["weight"])
        b = self.cfg.data.eval_batch_size or self.cfg.data.batch_size
        for i in range(0, n, b):
            idx = np.arange(i, i + b) % n
            batch = {k: v[idx] for k, v in arrays.items()}
            batch["weight"] = np.where(np.arange(i, i + b) < n, batch["weight"], 0.0).astype(np.float32)
            yield batch

    def tokens(self, batch):
        x = batch["x"] if "x" in batch else batch["tokens"]
        return int(np.prod(x.shape[:2]))

    # -- loss ----------------------------------------------------------------------
    def loss(self, params, batch, carry, rng, train):
        out = self.apply_model(train, {"params": params}, **self.model_inputs(batch, carry),
                               deterministic=not train, rngs={"dropout": rng})
        w = batch["weight"]
        if self.problem == "adding":
            per = (out[:, 0].astype(jnp.float32) - batch["y"]) ** 2
            metrics = {"loss_sum": (per * w).sum(), "count": w.sum()}
        else:
            ce = optax.softmax_cross_entropy_with_integer_labels(out.astype(jnp.float32), batch["targets"])
            answers = ce[:, -self.k:]
            per = ce.mean(axis=1) if self.problem == "copy" else answers.mean(axis=1)
            correct = (jnp.argmax(out[:, -self.k:], -1) == batch["targets"][:, -self.k:]).mean(axis=1)
            metrics = {"loss_sum": (per * w).sum(), "count": w.sum(), "correct": (correct * w).sum()}
        return metrics["loss_sum"] / jnp.maximum(metrics["count"], 1.0), (metrics, carry)

    def summarize(self, sums):
        n = max(sums["count"], 1.0)
        out = {"loss": sums["loss_sum"] / n, "baseline": self.baseline}
        if self.problem == "adding":
            out["mse"] = out["loss"]
        else:
            out["acc"] = sums["correct"] / n
        return out


def jax_one_hot(tokens, depth: int):
    """int tokens [B, T] -> float32 one-hot [B, T, depth]."""
    return (jnp.asarray(tokens)[..., None] == jnp.arange(depth)).astype(jnp.float32)
