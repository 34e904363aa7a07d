"""Sequence basics: generated data is what it claims to be; masking ignores padding."""
import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.tasks.many_to_one import SequenceTask, make_ar, make_parity


def test_parity_labels_and_padding():
    d = make_parity(np.random.default_rng(0), 500, 1, 12, 15)
    x, lengths, y = d["x"][..., 0], d["lengths"], d["y"]
    assert x.shape == (500, 15) and lengths.min() >= 1 and lengths.max() <= 12
    for row, n, label in zip(x, lengths, y):
        assert set(np.unique(row[:n])) <= {-1.0, 1.0} and not row[n:].any()
        assert label == (row[:n] == 1).sum() % 2


def test_ar_oracle_error_is_the_noise():
    d = make_ar(np.random.default_rng(0), 20000, [0.6, -0.4, 0.2], 0.5, 10)
    x, y, oracle = d["x"][..., 0], d["y"], d["oracle"]
    np.testing.assert_allclose(oracle, 0.6 * x[:, -1] - 0.4 * x[:, -2] + 0.2 * x[:, -3], atol=1e-5)
    np.testing.assert_allclose(x[1:, -1], y[:-1])  # windows slide along one series
    assert np.mean((y - oracle) ** 2) == pytest.approx(0.25, rel=0.03)


def test_masked_predictions_ignore_padding_length():
    task = SequenceTask(config_lib.resolve("sequences:tiny"))
    params = task.init_params(jax.random.PRNGKey(0))
    batch = next(iter(task.eval_batches("test")))
    wider = dict(batch, x=np.concatenate([batch["x"], np.zeros_like(batch["x"])], axis=1))
    apply = lambda b: task.model().apply({"params": params}, **task.model_inputs(b, None))  # noqa: E731
    np.testing.assert_allclose(apply(batch), apply(wider), atol=1e-6)
    unmasked = SequenceTask(config_lib.resolve("sequences:tiny", ["data.mask=false"]))
    inputs = unmasked.model_inputs(batch, None)
    assert inputs["seq_lengths"] is None
