"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates read only the input, so the recurrence is linear in the state::

    minGRU:   z = σ(x W_z + b_z)    h̃ = g(x W_h + b_h)
              h' = (1 - z) * h + z * h̃
    minLSTM:  f = σ(x W_f + b_f)    i = σ(x W_i + b_i)    h̃ = g(x W_h + b_h)
              f', i' = f / (f + i), i / (f + i)
              h' = f' * h + i' * h̃

with ``g(v) = v + 0.5`` for ``v >= 0`` and ``σ(v)`` below (the paper's positive candidate,
which lets the whole recurrence run in log space). Each cell declares ``linear = True``
and gives ``coefficients(x) -> (log a, log b)`` with ``h' = a * h + b``: a layer computes
them for all time steps in one matmul and runs the recurrence either as a sequential scan
or parallel in time (``seqjax.core.recurrence.linear_recurrence``). Carry: h [batch, H]; the
output is h.

Parameters: one ``ih`` Dense, ``kernel [in, G*H]`` and ``bias [G*H]``, gates in the order
(z, h̃) for minGRU (G = 2) and (f, i, h̃) for minLSTM (G = 3).
"""
from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax.core.cellbase import SeqjaxCell, _uniform, register_cell

Array = jax.Array


def log_g(v: Array) -> Array:
    """``log g(v)``: ``log(v + 0.5)`` for v >= 0, ``log σ(v)`` below."""
    return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


class _MinCell(SeqjaxCell):
    """Shared parts of the min cells (see the module docstring); the fields are
    :class:`seqjax.core.cells.SeqjaxCell`'s (``dtype`` is that of the input projection: the
    recurrence itself runs in float32)."""

    linear: ClassVar[bool] = True

    @nn.compact
    def coefficients(self, x: Array) -> tuple[Array, Array]:
        """x [..., in] -> (log a, log b) [..., H] each, float32, with h' = a * h + b."""
        scale = self.init_range()
        dense = nn.Dense(self.num_gates * self.features, kernel_init=_uniform(scale),
                         bias_init=_uniform(scale),
                         dtype=self.dtype, param_dtype=self.param_dtype, name="ih")
        return self.log_coefficients(*jnp.split(dense(x).astype(jnp.float32), self.num_gates, axis=-1))

    @nn.nowrap
    def log_coefficients(self, *gates: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def __call__(self, carry: Array, x: Array) -> tuple[Array, Array]:
        """One step: h [batch, H], x [batch, in] -> (h', h')."""
        log_a, log_b = self.coefficients(x)
        h = (jnp.exp(log_a) * carry + jnp.exp(log_b)).astype(carry.dtype)
        return h, h


@register_cell("mingru")
class MinGRUCell(_MinCell):
    """minGRU: h' = (1 - z) * h + z * g(h̃), z = σ(x W_z + b_z) (module docstring)."""

    num_gates = 2

    @nn.nowrap
    def log_coefficients(self, k: Array, v: Array) -> tuple[Array, Array]:
        """Pre-activations of z and h̃ [..., H] -> (log(1 - z), log z + log g(h̃))."""
        return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(v)


@register_cell("minlstm")
class MinLSTMCell(_MinCell):
    """minLSTM: h' = f' * h + i' * g(h̃) with f' + i' = 1 (module docstring)."""

    num_gates = 3

    @nn.nowrap
    def log_coefficients(self, f: Array, i: Array, v: Array) -> tuple[Array, Array]:
        """Pre-activations of f, i and h̃ [..., H] -> (log f', log i' + log g(h̃))."""
        diff = jax.nn.softplus(-f) - jax.nn.softplus(-i)  # log σ(i) - log σ(f)
        return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(v)
