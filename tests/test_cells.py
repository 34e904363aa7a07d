"""Cells against a NumPy implementation of PyTorch's RNN/LSTM/GRU equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.core.cells import ElmanCell, GRUCell, LSTMCell, make_cell

IN, H, B = 5, 4, 3


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def torch_step(kind, p, carry, x):
    """One step of torch.nn.RNN/LSTM/GRU in NumPy; p holds W_ih.T, W_hh.T, biases."""
    h = carry[1] if kind == "lstm" else carry
    xp = x @ p["ih"]["kernel"] + p["ih"]["bias"]
    hp = h @ p["hh"]["kernel"] + p["hh"]["bias"]
    if kind == "rnn":
        h = np.tanh(xp + hp)
        return h, h
    if kind == "rnn_relu":
        h = np.maximum(xp + hp, 0.0)
        return h, h
    if kind == "lstm":
        i, f, g, o = np.split(xp + hp, 4, axis=-1)
        c = sigmoid(f) * carry[0] + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return (c, h), h
    xr, xz, xn = np.split(xp, 3, axis=-1)
    hr, hz, hn = np.split(hp, 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, h


CASES = [
    ("rnn", {}),
    ("rnn_relu", {}),
    ("lstm", {}),
    ("lstm", {"forget_bias": 1.0}),
    ("gru", {}),
]


def random_params(cell, carry, x, rng):
    """Parameters of the right shapes with weights of scale ~1, so every gate works."""
    shapes = jax.eval_shape(cell.init, jax.random.key(0), carry, x)["params"]
    return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}{kw}" for k, kw in CASES])
def test_step_matches_torch_equations(kind, kw):
    rng = np.random.default_rng(0)
    cell = make_cell(kind, H, **kw)
    x = rng.normal(size=(B, IN)).astype(np.float32)
    carry = jax.tree.map(
        lambda z: rng.normal(size=z.shape).astype(np.float32),
        cell.initialize_carry(None, x.shape),
    )
    params = random_params(cell, carry, x, rng)
    step = jax.jit(cell.apply)
    for _ in range(3):  # a few steps, feeding the carry back
        new_carry, y = step({"params": params}, carry, x)
        ref_carry, ref_y = torch_step(kind, params, carry, x)
        np.testing.assert_allclose(y, ref_y, atol=1e-5, rtol=1e-5)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5),
            new_carry,
            ref_carry,
        )
        carry = jax.tree.map(np.asarray, new_carry)


def test_step_equals_input_projection_then_step():
    cell = GRUCell(H)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, IN)).astype(np.float32)
    carry = cell.initialize_carry(None, x.shape)
    variables = {"params": random_params(cell, carry, x, rng)}

    @jax.jit
    def both(variables, carry, x):
        xp = cell.apply(variables, x, method="input_projection")
        return xp, cell.apply(variables, carry, xp, method="step"), cell.apply(variables, carry, x)

    xp, (_, y1), (_, y2) = both(variables, carry, x)
    assert xp.shape == (B, 3 * H)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("kind,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_param_shapes_and_carry(kind, gates):
    cell = make_cell(kind, H)
    x = jnp.ones((B, IN))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    if kind == "lstm":
        assert [c.shape for c in carry] == [(B, H), (B, H)]
    else:
        assert carry.shape == (B, H)
    assert all(float(jnp.abs(c).max()) == 0 for c in jax.tree.leaves(carry))
    shapes = jax.tree.map(jnp.shape, jax.eval_shape(cell.init, jax.random.key(0), carry, x))
    shapes = shapes["params"]
    assert shapes == {
        "ih": {"kernel": (IN, gates * H), "bias": (gates * H,)},
        "hh": {"kernel": (H, gates * H), "bias": (gates * H,)},
    }
    assert cell.num_feature_axes == 1


def _init_params(cell, features_in=IN):
    x = jnp.ones((1, features_in))
    carry = cell.initialize_carry(None, x.shape)
    return jax.jit(cell.init)(jax.random.key(1), carry, x)["params"]


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_torch_init_range(cls):
    hidden = 64
    bound = 1 / np.sqrt(hidden)
    for w in jax.tree.leaves(_init_params(cls(hidden))):
        w = np.asarray(w)
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # uses the whole range
        assert abs(w.mean()) < 0.2 * bound


def test_uniform_init_range_and_forget_bias():
    hidden, scale, fb = 32, 0.05, 1.0
    params = _init_params(make_cell("lstm", hidden, init="uniform", init_scale=scale, forget_bias=fb))
    for w in (params["ih"]["kernel"], params["ih"]["bias"], params["hh"]["kernel"]):
        assert scale * 0.9 < np.abs(w).max() <= scale
    b = np.asarray(params["hh"]["bias"]).reshape(4, hidden)  # gates i, f, g, o
    assert np.all(np.abs(b[[0, 2, 3]]) <= scale)
    assert np.all(np.abs(b[1] - fb) <= scale)


def test_bfloat16_compute_keeps_carry_dtype():
    x = np.random.default_rng(0).normal(size=(B, IN)).astype(np.float32)
    cell32, cell16 = LSTMCell(H), LSTMCell(H, dtype=jnp.bfloat16)
    carry = cell32.initialize_carry(None, x.shape)
    variables = {"params": random_params(cell32, carry, x, np.random.default_rng(0))}
    (c32, h32), _ = jax.jit(cell32.apply)(variables, carry, x)
    (c16, h16), _ = jax.jit(cell16.apply)(variables, carry, x)
    assert c16.dtype == h16.dtype == jnp.float32
    np.testing.assert_allclose(h16, h32, atol=2e-2)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="cell must be one of .*'lstm'.*got 'transformer'"):
        make_cell("transformer", H)
    with pytest.raises(ValueError, match="activation"):
        ElmanCell(H, activation="sigmoid")
    with pytest.raises(ValueError, match="weight_init"):
        make_cell("gru", H, init="xavier")
    with pytest.raises(ValueError, match="rnn_relu"):
        make_cell("rnn_relu", H, activation="tanh")


def test_feature_mismatch_is_readable():
    cell = GRUCell(H)
    x = jnp.ones((B, IN))
    carry = cell.initialize_carry(None, x.shape)
    variables = jax.eval_shape(cell.init, jax.random.key(0), carry, x)
    with pytest.raises(ValueError, match="6 features .* expect 5"):
        jax.eval_shape(cell.apply, variables, carry, jnp.ones((B, IN + 1)))


def test_registry_import_paths_and_capabilities():
    """Names and import paths build cells; capabilities follow the math, not the class name."""
    from flax import linen as nn

    from seqjax.core import cells

    assert {"mingru", "minlstm", "flax_optimized_lstm", "flax_mgu"} <= set(cells.CELLS)
    assert isinstance(make_cell("flax_optimized_lstm", H), nn.OptimizedLSTMCell)
    assert isinstance(make_cell("flax.linen:GRUCell", H), nn.GRUCell)
    assert make_cell("rnn_relu", H).activation == "relu"
    with pytest.raises(ValueError, match="cannot import Nope from flax.linen"):
        make_cell("flax.linen:Nope", H)

    class OtherGates(LSTMCell):  # same parameters, other gate math: no cuDNN
        def gates(self, carry, xp, hh):
            return super().gates(carry, xp, -hh)

    class OwnCall(GRUCell):  # a step of its own: not fused
        def __call__(self, carry, x):
            return super().__call__(carry, 2 * x)

    assert cells.supports(LSTMCell(H), "cudnn") and not cells.supports(OtherGates(H), "cudnn")
    assert cells.supports(OtherGates(H), "fused") and not cells.supports(OwnCall(H), "fused")
    assert not cells.supports(nn.LSTMCell(H), "fused") and not cells.supports(nn.LSTMCell(H), "cudnn")
    assert cells.supports(make_cell("mingru", H), "linear") and not cells.supports(LSTMCell(H), "linear")

    @cells.register_cell("test_double_gru")
    class Registered(GRUCell):
        pass

    assert isinstance(make_cell("test_double_gru", H), Registered)
    with pytest.raises(ValueError, match="already registered"):
        cells.register_cell("test_double_gru")(ElmanCell)
