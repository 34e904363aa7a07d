"""Variable-length BPTT windows (AWD-LSTM, Merity et al. 2018, section 4.1).

Each training window's length is drawn as AWD-LSTM's ``main.py`` draws it:
``base = bptt`` with probability 0.95, else ``bptt / 2``; ``seq_len = max(5, int(N(base,
5)))``; then rounded to a multiple of ``q = data.variable_bptt`` (``q = 1``: the paper's
lengths; a larger ``q`` compiles fewer shapes). Windows are contiguous along the ``B``
parallel rows of the stream (``batchify`` as :func:`seqjax.data.lm.bptt_windows`), so the
recurrent carry still continues from one window to the next, and the start points shift
from epoch to epoch. The learning rate of a window is scaled by ``seq_len / bptt`` (the
train-state extension :mod:`seqjax.training.extensions.variable_bptt`).

An epoch is a fixed number of windows (the loop counts steps per epoch):
``ceil(M / E)`` with ``M`` the predictions per row and ``E = 0.95 bptt + 0.05 bptt / 2``
the expected length, so an epoch covers the stream about once; a walk that reaches the
end of the rows continues from their start. The lengths of epoch ``e`` come from the seed
and ``e`` alone, so a resumed run sees the same windows. Each distinct length is one
compilation of the train step (about 40 over a run with bptt 70 and ``q = 1``, 8 with ``q = 5``).
"""
from __future__ import annotations

import math

import numpy as np

from seqjax.data.lm import batchify
from seqjax.errors import UsageError

#: probability of the full ``bptt`` (else ``bptt / 2``) and the std of the drawn length
P_FULL, STD, MIN_LEN = 0.95, 5.0, 5


def draw_lengths(rng: np.random.Generator, bptt: int, count: int, multiple: int = 1) -> np.ndarray:
    """``int64 [count]`` window lengths by AWD-LSTM's rule, rounded to ``multiple``."""
    base = np.where(rng.random(count) < P_FULL, float(bptt), bptt / 2.0)
    lengths = np.maximum(MIN_LEN, (base + STD * rng.standard_normal(count)).astype(np.int64))
    if multiple > 1:
        lengths = np.maximum(multiple, np.rint(lengths / multiple).astype(np.int64) * multiple)
    return lengths


def windows_per_epoch(predictions: int, bptt: int) -> int:
    """Windows of one epoch over rows of ``predictions`` targets each."""
    return max(1, math.ceil(predictions / (P_FULL * bptt + (1 - P_FULL) * bptt / 2)))


class VariableWindows:
    """The train windows of one epoch: ``len`` and ``w[k]``, a dict of numpy arrays
    ``inputs``, ``targets`` int32 ``[B, L_k]`` and ``weight`` float32 ``[B, L_k]`` (all 1)."""

    def __init__(self, data: np.ndarray, bptt: int, seed: int, epoch: int, multiple: int = 1):
        self.data, self.bptt = data, bptt  # data: int32 [B, M + 1]
        self.m = data.shape[1] - 1
        count = windows_per_epoch(self.m, bptt)
        self.lengths = draw_lengths(np.random.default_rng([seed, epoch, 0x5EB]), bptt, count, multiple)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]) % self.m

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        pos = (self.starts[k] + np.arange(self.lengths[k])) % self.m  # input positions in each row
        return {"inputs": self.data[:, pos], "targets": self.data[:, pos + 1],
                "weight": np.ones((self.data.shape[0], len(pos)), np.float32)}


def epoch_windows(ids: np.ndarray, batch_size: int, bptt: int, seed: int, epoch: int,
                  multiple: int = 1) -> VariableWindows:
    """The windows of ``epoch`` over the train stream ``ids`` (int32 ``[n]``), lengths
    rounded to ``multiple``."""
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    if bptt < 2 * MIN_LEN:
        raise UsageError(f"data.variable_bptt needs data.bptt >= {2 * MIN_LEN}, got {bptt}")
    data = batchify(ids, batch_size)[0]
    if data.shape[1] < 2:
        raise UsageError(f"a stream of {len(ids)} tokens is too short for batch_size={batch_size}")
    return VariableWindows(data, bptt, seed, epoch, multiple)
