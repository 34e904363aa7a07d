"""Recurrent / Bidirectional / Stacked: loops, padding invariance, scan, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax.core.cells import GRUCell, LSTMCell, make_cell
from seqjax.core.layers import Bidirectional, Recurrent, Stacked, hidden_sizes, zero_carry

B, T, IN, H = 4, 7, 3, 5
LENGTHS = np.array([7, 3, 0, 3])  # few distinct lengths: few compilations


def inputs(batch=B, time=T, features=IN, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, features)).astype(np.float32)


def random_variables(layer, *args, seed=0):
    """Variables of the right shapes, drawn in NumPy (no XLA compile of init)."""
    shapes = jax.eval_shape(layer.init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.uniform(-0.6, 0.6, s.shape).astype(s.dtype), shapes)


def assert_trees_close(a, b, atol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


def row(tree, i):
    return jax.tree.map(lambda x: x[i : i + 1], tree)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_equals_python_loop(kind):
    cell = make_cell(kind, H)
    layer = Recurrent(cell)
    x = inputs()
    variables = random_variables(layer, x)
    outputs, carry = jax.jit(layer.apply)(variables, x)

    cell_vars = {"params": variables["params"]["cell"]}
    ref_carry = cell.initialize_carry(None, x[:, 0].shape)
    ref_outputs = []
    for t in range(T):
        ref_carry, y = cell.apply(cell_vars, ref_carry, x[:, t])
        ref_outputs.append(y)
    np.testing.assert_allclose(outputs, np.stack(ref_outputs, 1), atol=1e-5)
    assert_trees_close(carry, ref_carry)


def test_reverse_equals_forward_on_flipped_input():
    x = inputs()
    fwd, bwd = Recurrent(LSTMCell(H)), Recurrent(LSTMCell(H), reverse=True)
    variables = random_variables(fwd, x)
    out, carry = jax.jit(bwd.apply)(variables, x)
    ref_out, ref_carry = jax.jit(fwd.apply)(variables, x[:, ::-1])
    np.testing.assert_allclose(out, ref_out[:, ::-1], atol=1e-6)
    assert_trees_close(carry, ref_carry, atol=1e-6)


LAYERS = {
    "forward": lambda: Recurrent(LSTMCell(H)),
    "reverse": lambda: Recurrent(GRUCell(H), reverse=True),
    "bidirectional": lambda: Bidirectional(Recurrent(GRUCell(H)), Recurrent(GRUCell(H), reverse=True)),
    "stacked": lambda: Stacked("lstm", H, layers=2),
    "stacked_bidirectional": lambda: Stacked("gru", (H, 2), bidirectional=True),
}


@pytest.mark.parametrize("name", LAYERS)
def test_padding_invariance(name):
    layer = LAYERS[name]()
    x = inputs()
    variables = random_variables(layer, x)
    apply = jax.jit(layer.apply)  # traced lengths: the unchecked path
    outputs, carries = apply(variables, x, LENGTHS)
    zeros = jax.tree.map(jnp.zeros_like, carries)
    for i, length in enumerate(LENGTHS):
        np.testing.assert_array_equal(outputs[i, length:], 0.0)
        if length == 0:
            assert_trees_close(row(carries, i), row(zeros, i), atol=0)
            continue
        alone_out, alone_carry = apply(variables, x[i : i + 1, :length])
        np.testing.assert_allclose(outputs[i : i + 1, :length], alone_out, atol=1e-5)
        assert_trees_close(row(carries, i), alone_carry)


def test_bidirectional_merge_sum_and_initial_carry():
    x = inputs()
    fwd, bwd = Recurrent(GRUCell(H)), Recurrent(GRUCell(H))  # reverse forced
    concat, total = Bidirectional(fwd, bwd), Bidirectional(fwd, bwd, merge="sum")
    variables = random_variables(concat, x)
    init = (np.ones((B, H), np.float32), -np.ones((B, H), np.float32))
    out, (cf, cb) = jax.jit(concat.apply)(variables, x, LENGTHS, init)
    summed, _ = jax.jit(total.apply)(variables, x, LENGTHS, init)
    assert out.shape == (B, T, 2 * H) and summed.shape == (B, T, H)
    np.testing.assert_allclose(summed, out[..., :H] + out[..., H:], atol=1e-6)
    # the empty row keeps its initial carries
    np.testing.assert_array_equal(cf[2], 1.0)
    np.testing.assert_array_equal(cb[2], -1.0)
    ref, _ = jax.jit(Recurrent(GRUCell(H), reverse=True).apply)(
        {"params": variables["params"]["backward"]}, x, LENGTHS, init[1]
    )
    np.testing.assert_allclose(out[..., H:], ref, atol=1e-6)


def test_stacked_carry_threading_equals_one_run():
    """Running two windows with the carry threaded equals one run (BPTT)."""
    layer = Stacked("lstm", (6, 4))
    x = inputs(time=8)
    variables = random_variables(layer, x)
    apply = jax.jit(layer.apply)
    full, full_carry = apply(variables, x)
    first, carry = apply(variables, x[:, :4], None, layer.initialize_carry(B))
    second, carry = apply(variables, x[:, 4:], None, carry)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, atol=1e-5)
    assert_trees_close(carry, full_carry)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_per_layer_sizes_and_zero_carry(bidirectional):
    layer = Stacked("lstm", (256, 128), bidirectional=bidirectional)
    x = inputs(batch=2, time=3)
    variables = jax.eval_shape(layer.init, jax.random.key(0), x)
    outputs, carries = jax.eval_shape(layer.apply, variables, x)
    assert outputs.shape == (2, 3, 256 if bidirectional else 128)
    expected = zero_carry("lstm", (256, 128), 2, bidirectional)
    assert jax.tree.structure(carries) == jax.tree.structure(expected)
    assert jax.tree.map(jnp.shape, carries) == jax.tree.map(jnp.shape, expected)
    kernel = "forward/cell/hh/kernel" if bidirectional else "cell/hh/kernel"
    node = variables["params"]["layer_1"]
    for key in kernel.split("/"):
        node = node[key]
    assert node.shape == (128, 4 * 128)
    assert set(variables["params"]) == {"layer_0", "layer_1"}


def test_hidden_sizes():
    assert hidden_sizes(200, 3) == (200, 200, 200)
    assert hidden_sizes([256, 128]) == (256, 128)
    assert hidden_sizes((256, 128), 2) == (256, 128)
    with pytest.raises(ValueError, match="layers=3"):
        hidden_sizes((256, 128), 3)


def _count_eqns(jaxpr):
    return len(jaxpr.jaxpr.eqns)


def _scans(jaxpr):
    """The scan equations of a jaxpr, also those inside calls (the default backend's
    scan sits in a custom_vjp call)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for e in jaxpr.eqns:
        if e.primitive.name == "scan":
            yield e
            continue
        for v in e.params.values():
            if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns"):
                yield from _scans(v)


