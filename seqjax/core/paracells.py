"""ParaGRU and ParaLSTM (Danieli et al. 2025, "ParaRNN"): GRU and LSTM gates with diagonal
recurrent weights, so that each unit's next state reads only its own state.

The gate math is that of ``seqjax.core.cells.GRUCell`` / ``LSTMCell`` (PyTorch's), with the
recurrent matmul ``h @ W_hh + b_hh`` replaced by the element-wise ``h ⊙ a + b`` per gate::

    ParaGRU:   r = σ(x_r + a_r ⊙ h + b_r)    z = σ(x_z + a_z ⊙ h + b_z)
               n = tanh(x_n + r ⊙ (a_n ⊙ h + b_n))
               h' = (1 - z) ⊙ n + z ⊙ h
    ParaLSTM:  i, f, g, o = x_{i,f,g,o} + a_{i,f,g,o} ⊙ h + b_{i,f,g,o}
               c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)    h' = σ(o) ⊙ tanh(c')

(``x_*``: the input projection ``x @ W_ih + b_ih``.) Their state Jacobian is therefore
diagonal (ParaGRU) or a 2 × 2 block per unit over (c, h) (ParaLSTM): the cells declare
``unitwise = True`` and ``backend="newton"`` (``seqjax.core.newton``) solves them by exact
Newton in a few iterations. On the sequential backends they run through the generic scan
over the cell.

Parameters: ``ih`` Dense ``kernel [in, G*H]``, ``bias [G*H]`` and ``hh`` with
``kernel [G*H]`` (the diagonals a) and ``bias [G*H]``, gates in GRU (r, z, n) / LSTM
(i, f, g, o) order; every one drawn from U(-1/sqrt(H), 1/sqrt(H)) ("torch" init) or
U(-init_scale, init_scale). Carry: h [batch, H] / (c, h).
"""
from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax.core.cells import GRUCell, LSTMCell, _uniform, register_cell

Array = jax.Array


def diagonal_projection(h: Array, kernel: Array, bias: Array) -> Array:
    """``h ⊙ a + b`` for every gate: h [..., H], kernel and bias [G*H] -> [..., G*H]."""
    gates = kernel.shape[-1] // h.shape[-1]
    h = jnp.tile(h, (1,) * (h.ndim - 1) + (gates,))
    dt = jnp.result_type(h, kernel, bias)
    return h.astype(dt) * kernel.astype(dt) + bias.astype(dt)


class DiagonalRecurrence(nn.Module):
    """The recurrent projection of a Para cell: h [..., H] -> h ⊙ a + b [..., G*H]."""

    features: int  # G*H
    kernel_init: Any
    bias_init: Any
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init, (self.features,), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return diagonal_projection(h, kernel, bias)


def _setup(cell) -> None:
    """The projections of a Para cell: ``ih`` dense, ``hh`` diagonal (module docstring)."""
    scale = cell.init_range()
    cell.ih = nn.Dense(cell.num_gates * cell.features, kernel_init=_uniform(scale), bias_init=_uniform(scale),
                       dtype=cell.dtype, param_dtype=cell.param_dtype)
    cell.hh = DiagonalRecurrence(cell.num_gates * cell.features, _uniform(scale), cell._hh_bias_init(scale),
                                 param_dtype=cell.param_dtype)


@register_cell("paragru")
class ParaGRUCell(GRUCell):
    """ParaGRU: ``GRUCell``'s gates with diagonal recurrent weights (module docstring)."""

    fused: ClassVar[bool] = False  # no dense W_hh for seqjax.core.recurrence
    unitwise: ClassVar[bool] = True  # unit i's next state reads unit i's state only

    def setup(self):
        _setup(self)

    def input_projection(self, x: Array) -> Array:
        """``x @ W_ih + b_ih``: [..., in] -> [..., G*H] (G = 3 gates here, 4 in ParaLSTM)."""
        return self.ih(x)

    @nn.nowrap
    def recurrent_projection(self, h: Array, kernel: Array, bias: Array) -> Array:
        """``hh`` from its params: h [B, H] -> [B, G*H] (:func:`diagonal_projection`)."""
        return diagonal_projection(h, kernel, bias)


@register_cell("paralstm")
class ParaLSTMCell(LSTMCell):
    """ParaLSTM: ``LSTMCell``'s gates with diagonal recurrent weights (module docstring);
    ``forget_bias`` is added to the forget gate's ``b`` at init."""

    fused: ClassVar[bool] = False
    cudnn: ClassVar[bool] = False
    unitwise: ClassVar[bool] = True

    # the projections of every Para cell (G = 4 gates here)
    setup = ParaGRUCell.setup
    input_projection = ParaGRUCell.input_projection
    recurrent_projection = ParaGRUCell.recurrent_projection
