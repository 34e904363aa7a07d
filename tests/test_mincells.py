"""minGRU / minLSTM: the paper's equations, parallel scan == sequential scan, lengths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.core.layers import Recurrent, Stacked
from seqjax.core.mincells import MinGRUCell, MinLSTMCell
from seqjax.core.recurrence import linear_recurrence

B, T, IN, H = 3, 9, 4, 5
LENGTHS = np.array([9, 4, 0])


def _x(seed=0, t=T):
    return jax.random.normal(jax.random.key(seed), (B, t, IN))


def _g(v):
    return np.where(v >= 0, v + 0.5, 1 / (1 + np.exp(-v)))


def _sig(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell])
def test_step_matches_the_paper(cls):
    cell = cls(H)
    x = np.asarray(_x()[:, 0])
    h = np.random.default_rng(0).uniform(0, 1, (B, H)).astype(np.float32)
    params = cell.init(jax.random.key(1), jnp.asarray(h), x)["params"]
    pre = x @ np.asarray(params["ih"]["kernel"]) + np.asarray(params["ih"]["bias"])
    if cls is MinGRUCell:
        k, v = np.split(pre, 2, -1)
        z = _sig(k)
        want = (1 - z) * h + z * _g(v)
    else:
        f, i, v = np.split(pre, 3, -1)
        f, i = _sig(f), _sig(i)
        want = f / (f + i) * h + i / (f + i) * _g(v)
    got, y = cell.apply({"params": params}, jnp.asarray(h), x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got, y)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_parallel_equals_sequential_with_gradients(reverse, lengths):
    """Outputs, final carry and gradients (wrt log a, log b, h0) to 1e-5 in float32."""
    rng = np.random.default_rng(0)
    log_a = jnp.asarray(-rng.uniform(0.01, 3, (T, B, H)), jnp.float32)
    log_b = jnp.asarray(rng.normal(-1, 1, (T, B, H)), jnp.float32)
    h0 = jnp.asarray(rng.normal(0, 1, (B, H)), jnp.float32)
    valid = None if lengths is None else jnp.arange(T)[:, None] < lengths
    w = jnp.asarray(rng.normal(size=(T, B, H)), jnp.float32)

    def run(parallel):
        def loss(la, lb, h):
            final, hs = linear_recurrence(la, lb, h, valid, reverse=reverse, parallel=parallel)
            return jnp.sum(hs * w) + jnp.sum(final ** 2), (final, hs)

        return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(log_a, log_b, h0)

    (_, (f_seq, hs_seq)), g_seq = run(False)
    (_, (f_par, hs_par)), g_par = run(True)
    np.testing.assert_allclose(hs_par, hs_seq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_par, f_seq, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_par, g_seq):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    if lengths is not None:
        assert np.all(np.asarray(hs_seq)[LENGTHS[None, :] <= np.arange(T)[:, None]] == 0)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_stacked_bidirectional_parallel_equals_sequential_and_padding_invariance(cell):
    """A 2-layer bidirectional stack: parallel == sequential (outputs, carries, param
    gradients); a padded row equals the row run alone."""
    x = _x(1)
    layers = {p: Stacked(cell, (H, 4), bidirectional=True, parallel_scan=p) for p in ("on", "off")}
    params = layers["on"].init(jax.random.key(0), x, LENGTHS)["params"]

    def loss(p, mode):
        out, carries = layers[mode].apply({"params": p}, x, LENGTHS)
        return jnp.sum(out ** 2) + sum(jnp.sum(c ** 2) for c in jax.tree.leaves(carries)), (out, carries)

    (_, (out_on, c_on)), g_on = jax.value_and_grad(loss, has_aux=True)(params, "on")
    (_, (out_off, c_off)), g_off = jax.value_and_grad(loss, has_aux=True)(params, "off")
    np.testing.assert_allclose(out_on, out_off, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), c_on, c_off)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_on, g_off)
    alone, carry_alone = layers["on"].apply({"params": params}, x[1:2, :4])
    np.testing.assert_allclose(out_on[1:2, :4], alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out_on[1, 4:], 0)
    np.testing.assert_allclose(c_on[1][1][1:2], carry_alone[1][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("parallel", ["on", "off"])
def test_program_size_does_not_grow_with_time(parallel):
    layer = Recurrent(MinGRUCell(H), parallel_scan=parallel)
    params = layer.init(jax.random.key(0), _x(t=8))

    def size(t):
        x = _x(t=t)
        return len(jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer.apply(p, x)[0])))(params).eqns)

    assert size(64) == size(4096)


def test_recurrent_dropout_drops_the_state_only_in_training():
    x = _x(2)
    layer = Recurrent(MinLSTMCell(H), recurrent_dropout=0.5, parallel_scan="on")
    params = layer.init(jax.random.key(0), x)
    plain, _ = Recurrent(MinLSTMCell(H), parallel_scan="on").apply(params, x)
    det, _ = layer.apply(params, x)
    np.testing.assert_array_equal(det, plain)
    rngs = {"dropout": jax.random.key(3)}
    dropped, _ = layer.apply(params, x, deterministic=False, rngs=rngs)
    sequential, _ = layer.clone(parallel_scan="off").apply(params, x, deterministic=False, rngs=rngs)
    np.testing.assert_allclose(dropped, sequential, rtol=1e-5, atol=1e-6)
    assert not np.allclose(dropped, plain)
    np.testing.assert_allclose(dropped[:, 0], plain[:, 0], rtol=1e-6)  # h0 = 0: the mask has nothing to drop