def _scan_body(jaxpr) -> str:
    (scan,) = list(_scans(jaxpr))
    return str(scan.params["jaxpr"])


@pytest.mark.parametrize("backend", ["scan", "flax_scan"])
def test_jaxpr_size_independent_of_length_and_fast_path_unmasked(backend):
    layer = Recurrent(LSTMCell(H), backend=backend)
    variables = random_variables(layer, inputs())

    def jaxpr(time, lengths=False):
        x = jnp.zeros((B, time, IN))
        if lengths:
            return jax.make_jaxpr(lambda x, l: layer.apply(variables, x, l))(x, jnp.full((B,), time))
        return jax.make_jaxpr(lambda x: layer.apply(variables, x))(x)

    assert _count_eqns(jaxpr(10)) == _count_eqns(jaxpr(1000))
    assert _count_eqns(jaxpr(10, True)) == _count_eqns(jaxpr(1000, True))
    assert "select_n" not in _scan_body(jaxpr(10))
    assert "select_n" in _scan_body(jaxpr(10, True))


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        layer = Recurrent(make_cell("lstm", 3, param_dtype=jnp.float64), reverse=True)
        x = jnp.asarray(inputs(batch=2, time=4, features=2), jnp.float64)
        lengths = jnp.array([4, 2])
        params = random_variables(layer, x)["params"]

        @jax.jit
        def loss(params, x):
            out, (c, h) = layer.apply({"params": params}, x, lengths)
            return jnp.sum(out**2) + jnp.sum(c * h)

        check_grads(loss, (params, x), order=1, modes=["rev"])


