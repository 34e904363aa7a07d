"""Length buckets and padding: coverage, fixed batch shape, few distinct lengths, determinism."""

import numpy as np
import pytest

from seqjax.data.batching import default_boundaries, length_buckets, pad_batch
from seqjax.errors import UsageError


def _lengths(n=1003, seed=0):
    return np.random.default_rng(seed).integers(0, 150, n)


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_example_once_fixed_shape_few_lengths(shuffle):
    lengths = _lengths()
    bounds = (16, 32, 64, 100)
    batches = length_buckets(lengths, 32, bounds, shuffle=shuffle, seed=3)
    idx = np.concatenate([b.indices for b in batches])
    assert all(b.indices.shape == (32,) and b.indices.dtype == np.int32 for b in batches)
    assert sorted(idx[idx >= 0].tolist()) == list(range(len(lengths)))
    assert {b.length for b in batches} <= set(bounds)
    # the smallest boundary >= the longest (truncated) member
    for b in batches:
        longest = min(lengths[b.indices[b.indices >= 0]].max(), 100)
        assert b.length == min(x for x in bounds if x >= longest)
    # one short (filled) batch per bucket at most
    per_bucket = np.bincount(np.minimum(np.searchsorted(bounds, lengths), 3), minlength=4)
    assert len(batches) == sum(-(-c // 32) for c in per_bucket)
    assert (idx == -1).sum() == sum((-c) % 32 for c in per_bucket)


def test_deterministic_by_seed_and_epoch():
    lengths = _lengths()
    def order(seed, epoch):
        return np.concatenate([b.indices for b in length_buckets(
            lengths, 16, (32, 64, 150), shuffle=True, seed=seed, epoch=epoch)]).tolist()
    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_drop_remainder_and_no_bucketing():
    lengths = np.arange(50)
    batches = length_buckets(lengths, 8, (49,), shuffle=False, drop_remainder=True)
    assert len(batches) == 6 and all((b.indices >= 0).all() and b.length == 49 for b in batches)
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(48))
    with pytest.raises(UsageError):
        length_buckets(lengths, 8, (32, 16), shuffle=False)


def test_pad_batch_values():
    seqs = [np.array([5, 6, 7]), np.array([1]), np.arange(10, 20)]
    tokens, lengths, weights = pad_batch(seqs, np.array([2, 0, -1, 1]), 4, pad_id=0)
    assert tokens.dtype == np.int32 and lengths.dtype == np.int32 and weights.dtype == np.float32
    assert tokens.tolist() == [[10, 11, 12, 13], [5, 6, 7, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    assert lengths.tolist() == [4, 3, 0, 1]
    assert weights.tolist() == [1, 1, 0, 1]


def test_default_boundaries():
    assert default_boundaries(100) == (16, 32, 64, 100)
    assert default_boundaries(128) == (16, 32, 64, 128)
    assert default_boundaries(10) == (10,)
