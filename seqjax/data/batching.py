"""Length buckets and padding for variable-length examples.

Batches of similar length waste little compute on padding, and a fixed, small set of padded
lengths (the bucket ``boundaries``) keeps the number of jit compilations at
``len(boundaries)``. Every batch has exactly ``batch_size`` rows: a bucket's short final
batch is filled with index ``-1`` rows, which :func:`pad_batch` turns into all-padding rows
of weight 0. No bucketing is ``boundaries=(max_len,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqjax.errors import UsageError


@dataclass(frozen=True)
class BatchPlan:
    """One batch: ``indices`` ``int32 [batch_size]`` into the dataset (``-1`` = filler row),
    ``length`` the padded length (the bucket's boundary)."""

    indices: np.ndarray
    length: int


def default_boundaries(max_len: int, smallest: int = 16) -> tuple[int, ...]:
    """Powers of two from ``smallest`` below ``max_len``, then ``max_len``:
    ``default_boundaries(100) == (16, 32, 64, 100)``; ``default_boundaries(10) == (10,)``."""
    if max_len < 1:
        raise UsageError(f"max_len must be >= 1, got {max_len}")
    out, b = [], smallest
    while b < max_len:
        out.append(b)
        b *= 2
    return (*out, max_len)


def length_buckets(lengths: Sequence[int] | np.ndarray, batch_size: int, boundaries: Sequence[int], *,
                   shuffle: bool, seed: int = 0, epoch: int = 0,
                   drop_remainder: bool = False) -> list[BatchPlan]:
    """Group example indices into batches of similar length.

    Example ``i`` goes to the first bucket whose boundary is ``>= lengths[i]``; examples
    longer than the last boundary go to the last bucket (and :func:`pad_batch` truncates
    them). A batch's ``length`` is its bucket's boundary, which is the smallest boundary
    ``>=`` its longest (truncated) member. With ``shuffle``, examples are shuffled within
    each bucket and the batches shuffled across buckets, by a generator seeded with
    ``(seed, epoch)``: the same ``(seed, epoch)`` gives the same batches; without it the
    order is by bucket, then index.

    Every example appears exactly once per epoch, except that ``drop_remainder=True``
    drops each bucket's final short batch instead of filling it with ``-1``.

    Returns:
      list of :class:`BatchPlan`, each with ``batch_size`` indices; at most ``len(boundaries)``
      distinct lengths.
    """
    bounds = np.asarray(boundaries, dtype=np.int64)
    if bounds.size == 0 or np.any(np.diff(bounds) <= 0) or bounds[0] < 1:
        raise UsageError(f"bucket boundaries must be increasing positive ints, got {tuple(boundaries)}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    bucket_of = np.minimum(np.searchsorted(bounds, lengths, side="left"), len(bounds) - 1)
    rng = np.random.default_rng([seed, epoch])
    batches = []
    for b, bound in enumerate(bounds.tolist()):
        members = np.flatnonzero(bucket_of == b).astype(np.int32)
        if shuffle:
            members = rng.permutation(members)
        for start in range(0, len(members), batch_size):
            chunk = members[start: start + batch_size]
            if len(chunk) < batch_size:
                if drop_remainder:
                    break
                chunk = np.concatenate([chunk, np.full(batch_size - len(chunk), -1, np.int32)])
            batches.append(BatchPlan(chunk, bound))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_batch(seqs: Sequence[np.ndarray], indices: np.ndarray, length: int,
              pad_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather ``seqs[indices]`` into a right-padded array (truncating at ``length``).

    Returns:
      ``tokens``: ``int32 [B, length]`` (``pad_id`` past each sequence's end);
      ``lengths``: ``int32 [B]``, ``min(len(seq), length)``, 0 for ``-1`` filler rows;
      ``weights``: ``float32 [B]``, 1 for real rows, 0 for filler rows.
    """
    indices = np.asarray(indices)
    tokens = np.full((len(indices), length), pad_id, dtype=np.int32)
    lengths = np.zeros(len(indices), dtype=np.int32)
    for row, i in enumerate(indices.tolist()):
        if i >= 0:
            seq = seqs[i][:length]
            tokens[row, : len(seq)] = seq
            lengths[row] = len(seq)
    return tokens, lengths, (indices >= 0).astype(np.float32)
