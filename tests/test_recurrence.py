"""seqjax.core.recurrence: the time loop with dW_hh computed after the loop equals plain
autodiff of the same loop (values and gradients), masked, reversed, unrolled, bf16."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.core import cells, layers
from seqjax.core.recurrence import recurrence

T, B, H = 9, 4, 5


def _lstm_update(carry, xp, hh):
    c, h = carry
    i, f, g, o = jnp.split(xp + hh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h


def _reference(kernel, bias, xp, carry, valid, reverse):
    """The same loop, written out for plain autodiff."""

    def step(carry, xs):
        x, ok = xs
        new, y = _lstm_update(carry, x, carry[1] @ kernel + bias)
        if ok is not None:
            new = jax.tree.map(lambda a, b: jnp.where(ok[:, None], a, b), new, carry)
            y = jnp.where(ok[:, None], y, 0.0)
        return new, y

    return jax.lax.scan(step, carry, (xp, valid), reverse=reverse)


def _inputs():
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    kernel = jax.random.normal(k[0], (H, 4 * H)) * 0.5
    bias = jax.random.normal(k[1], (4 * H,)) * 0.5
    xp = jax.random.normal(k[2], (T, B, 4 * H))
    carry = (jax.random.normal(k[3], (B, H)), jax.random.normal(k[4], (B, H)))
    lengths = jnp.array([T, 4, 0, 7])
    return kernel, bias, xp, carry, jnp.arange(T)[:, None] < lengths


def _loss(out):
    (c, h), ys = out
    w = jnp.arange(1, ys.size + 1, dtype=ys.dtype).reshape(ys.shape) / ys.size
    return jnp.sum(jnp.sin(ys) * w) + jnp.sum(c**2) + jnp.sum(h * 0.3)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll", [1, 3])
def test_values_and_gradients_match_autodiff(masked, reverse, unroll):
    kernel, bias, xp, carry, valid = _inputs()
    valid = valid if masked else None

    def ours(kernel, bias, xp, carry):
        return _loss(recurrence(_lstm_update, lambda c: c[1], kernel, bias, xp, carry, valid,
                                reverse=reverse, unroll=unroll))

    def ref(kernel, bias, xp, carry):
        return _loss(_reference(kernel, bias, xp, carry, valid, reverse))

    v, g = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2, 3)))(kernel, bias, xp, carry)
    v_ref, g_ref = jax.jit(jax.value_and_grad(ref, argnums=(0, 1, 2, 3)))(kernel, bias, xp, carry)
    np.testing.assert_allclose(v, v_ref, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(g[0]).max()) > 1e-2  # the kernel gradient is not trivially zero
    if masked:  # rows past their length contribute nothing to dW: row 2 has length 0
        g2 = jax.jit(jax.grad(ours, argnums=(0, 2)))(kernel, bias, xp.at[:, 2].mul(5.0), carry)
        np.testing.assert_allclose(g2[0], g[0], rtol=1e-5, atol=1e-6)
        assert float(jnp.abs(g2[1][:, 2]).max()) == 0.0


def test_bfloat16_matmul_keeps_float32_weight_gradients():
    kernel, bias, xp, carry, _ = _inputs()

    def ours(kernel, dtype):
        return _loss(recurrence(_lstm_update, lambda c: c[1], kernel, bias, xp, carry, dtype=dtype))

    g32 = jax.jit(jax.grad(ours), static_argnums=1)(kernel, None)
    g16 = jax.jit(jax.grad(ours), static_argnums=1)(kernel, jnp.bfloat16)
    assert g16.dtype == jnp.float32
    np.testing.assert_allclose(g16, g32, rtol=0.1, atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stacked_scan_equals_flax_scan(cell):
    """The default backend and nn.scan + autodiff: same outputs, carries and gradients
    (a bidirectional layer: both directions, full-length and ragged rows)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 5))
    lengths = jnp.array([7, 4, 0], jnp.int32)
    ours = layers.Stacked(cell, hidden=6, layers=1, bidirectional=True, unroll=2)
    ref = ours.clone(backend="flax_scan")
    params = ours.init(jax.random.PRNGKey(1), x)
    for sl in (None, lengths):
        def loss(model, p, x, sl=sl):
            y, carry = model.apply(p, x, sl)
            return jnp.sum(y * jnp.sin(y)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

        v, g = jax.jit(jax.value_and_grad(lambda p, x: loss(ours, p, x), (0, 1)))(params, x)
        v_ref, g_ref = jax.jit(jax.value_and_grad(lambda p, x: loss(ref, p, x), (0, 1)))(params, x)
        np.testing.assert_allclose(v, v_ref, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _gates_reference(cell, hh, carry, xp):
    return cell.gates(carry, xp, cell.recurrent_input(carry) @ hh["kernel"] + hh["bias"])


@pytest.mark.slow
def test_cells_gates_are_the_step():
    """``step(carry, xp) == gates(carry, xp, h @ W_hh + b_hh)`` for every cell."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3))
    for name in ("rnn", "rnn_relu", "lstm", "gru"):
        cell = cells.make_cell(name, 4)
        carry = jax.tree.map(lambda z: z + 0.3, cell.initialize_carry(None, x.shape))
        params = cell.init(jax.random.PRNGKey(1), carry, x)
        xp = cell.apply(params, x, method="input_projection")
        got = jax.jit(partial(cell.apply, method="step"))(params, carry, xp)  # one compile, not one per op
        want = jax.jit(partial(_gates_reference, cell))(params["params"]["hh"], carry, xp)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("backend", ["scan", "flax_scan"])
def test_remat_same_gradients_less_memory(backend):
    """``remat=True``: the same loss and gradients; the compiled training step of a long
    sequence needs less memory (XLA's own accounting)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 400, 8))
    lengths = jnp.array([400, 250], jnp.int32)
    plain = layers.Stacked("lstm", hidden=32, layers=1, backend=backend)
    remat = plain.clone(remat=True)
    params = plain.init(jax.random.PRNGKey(1), x)

    def grad_fn(model):
        def loss(p):
            y, ((c, _),) = model.apply(p, x, lengths)
            return jnp.sum(jnp.tanh(y)) + jnp.sum(c)
        return jax.jit(jax.value_and_grad(loss))

    (v, g), (v_r, g_r) = grad_fn(plain)(params), grad_fn(remat)(params)
    np.testing.assert_allclose(v_r, v, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_r), jax.tree.leaves(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def temp_bytes(model):
        return grad_fn(model).lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(remat) < 0.7 * temp_bytes(plain)


def _stack_loss(model, params, x, carry, *, seq_lengths, rng):
    y, carries = model.apply(params, x, seq_lengths, carry, deterministic=rng is None,
                             rngs=None if rng is None else {"dropout": rng})
    w = jnp.arange(1, y.size + 1, dtype=y.dtype).reshape(y.shape) / y.size
    return jnp.sum(jnp.sin(y) * w) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carries))


@pytest.mark.slow
@pytest.mark.parametrize("cell, dropout", [("rnn", 0.0), ("lstm", 0.4), ("gru", 0.4)])
def test_wavefront_equals_layer_by_layer(cell, dropout):
    """``wavefront=True``: a stack of 3 (LSTM) or 2 layers of unequal sizes in one loop gives the outputs,
    final carries and gradients (params, inputs, initial carries) of the layer-by-layer
    stack (itself checked against nn.scan + autodiff above), with and without dropout
    masks, full-length and ragged rows, nonzero initial carries; remat and unroll change
    nothing."""
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 7, 5))
    lengths = jnp.array([7, 3, 0, 6], jnp.int32)
    ref = layers.Stacked(cell, hidden=(6, 5, 4) if cell == "lstm" else (6, 4), dropout=dropout,
                         variational=True)
    params = ref.init(jax.random.PRNGKey(1), x)
    carry = jax.tree.map(lambda z: z + 0.5, ref.initialize_carry(4))
    rng = jax.random.PRNGKey(2) if dropout else None
    wave, wave_remat = ref.clone(wavefront=True), ref.clone(wavefront=True, remat=True, unroll=3)

    def grad(model, sl):
        loss = partial(_stack_loss, model, seq_lengths=sl, rng=rng)
        return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))(params, x, carry)

    for sl, models in ((None, {"wave": wave}), (lengths, {"wave_remat_unroll": wave_remat})):
        v_ref, g_ref = grad(ref, sl)
        assert float(jnp.abs(g_ref[0]["params"]["layer_0"]["cell"]["hh"]["kernel"]).max()) > 1e-3
        for name, model in models.items():
            v, g = grad(model, sl)
            np.testing.assert_allclose(v, v_ref, rtol=1e-6, err_msg=name)
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_wavefront_dropout_is_not_variational_unless_asked():
    """Non-variational dropout draws a fresh mask per time step in the one loop too."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 4))
    ref = layers.Stacked("lstm", hidden=5, layers=2, dropout=0.5)
    params = ref.init(jax.random.PRNGKey(1), x)
    rngs = {"dropout": jax.random.PRNGKey(3)}
    y_ref, _ = ref.apply(params, x, deterministic=False, rngs=rngs)
    y, _ = ref.clone(wavefront=True).apply(params, x, deterministic=False, rngs=rngs)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-7)
    y_det, _ = ref.apply(params, x)
    assert float(jnp.abs(y - y_det).max()) > 1e-3  # dropout did act


def test_wavefront_is_one_loop():
    """L layers in one scan of T + L - 1 iterations (the layer-by-layer stack has L scans);
    bidirectional stacks ignore the flag."""
    from test_layers import _scans

    x = jnp.zeros((2, 9, 3))
    stack = layers.Stacked("lstm", hidden=4, layers=3)
    params = stack.init(jax.random.PRNGKey(0), x)

    def scans(model):
        return list(_scans(jax.make_jaxpr(lambda x: model.apply(params, x))(x)))

    assert len(scans(stack)) == 3
    (one,) = scans(stack.clone(wavefront=True))
    assert one.params["length"] == 9 + 3 - 1
    bi = layers.Stacked("lstm", hidden=4, layers=2, bidirectional=True)
    bi_params = bi.init(jax.random.PRNGKey(0), x)
    y = bi.apply(bi_params, x)[0]
    np.testing.assert_array_equal(bi.clone(wavefront=True).apply(bi_params, x)[0], y)


def test_wavefront_bfloat16_keeps_float32_gradients():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 4))
    ref = layers.Stacked("gru", hidden=8, layers=2)
    params = ref.init(jax.random.PRNGKey(1), x)
    bf = layers.Stacked("gru", hidden=8, layers=2, cell_kwargs={"dtype": jnp.bfloat16}, wavefront=True)

    def grad(model):
        return jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x)[0].astype(jnp.float32) ** 2)))(params)

    g, g_ref = grad(bf), grad(ref)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=0.1, atol=0.05)
