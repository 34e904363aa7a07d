"""seqjax's linen layers inside flax.nnx models (flax.nnx.bridge.ToNNX): the example of
docs/nnx.md runs and trains, and a wrapped layer computes what the linen layer computes."""
from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx import bridge

from seqjax import Bidirectional, GRUCell, Recurrent

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "nnx.md"


def test_the_documented_example_trains():
    """The python block of docs/nnx.md: an NNX tagger with a Stacked LSTM takes optimizer
    steps (dropout on), its loss goes down, and its params keep the linen layout."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 — the documented example itself
    losses, params = scope["losses"], scope["params"]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert set(params) == {"layer_0", "layer_1"}
    assert params["layer_0"]["cell"]["ih"]["kernel"].shape == (8, 32)  # [embed, 4 * hidden]


def test_wrapped_layer_gives_the_linen_numbers():
    """A Bidirectional pair of Recurrent GRU layers wrapped for NNX: outputs, final carries
    and parameter gradients equal the linen layer's with the same params, padded and empty
    rows included."""
    layer = lambda: Bidirectional(Recurrent(GRUCell(5)), Recurrent(GRUCell(5)))  # noqa: E731
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 2)), jnp.float32)
    lengths = jnp.asarray([4, 2, 0])
    wrapped = bridge.ToNNX(layer(), rngs=nnx.Rngs(0))
    bridge.lazy_init(wrapped, x, lengths)
    params = nnx.to_pure_dict(nnx.state(wrapped, nnx.Param))
    assert set(params) == {"forward", "backward"}

    def linen_loss(p):
        out = layer().apply({"params": p}, x, lengths)
        return out[0].sum(), out

    def nnx_loss(m):
        out = m(x, lengths)
        return out[0].sum(), out

    (_, want), grad_linen = jax.jit(jax.value_and_grad(linen_loss, has_aux=True))(params)
    (_, got), grad_nnx = nnx.jit(nnx.value_and_grad(nnx_loss, has_aux=True))(wrapped)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(got[0][2]).max()) == 0.0  # a length-0 row stays zero
    grad_nnx = nnx.to_pure_dict(grad_nnx)
    assert jax.tree.structure(grad_nnx) == jax.tree.structure(grad_linen)
    for a, b in zip(jax.tree.leaves(grad_nnx), jax.tree.leaves(grad_linen), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