def test_dropout_variational_mask_constant_over_time():
    x = inputs(batch=2, time=6)
    layer = Stacked("gru", 8, layers=2, dropout=0.5, variational=True)
    variables = random_variables(layer, x)
    _, state = jax.jit(
        lambda v, x: layer.apply(
            v,
            x,
            deterministic=False,
            rngs={"dropout": jax.random.key(3)},
            capture_intermediates=True,
        )
    )(variables, x)
    layer0 = state["intermediates"]["layer_0"]["__call__"][0][0]
    dropped = state["intermediates"]["Dropout_0"]["__call__"][0]
    kept = np.asarray(dropped != 0)
    np.testing.assert_allclose(dropped[kept], 2 * layer0[kept], rtol=1e-6)
    assert 0.2 < kept.mean() < 0.8
    assert np.all(kept == kept[:, :1, :])  # one mask per sequence, all steps


def test_deterministic_dropout_is_identity():
    x = inputs()
    dropped = Stacked("lstm", 6, layers=3, dropout=0.7, variational=True)
    plain = Stacked("lstm", 6, layers=3)
    variables = random_variables(plain, x)
    out, carry = jax.jit(dropped.apply)(variables, x, LENGTHS)  # deterministic
    ref, ref_carry = jax.jit(plain.apply)(variables, x, LENGTHS)
    np.testing.assert_array_equal(out, ref)
    assert_trees_close(carry, ref_carry, atol=0)


def test_bad_inputs_raise_readable_errors():
    layer = Recurrent(LSTMCell(H))
    x = inputs()
    variables = random_variables(layer, x)

    def error(*args):
        with pytest.raises(ValueError) as info:
            layer.apply(variables, *args)
        return str(info.value)

    msg = error(x[0])
    assert "inputs" in msg and "(7, 3)" in msg
    msg = error(x, np.array([7, 8, 1, 1]))
    assert "seq_lengths" in msg and "time=7" in msg and "8" in msg
    msg = error(x, np.array([7, -1, 1, 1]))
    assert "seq_lengths" in msg and "-1" in msg
    msg = error(x, np.array([7, 7]))
    assert "seq_lengths" in msg and "(4,)" in msg and "(2,)" in msg
    msg = error(x, None, (np.zeros((B, H)), np.zeros((B, H + 1))))
    assert "initial_carry" in msg and "(4, 6)" in msg
    msg = error(inputs(features=IN + 1))
    assert "4 features" in msg and "expect 3" in msg
    with pytest.raises(ValueError, match="merge"):
        jax.eval_shape(Stacked("gru", 4, bidirectional=True, merge="mean").init, jax.random.key(0), x)


# --------------------------------------------------------------------------- any flax cell

FLAX_CELLS = ["flax_simple", "flax_lstm", "flax_optimized_lstm", "flax_gru", "flax_mgu"]


