"""Recurrent cells with PyTorch-exact gate math: Elman RNN, LSTM and GRU.

Every cell keeps its weights in two fused ``nn.Dense`` layers, laid out as
PyTorch's ``weight_*.T`` / ``bias_*`` with the gates concatenated in torch's
order::

    params["ih"]["kernel"]: [in, G*H]   params["ih"]["bias"]: [G*H]
    params["hh"]["kernel"]: [H,  G*H]   params["hh"]["bias"]: [G*H]

with G = 1 (Elman), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n).

A step is split in two so that a layer can hoist the input half out of its
time loop: ``input_projection(x)`` computes ``x @ W_ih + b_ih`` (for all time
steps at once) and ``step(carry, xp)`` does only the recurrent matmul
``h @ W_hh + b_hh`` (of ``recurrent_input(carry)``) and the gate math, ``gates(carry,
xp, hh)``, which touches no parameters (``seqjax.core.recurrence`` runs it with its own
backward pass). ``cell(carry, x)`` chains the two, as ``flax.linen`` cells do.

Carries start at zero. A step returns its new carry in the dtype of the carry
it was given, so a low-precision ``dtype`` (e.g. ``jnp.bfloat16``) speeds up
the matmuls while the state stays in the carry's dtype (float32 by default).

The faster loops a cell may declare (``fused``, ``cudnn``, ``linear``, ...) and the registry
are :mod:`seqjax.core.cellbase`'s; this module re-exports them (``make_cell``, ``register_cell``,
``supports``, ...). Registered names: ``rnn``, ``rnn_relu``, ``lstm``, ``gru`` (here),
flax.linen's cells as ``flax_*``, and those of ``seqjax.core.mincells`` and ``seqjax.core.paracells``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax.core.cellbase import (  # noqa: F401  (re-exported: the cell API of seqjax.core.cells)
    BUILTIN_MODULES,
    INITS,
    SeqjaxCell,
    _uniform,
    cell_fields,
    make_cell,
    register_cell,
    registered_cells,
    resolve_cell,
    supports,
)

Array = jax.Array
Carry = Any


def _sigmoid(x: Array) -> Array:
    """``sigmoid(x)`` as ``0.5 tanh(x / 2) + 0.5``: the same function, but XLA:CPU evaluates
    it as one polynomial ``tanh`` instead of ``exp`` + a division."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _drop_capabilities(cls, **relies_on: tuple[str, ...]) -> None:
    """Turns off each capability whose methods ``cls`` overrides without declaring it again."""
    for capability, methods in relies_on.items():
        if capability not in cls.__dict__ and any(m in cls.__dict__ for m in methods):
            setattr(cls, capability, False)


