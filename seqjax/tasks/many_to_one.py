"""Sequence basics: many-to-one problems on float inputs ``[N, T, D]``, generated or the user's.

- ``data.source=npz``: the user's arrays (``x [N, T, D]``, ``y [N]``, optional
  ``lengths [N]``; seqjax/data/arrays.py): integer ``y`` is classification, float ``y``
  regression.

- ``parity``: bit strings of variable length (bits as +-1, zero padding after the end);
  predict whether the number of +1 bits is odd. Train on lengths ``min_len..max_len``;
  the test split also holds longer, never-seen lengths up to ``test_max_len``
  (``acc_heldout`` reports those alone).
- ``ar``: one-step forecasting of an AR(n) process ``x_t = sum_i a_i x_{t-i} + e_t``,
  ``e_t ~ N(0, noise_std^2)``. The noise variance is the floor no predictor can beat;
  ``oracle_mse`` is that floor measured on the same examples (the true coefficients'
  predictions) and ``mse_ratio = mse / oracle_mse``.

``data.mask`` feeds the true lengths to the recurrent layers (masking); with
``mask=False`` the model reads the zero-padded sequence to its last step, as an
unmasked padded batch would.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import jax.numpy as jnp
import numpy as np
import optax

from seqjax.data.arrays import load_sequences
from seqjax.errors import DataError, UsageError
from seqjax.models import build
from seqjax.tasks.base import Task


def make_parity(rng: np.random.Generator, n: int, min_len: int, max_len: int, pad_to: int) -> dict:
    """``x [n, pad_to, 1]`` (+-1 bits, 0 padding), ``lengths [n]``, ``y [n]`` (0 even, 1 odd)."""
    lengths = rng.integers(min_len, max_len + 1, size=n)
    bits = rng.integers(0, 2, size=(n, pad_to))
    valid = np.arange(pad_to)[None, :] < lengths[:, None]
    bits = bits * valid
    x = np.where(valid, 2.0 * bits - 1.0, 0.0).astype(np.float32)[..., None]
    return {"x": x, "lengths": lengths.astype(np.int32), "y": (bits.sum(1) % 2).astype(np.int32)}


def make_ar(rng: np.random.Generator, n: int, coeffs, noise_std: float, context: int) -> dict:
    """Windows of an AR(len(coeffs)) series: ``x [n, context, 1]``, ``y [n]`` (the next value)
    and ``oracle [n]``, the prediction of the true coefficients (its error is the noise)."""
    p = len(coeffs)
    burn = 200
    total = n + context + burn
    e = rng.normal(0.0, noise_std, size=total)
    s = np.zeros(total)
    a = np.asarray(coeffs)
    for t in range(p, total):
        s[t] = a @ s[t - p : t][::-1] + e[t]
    s = s[burn:]
    idx = np.arange(n)[:, None] + np.arange(context)[None, :]
    x = s[idx].astype(np.float32)[..., None]
    y = s[np.arange(n) + context].astype(np.float32)
    oracle = (x[:, ::-1][:, :p, 0] @ a).astype(np.float32)
    return {"x": x, "lengths": np.full(n, context, np.int32), "y": y, "oracle": oracle}


class SequenceTask(Task):
    def __init__(self, cfg, data_dir=None):
        super().__init__(cfg, data_dir)
        d = cfg.data
        if d.get("source"):  # the user's arrays: npz files or array columns
            self._load_arrays(cfg, data_dir)
            return
        if d.problem not in ("parity", "ar"):
            raise UsageError(f"data.problem={d.problem!r}: choose parity or ar")
        self.classify = d.problem == "parity"
        self.num_outputs = 2 if self.classify else 1
        self.main_metric = "acc" if self.classify else "mse"
        self.lower_is_better = not self.classify
        rng = np.random.default_rng(cfg.seed)
        n_train = d.max_examples or d.n_train
        if self.classify:
            if not 1 <= d.min_len <= d.max_len <= d.test_max_len:
                raise UsageError("data: need 1 <= min_len <= max_len <= test_max_len")
            self.splits = {
                "train": make_parity(rng, n_train, d.min_len, d.max_len, d.max_len),
                "valid": make_parity(rng, d.n_eval, d.min_len, d.max_len, d.max_len),
                "test": make_parity(rng, d.n_eval, d.min_len, d.test_max_len, d.test_max_len),
            }
        else:
            coeffs = list(d.ar_coeffs)
            series = make_ar(rng, n_train + 2 * d.n_eval, coeffs, d.noise_std, d.max_len)
            cut = [0, n_train, n_train + d.n_eval, n_train + 2 * d.n_eval]
            names = ("train", "valid", "test")
            self.splits = {k: {f: a[cut[i] : cut[i + 1]] for f, a in series.items()}
                           for i, k in enumerate(names)}
            self.noise_var = d.noise_std**2
        self.heldout_from = d.max_len

    def _load_arrays(self, cfg, data_dir) -> None:
        """The user's sequences (``data.source=npz``, or ``x``/``y``/``lengths`` columns of any
        source): integer ``y`` is classification over the classes ``0..max(y)``, float ``y``
        regression (MSE)."""
        self.splits = load_sequences(cfg.data, data_dir, cfg.seed)
        y = self.splits["train"]["y"]
        self.classify = np.issubdtype(y.dtype, np.integer) or y.dtype == bool
        self.main_metric, self.lower_is_better = ("acc", False) if self.classify else ("mse", True)
        self.num_outputs = self._num_classes(cfg, y) if self.classify else 1
        for split, arrays in self.splits.items():
            if self.classify:
                bad = np.flatnonzero((arrays["y"] < 0) | (arrays["y"] >= self.num_outputs))
                if len(bad):
                    raise DataError(
                        f"data.files.{split}: row {bad[0] + 1}: label y={arrays['y'][bad[0]]} is not in "
                        f"0..{self.num_outputs - 1} (the classes of train); fix the row or set "
                        "data.num_classes")
            arrays["y"] = arrays["y"].astype(np.int32 if self.classify else np.float32)
        self.heldout_from = max(int(a["x"].shape[1]) for a in self.splits.values())
        if len(y) < cfg.data.batch_size:
            raise UsageError(f"data.batch_size={cfg.data.batch_size} is larger than the {len(y)} "
                             f"training rows of {cfg.data.files.train}; lower it")

    @staticmethod
    def _num_classes(cfg, y: np.ndarray) -> int:
        """``data.num_classes`` when set, else ``max(y) + 1`` (the labels were checked by
        :func:`seqjax.data.arrays.check_class_ids` when they were read)."""
        return int(cfg.data.get("num_classes", 0) or 0) or int(y.max()) + 1

    @classmethod
    def synthetic(cls, cfg):
        """The task itself: it generates its data."""
        return cls(cfg)

    def synthetic_batch(self, rng, batch_size):
        """A fresh batch of the training distribution, padded to ``data.max_len``, every row real."""
        d = self.cfg.data
        if self.classify:
            arrays = make_parity(rng, batch_size, d.min_len, d.max_len, d.max_len)
        else:
            arrays = make_ar(rng, batch_size, list(d.ar_coeffs), d.noise_std, d.max_len)
        return {**arrays, "weight": np.ones(batch_size, np.float32)}

    # -- model -------------------------------------------------------------------------
    @functools.cache
    def model(self):
        return build.many_to_one(self.cfg, self.num_outputs)

    def init_batch(self):
        return next(iter(self._batches("train", np.arange(self.cfg.data.batch_size))))

    def model_inputs(self, batch, carry):
        lengths = batch["lengths"] if self.cfg.data.mask else None
        return {"inputs": batch["x"], "seq_lengths": lengths}

    # -- data --------------------------------------------------------------------------
    def steps_per_epoch(self):
        return len(self.splits["train"]["y"]) // self.cfg.data.batch_size

    def _batches(self, split: str, order: np.ndarray) -> Iterator[dict]:
        arrays = self.splits[split]
        b = (self.cfg.data.batch_size if split == "train"
             else (self.cfg.data.eval_batch_size or self.cfg.data.batch_size))
        for i in range(0, len(order), b):
            idx = order[i : i + b]
            weight = np.ones(b, np.float32)
            if len(idx) < b:  # pad the last eval batch with weight-0 rows
                weight[len(idx) :] = 0.0
                idx = np.concatenate([idx, np.zeros(b - len(idx), idx.dtype)])
            yield {**{k: a[idx] for k, a in arrays.items()}, "weight": weight}

    def train_batches(self, epoch, start=0):
        n, b = len(self.splits["train"]["y"]), self.cfg.data.batch_size
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)[: self.steps_per_epoch() * b]
        return self._batches("train", order[start * b :])

    def eval_batches(self, split):
        return self._batches(split, np.arange(len(self.splits[split]["y"])))

    def tokens(self, batch):
        return int(batch["lengths"].sum())

    # -- loss --------------------------------------------------------------------------
    def loss(self, params, batch, carry, rng, train):
        out = self.step_model(train).apply(
            {"params": params}, **self.model_inputs(batch, carry), deterministic=not train,
            rngs={"dropout": rng},
        )
        w = batch["weight"]
        if self.classify:
            per = optax.softmax_cross_entropy_with_integer_labels(out.astype(jnp.float32), batch["y"])
            correct = (jnp.argmax(out, -1) == batch["y"]) * w
            held = (batch["lengths"] > self.heldout_from) * w
            metrics = {
                "loss_sum": (per * w).sum(),
                "count": w.sum(),
                "correct": correct.sum(),
                "correct_heldout": (correct * held).sum(),
                "count_heldout": held.sum(),
            }
        else:
            per = (out[:, 0].astype(jnp.float32) - batch["y"]) ** 2
            metrics = {"loss_sum": (per * w).sum(), "count": w.sum()}
            if "oracle" in batch:  # generated AR data: the true coefficients' error
                metrics["oracle_sum"] = (((batch["oracle"] - batch["y"]) ** 2) * w).sum()
        return metrics["loss_sum"] / jnp.maximum(metrics["count"], 1.0), (metrics, carry)

    def summarize(self, sums):
        n = max(sums["count"], 1.0)
        out = {"loss": sums["loss_sum"] / n}
        if self.classify:
            out["acc"] = sums["correct"] / n
            if sums.get("count_heldout", 0) > 0:
                out["acc_heldout"] = sums["correct_heldout"] / sums["count_heldout"]
        else:
            out["mse"] = out["loss"]
            if "oracle_sum" in sums:
                out["noise_var"] = self.noise_var
                out["oracle_mse"] = sums["oracle_sum"] / n  # the true AR predictor on the same examples
                out["mse_ratio"] = out["mse"] / out["oracle_mse"]
        return out