@pytest.mark.parametrize("name", FLAX_CELLS)
def test_flax_cells_in_a_bidirectional_stack(name):
    """flax's own cells through the generic path: a padded row equals the row run alone,
    and full-length rows equal flax's nn.RNN layer by layer with the same params."""
    from flax import linen as nn

    x = inputs()
    layer = Stacked(name, (H, 4), bidirectional=True)
    variables = random_variables(layer, x, LENGTHS)
    out, carries = layer.apply(variables, x, LENGTHS)
    for i in (1, 3):
        n = LENGTHS[i]
        alone, alone_carries = layer.apply(variables, x[i : i + 1, :n])
        np.testing.assert_allclose(out[i : i + 1, :n], alone, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(out[i, n:], 0)
        assert_trees_close(row(carries, i), alone_carries)

    full, _ = layer.apply(variables, x)
    ref = x
    for i, size in enumerate((H, 4)):
        p = variables["params"][f"layer_{i}"]
        cell = make_cell(name, size)
        fwd = nn.RNN(cell).apply({"params": p["forward"]}, ref)
        bwd = nn.RNN(cell, reverse=True, keep_order=True).apply({"params": p["backward"]}, ref)
        ref = jnp.concatenate([fwd, bwd], -1)
    np.testing.assert_allclose(full, ref, atol=1e-5, rtol=1e-5)


def test_user_cell_class_and_carry_from_the_cell():
    """A cell class with a 3-part carry: zero_carry and the stack take its structure from
    initialize_carry; the LM-style carried state resumes exactly."""
    from flax import linen as nn

    class Triple(nn.RNNCellBase):
        features: int

        @nn.compact
        def __call__(self, carry, x):
            a, b, c = carry
            h = jnp.tanh(nn.Dense(self.features)(x) + nn.Dense(self.features, use_bias=False)(a * b - c))
            return (h, 0.5 * b + 0.5, c + h), h

        @nn.nowrap
        def initialize_carry(self, rng, input_shape):
            z = jnp.zeros(input_shape[:-1] + (self.features,))
            return z, z, z

        @property
        def num_feature_axes(self):
            return 1

    x = inputs()
    layer = Stacked(Triple, (H, 4))
    variables = random_variables(layer, x)
    zero = zero_carry(Triple, (H, 4), B)
    assert [len(c) for c in zero] == [3, 3] and zero[1][0].shape == (B, 4)
    full, full_carry = layer.apply(variables, x)
    first, carry = layer.apply(variables, x[:, :3])
    second, carry = layer.apply(variables, x[:, 3:], initial_carry=carry)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, atol=1e-5)
    assert_trees_close(carry, full_carry)


# --------------------------------------------------------------------------- recurrent dropout


@pytest.mark.parametrize("cell", ["lstm", "gru", "flax_gru"])
def test_recurrent_dropout_is_one_mask_per_sequence_on_h(cell):
    """Fused path (scan with its own backward) == the flax_scan reference with the same
    mask; off (the plain outputs) unless deterministic=False; zero past each length."""
    x = inputs()
    layer = Recurrent(make_cell(cell, H), recurrent_dropout=0.5)
    variables = random_variables(layer, x, LENGTHS)
    rngs = {"dropout": jax.random.key(7)}
    plain, _ = layer.apply(variables, x, LENGTHS)
    off, _ = layer.clone(recurrent_dropout=0.0).apply(variables, x, LENGTHS)
    np.testing.assert_array_equal(plain, off)  # deterministic by default
    dropped, carry = layer.apply(variables, x, LENGTHS, deterministic=False, rngs=rngs)
    assert not np.allclose(dropped, plain)
    np.testing.assert_allclose(dropped[:, 0], plain[:, 0], atol=1e-6)  # the state is masked, not the input
    ref, ref_carry = layer.clone(backend="flax_scan").apply(variables, x, LENGTHS, deterministic=False,
                                                            rngs=rngs)
    np.testing.assert_allclose(dropped, ref, atol=1e-5, rtol=1e-5)
    assert_trees_close(carry, ref_carry)
    np.testing.assert_array_equal(np.asarray(dropped)[2], 0)  # length 0


def test_recurrent_dropout_gradients_match_the_reference():
    x = inputs()
    layer = Recurrent(make_cell("lstm", H), recurrent_dropout=0.3)
    variables = random_variables(layer, x)
    rngs = {"dropout": jax.random.key(1)}

    def loss(v, backend):
        out, _ = layer.clone(backend=backend).apply(v, x, LENGTHS, deterministic=False, rngs=rngs)
        return jnp.sum(out ** 2)

    assert_trees_close(jax.grad(loss)(variables, "scan"), jax.grad(loss)(variables, "flax_scan"), atol=1e-4)