class _FusedCell(SeqjaxCell):
    """Shared machinery of the fused cells: ``ih``/``hh`` projections of all gates at once.

    Subclasses set ``num_gates`` and implement ``gates`` (and ``recurrent_input`` when
    the carry is more than h).
    """

    fused: ClassVar[bool] = True
    cudnn: ClassVar[bool] = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _drop_capabilities(cls, fused=("step", "__call__", "input_projection"),
                           cudnn=("step", "__call__", "input_projection", "gates", "recurrent_input"))

    def setup(self):
        scale = self.init_range()

        def dense(bias_init):
            return nn.Dense(
                self.num_gates * self.features,
                kernel_init=_uniform(scale),
                bias_init=bias_init,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
            )

        self.ih = dense(_uniform(scale))
        self.hh = dense(self._hh_bias_init(scale))

    def _hh_bias_init(self, scale: float):
        return _uniform(scale)

    def input_projection(self, x: Array) -> Array:
        """``x @ W_ih + b_ih``: [..., in] -> [..., G*H]."""
        if self.has_variable("params", "ih"):
            fan_in = self.variables["params"]["ih"]["kernel"].shape[0]
            if x.shape[-1] != fan_in:
                raise ValueError(
                    f"inputs have {x.shape[-1]} features (last axis) but the cell's"
                    f" parameters expect {fan_in}"
                )
        return self.ih(x)

    def step(self, carry: Carry, xp: Array) -> tuple[Carry, Array]:
        """One time step from the input projection xp [batch, G*H]: the recurrent matmul
        ``h @ W_hh + b_hh``, then :meth:`gates`. Returns (new_carry, y [batch, H])."""
        return self.gates(carry, xp, self.hh(self.recurrent_input(carry)))

    @nn.nowrap
    def gates(self, carry: Carry, xp: Array, hh: Array) -> tuple[Carry, Array]:
        """The gate math of one step (no parameters): carry, xp and hh [batch, G*H] ->
        (new_carry, y [batch, H])."""
        raise NotImplementedError

    @nn.nowrap
    def recurrent_input(self, carry: Carry) -> Array:
        """The part of the carry that multiplies ``W_hh``: h [batch, H]."""
        return carry

    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One time step: x [batch, in] -> (new_carry, y [batch, H])."""
        return self.step(carry, self.input_projection(x))


class ElmanCell(_FusedCell):
    """Elman RNN cell, as ``torch.nn.RNN``: h' = act(x W_ih + b_ih + h W_hh + b_hh).

    Carry: h [batch, H]. ``activation`` is "tanh" or "relu".
    """

    activation: str = "tanh"

    num_gates = 1

    def __post_init__(self):
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        super().__post_init__()

    @nn.nowrap
    def gates(self, carry: Array, xp: Array, hh: Array) -> tuple[Array, Array]:
        """h [batch, H], xp and hh = h W_hh + b_hh [batch, H] -> (h', h')."""
        act = jnp.tanh if self.activation == "tanh" else jax.nn.relu
        h = act(xp + hh).astype(carry.dtype)
        return h, h


class LSTMCell(_FusedCell):
    """LSTM cell, as ``torch.nn.LSTM`` (gate order i, f, g, o).

    Carry: (c, h), each [batch, H], as ``flax.linen.LSTMCell``.
    ``forget_bias`` is added to the forget-gate slice of ``b_hh`` at init.
    """

    forget_bias: float = 0.0

    num_gates = 4
    cudnn = True

    def _hh_bias_init(self, scale: float):
        forget = slice(self.features, 2 * self.features)
        return _uniform(scale, self.forget_bias, forget)

    @nn.nowrap
    def gates(self, carry: tuple[Array, Array], xp: Array, hh: Array):
        """(c, h) [batch, H] each, xp and hh = h W_hh + b_hh [batch, 4H] -> ((c', h'), h')."""
        c, h = carry
        i, f, g, o = jnp.split(xp + hh, 4, axis=-1)
        new_c = (_sigmoid(f) * c + _sigmoid(i) * jnp.tanh(g)).astype(c.dtype)
        new_h = (_sigmoid(o) * jnp.tanh(new_c)).astype(h.dtype)
        return (new_c, new_h), new_h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """(c, h): zeros [batch, H] each for input_shape (batch, in)."""
        h = super().initialize_carry(rng, input_shape)
        return h, h

    @nn.nowrap
    def recurrent_input(self, carry: tuple[Array, Array]) -> Array:
        """h of the carry (c, h)."""
        return carry[1]


class GRUCell(_FusedCell):
    """GRU cell, as ``torch.nn.GRU`` (gate order r, z, n).

    The reset gate multiplies the hidden projection *after* the matmul::

        r = σ(x_r + h_r)    z = σ(x_z + h_z)    (h_* = h W_h* + b_h*)
        n = tanh(x_n + r * h_n)
        h' = (1 - z) * n + z * h

    Carry: h [batch, H].
    """

    num_gates = 3

    @nn.nowrap
    def gates(self, carry: Array, xp: Array, hh: Array) -> tuple[Array, Array]:
        """h [batch, H], xp and hh = h W_hh + b_hh [batch, 3H] -> (h', h')."""
        xr, xz, xn = jnp.split(xp, 3, axis=-1)
        hr, hz, hn = jnp.split(hh, 3, axis=-1)
        r = _sigmoid(xr + hr)
        z = _sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = ((1.0 - z) * n + z * carry).astype(carry.dtype)
        return h, h


# seqjax.core.mincells and seqjax.core.paracells register their own cells; seqjax.core.cellbase loads them by
# name (BUILTIN_MODULES): importing them here would make an import circle (they import this).
register_cell("rnn")(ElmanCell)
register_cell("rnn_relu", activation="relu")(ElmanCell)
register_cell("lstm")(LSTMCell)
register_cell("gru")(GRUCell)
register_cell("flax_simple")(nn.SimpleCell)
register_cell("flax_lstm")(nn.LSTMCell)
register_cell("flax_optimized_lstm")(nn.OptimizedLSTMCell)
register_cell("flax_gru")(nn.GRUCell)
register_cell("flax_mgu")(nn.MGUCell)



def __getattr__(name: str):
    if name == "CELLS":  # the registered names, built-ins loaded (seqjax.core.cellbase.registered_cells)
        return registered_cells()
    raise AttributeError(f"module 'seqjax.core.cells' has no attribute {name!r}")
