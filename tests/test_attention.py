"""BahdanauAttention against a NumPy reference; masking."""

import jax
import numpy as np

from seqjax.core.attention import BahdanauAttention

B, S, DQ, DK, DV, F = 3, 5, 4, 6, 2, 7
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)


def data(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(B, DQ)).astype(np.float32)
    keys = rng.normal(size=(B, S, DK)).astype(np.float32)
    values = rng.normal(size=(B, S, DV)).astype(np.float32)
    return query, keys, values


def random_variables(attention, *args):
    """Variables of the right shapes drawn in NumPy (the init is not under test)."""
    shapes = jax.eval_shape(attention.init, jax.random.key(0), *args)
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)


def reference(params, query, keys, values, mask):
    scores = (
        np.tanh((query @ params["query"]["kernel"])[:, None] + keys @ params["key"]["kernel"]) @ params["v"]
    )
    scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True, initial=-1e30))
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-30)
    return np.einsum("bs,bsd->bd", weights, values), weights


def test_matches_numpy_reference_and_masks_padding():
    query, keys, values = data()
    attention = BahdanauAttention(F)
    variables = random_variables(attention, query, keys, values, MASK)
    params = jax.tree.map(np.asarray, variables["params"])
    assert jax.tree.map(np.shape, params) == {
        "query": {"kernel": (DQ, F)},
        "key": {"kernel": (DK, F)},
        "v": (F,),
    }
    context, weights = jax.jit(attention.apply)(variables, query, keys, values, MASK)
    ref_context, ref_weights = reference(params, query, keys, values, MASK)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-6)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)

    weights = np.asarray(weights)
    assert np.all(weights[~MASK] == 0.0)  # exactly zero on padding
    np.testing.assert_allclose(weights[:2].sum(-1), 1.0, atol=1e-6)
    # a fully masked row: zero weights and context, no NaN
    assert np.all(weights[2] == 0.0) and np.all(np.asarray(context)[2] == 0.0)


def test_no_mask_and_values_default_to_keys():
    query, keys, _ = data(1)
    attention = BahdanauAttention(F)
    variables = random_variables(attention, query, keys)
    params = jax.tree.map(np.asarray, variables["params"])
    context, weights = jax.jit(attention.apply)(variables, query, keys)
    all_valid = np.ones((B, S), bool)
    ref_context, ref_weights = reference(params, query, keys, keys, all_valid)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-6)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_precomputed_keys_give_the_same_result():
    query, keys, values = data(2)
    attention = BahdanauAttention(F)
    variables = random_variables(attention, query, keys, values, MASK)

    @jax.jit
    def both(variables):
        projected = attention.apply(variables, keys, method="project_keys")
        expected = attention.apply(variables, query, keys, values, MASK)
        got = attention.apply(variables, query, keys, values, MASK, precomputed_keys=projected)
        return projected, expected, got

    projected, expected, got = both(variables)
    assert projected.shape == (B, S, F)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
