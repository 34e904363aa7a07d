"""seqjax.core.losses: the fused, chunked read-out cross-entropy equals the plain one."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.core.layers import zero_carry
from seqjax.core.losses import default_chunk, even_chunk, linear_cross_entropy
from seqjax.models.language_model import LanguageModel


def _problem(n=37, h=16, v=50, seed=1):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    x = jax.random.normal(k[0], (n, h))
    w = jax.random.normal(k[1], (h, v)) * 0.5
    b = jax.random.normal(k[2], (v,))
    y = jax.random.randint(k[3], (n,), 0, v)
    wt = (jax.random.uniform(k[4], (n,)) > 0.3).astype(jnp.float32) * 1.5  # zeros = padding rows
    return x, w, b, y, wt


def _reference(x, w, b, y, wt):
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y) * wt)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 5, 8, 37, 100])
def test_value_and_gradients_match_plain_cross_entropy(chunk):
    x, w, b, y, wt = _problem()
    fused = lambda x, w, b: linear_cross_entropy(x, w, b, y, wt, chunk=chunk)
    ref = lambda x, w, b: _reference(x, w, b, y, wt)
    np.testing.assert_allclose(fused(x, w, b), ref(x, w, b), rtol=1e-5)
    # a non-unit cotangent: the backward pass must scale the gradients computed in the forward pass
    g_fused = jax.grad(lambda *a: 3.0 * fused(*a), argnums=(0, 1, 2))(x, w, b)
    g_ref = jax.grad(lambda *a: 3.0 * ref(*a), argnums=(0, 1, 2))(x, w, b)
    for got, want in zip(g_fused, g_ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_jit_and_padding_rows_get_zero_gradient():
    x, w, b, y, wt = _problem()
    wt = wt.at[:5].set(0.0)
    f = jax.jit(jax.grad(lambda x: linear_cross_entropy(x, w, b, y, wt, chunk=8)))
    dx = f(x)
    np.testing.assert_array_equal(dx[:5], 0.0)
    assert float(jnp.abs(dx[5:]).sum()) > 0


def test_transposed_kernel_for_tied_embeddings():
    x, w, b, y, wt = _problem()
    emb = w.T  # [V, H], as an nn.Embed table
    got = jax.grad(lambda e: linear_cross_entropy(x, e.T, b, y, wt, chunk=6))(emb)
    want = jax.grad(lambda e: _reference(x, e.T, b, y, wt))(emb)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bfloat16_matmuls_stay_close():
    x, w, b, y, wt = _problem()
    got = linear_cross_entropy(x, w, b, y, wt, chunk=8, dtype=jnp.bfloat16)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, _reference(x, w, b, y, wt), rtol=2e-2)


def test_bad_shapes_name_the_arguments():
    x, w, b, y, wt = _problem()
    with pytest.raises(ValueError, match=r"labels \[N\]"):
        linear_cross_entropy(x, w, b, y[:-1], wt, chunk=4)


def test_default_chunk_keeps_a_cache_sized_block():
    assert default_chunk(10_000) == 350
    assert default_chunk(50) >= 8


@pytest.mark.parametrize("n, chunk, want",
                         [(700, 150, 140), (2240, 350, 320), (700, 350, 350), (5, 8, 5), (7, 3, 3)])
def test_even_chunk_pads_less_than_a_row_per_chunk(n, chunk, want):
    got = even_chunk(n, chunk)
    k = -(-n // got)
    assert got == want and got <= chunk and k * got - n < k


@pytest.mark.slow
@pytest.mark.parametrize("tie", [False, True])
def test_language_model_fused_loss_equals_logits_loss(tie):
    """``LanguageModel(targets=...)``: fused (any chunk) == materialised logits, value and grads."""
    v, b, t = 40, 3, 7
    toks = jax.random.randint(jax.random.PRNGKey(0), (b, t), 0, v)
    tgt = jax.random.randint(jax.random.PRNGKey(1), (b, t), 0, v)
    wt = jnp.ones((b, t)).at[2, 4:].set(0.0)
    carry = zero_carry("lstm", (12, 12), b)
    plain = LanguageModel(vocab_size=v, embed=12, hidden=(12, 12), tie_weights=tie, head_chunk=0)
    params = plain.init(jax.random.PRNGKey(2), toks, carry)["params"]
    logits, _ = plain.apply({"params": params}, toks, carry)
    by_hand = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, tgt) * wt)

    def loss(model):
        return lambda p: model.apply({"params": p}, toks, carry, targets=tgt, weights=wt)[0]

    want_v, want_g = jax.value_and_grad(loss(plain))(params)
    np.testing.assert_allclose(want_v, by_hand, rtol=1e-6)
    for chunk in (4, -1):
        got_v, got_g = jax.value_and_grad(loss(plain.clone(head_chunk=chunk)))(params)
        np.testing.assert_allclose(got_v, want_v, rtol=1e-5)
        for g1, g0 in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g)):
            np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)


def test_correct_count_matches_argmax():
    x, w, b, y, wt = _problem()
    y = y.at[:10].set(jnp.argmax(x[:10] @ w + b, -1))  # some rows right for sure
    want = jnp.sum((jnp.argmax(x @ w + b, -1) == y) * wt)
    total, correct = linear_cross_entropy(x, w, b, y, wt, chunk=8, with_correct=True)
    np.testing.assert_allclose(correct, want)
    assert float(want) > 0
    # the count is not differentiated; the loss's gradient is unchanged by asking for it
    g1 = jax.grad(lambda x: linear_cross_entropy(x, w, b, y, wt, chunk=8, with_correct=True)[0])(x)
    g0 = jax.grad(lambda x: linear_cross_entropy(x, w, b, y, wt, chunk=8))(x)
    np.testing.assert_allclose(g1, g0, rtol=1e-6)
