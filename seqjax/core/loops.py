"""The time loops of a recurrent layer: an ordered registry; the first loop that applies
to a call runs it.

:class:`seqjax.core.layers.Recurrent` checks its inputs and carry, then hands the call (a
:class:`LoopCall`) to :func:`select_loop`. The built-in loops, in order:

- ``cudnn``: a forward ``LSTMCell`` layer with ``backend="cudnn"`` on a GPU, as one cuDNN
  kernel (no recurrent dropout, no weight-drop, no ``reverse``, no cell ``dtype``);
- ``linear``: a cell that declares ``linear`` (``h' = a(x) h + b(x)``), by
  :func:`seqjax.core.recurrence.linear_recurrence`, parallel in time when asked;
- ``newton``: ``backend="newton"``, all time steps at once by Newton iterations
  (:func:`seqjax.core.newton.cell_recurrence`);
- ``fused``: a cell that declares ``fused``, by :func:`seqjax.core.recurrence.recurrence`
  (``dW_hh`` as one matmul after the loop);
- ``scan``: ``nn.scan`` over the cell's own step, plain autodiff. It applies to every call
  and stays last, so any ``flax.linen.RNNCellBase`` runs.

``newton`` and ``fused`` skip the call that creates the parameters (``init``), so the
parameters are always those the ``scan`` loop creates, whatever loop runs later.

A new kernel is one :func:`register_loop` call, by default placed just before ``scan``::

    register_loop("mykernel", applies=lambda call: call.layer.backend == "scan" and ...,
                  run=my_run)   # my_run(call) -> (outputs [batch, time, H], final carry)

Every loop keeps the layer's contract: outputs ``[batch, time, H]``; past a row's length
its carry is frozen and its outputs are zero; ``reverse`` reads each row's valid prefix
from its end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax.core import newton as newton_lib
from seqjax.core import weight_drop as weight_drop_lib
from seqjax.core.cellbase import supports
from seqjax.core.recurrence import NEG_LOG, linear_recurrence, recurrence

Array = jax.Array
Carry = Any


@dataclasses.dataclass(frozen=True)
class LoopCall:
    """One call of a :class:`~seqjax.core.layers.Recurrent` layer, as a time loop sees it.

    Attributes:
      layer: the bound layer: its ``cell``, ``unroll``, ``remat``, ``backend``,
        ``parallel_scan``, ``newton`` options; ``layer.recurrent_mask(shape)`` draws a
        recurrent-dropout mask.
      inputs: [batch, time, features].
      seq_lengths: [batch] ints, or None for full-length rows.
      carry: the initial carry, checked against the cell's.
      reverse: run each row's valid prefix from its end.
      dropping: recurrent dropout is on for this call (training, ``recurrent_dropout > 0``).
      drop_w: weight-drop for this call: cell params -> params with ``W_hh`` masked, or None.
    """

    layer: Any
    inputs: Array
    seq_lengths: Array | None
    carry: Carry
    reverse: bool
    dropping: bool
    drop_w: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None

    @property
    def cell(self) -> nn.RNNCellBase:
        return self.layer.cell

    def time_major(self) -> tuple[Array, Array | None]:
        """(inputs [time, batch, features], valid [time, batch] bools or None)."""
        time = self.inputs.shape[1]
        x = jnp.swapaxes(self.inputs, 0, 1)
        valid = None if self.seq_lengths is None else jnp.arange(time)[:, None] < self.seq_lengths
        return x, valid

    def params(self) -> Mapping[str, Any]:
        """The cell's parameters, weight-dropped when ``drop_w`` is set."""
        return (self.drop_w or dict)(self.cell.variables["params"])


@dataclasses.dataclass(frozen=True)
class TimeLoop:
    """A registered time loop: ``applies(call) -> bool``; ``run(call) -> (outputs [batch,
    time, H], final carry)``."""

    name: str
    applies: Callable[[LoopCall], bool]
    run: Callable[[LoopCall], tuple[Array, Carry]]


#: the loops in the order they are tried; the last one (``scan``) applies to every call
LOOPS: list[TimeLoop] = []


def register_loop(name: str, *, applies: Callable[[LoopCall], bool],
                  run: Callable[[LoopCall], tuple[Array, Carry]], before: str | None = "scan") -> TimeLoop:
    """Adds a time loop, tried just before the loop named ``before`` (default: the generic
    ``scan``, so it stays last); ``before=None`` appends it. A name registered again
    replaces the old loop in its place. Returns the loop."""
    loop = TimeLoop(name, applies, run)
    names = [lp.name for lp in LOOPS]
    if name in names:
        LOOPS[names.index(name)] = loop
        return loop
    if before is None or before not in names:
        if before is not None and LOOPS:
            raise ValueError(f"register_loop({name!r}): no loop named {before!r}; loops: {', '.join(names)}")
        LOOPS.append(loop)
    else:
        LOOPS.insert(names.index(before), loop)
    return loop


def select_loop(call: LoopCall) -> TimeLoop:
    """The first registered loop that applies to ``call``."""
    for loop in LOOPS:
        if loop.applies(call):
            return loop
    raise LookupError("no time loop applies: the generic 'scan' loop is missing from seqjax.core.loops.LOOPS")


def _recurrent_masks(call: LoopCall, fused: bool):
    """Recurrent dropout: for a fused cell one mask on what ``W_hh`` multiplies, else one per
    carry leaf; None when dropout is off."""
    if not call.dropping:
        return None
    if fused:
        return call.layer.recurrent_mask(jnp.shape(call.cell.recurrent_input(call.carry)))
    return jax.tree.map(lambda c: call.layer.recurrent_mask(jnp.shape(c)), call.carry)


# --------------------------------------------------------------------------- cudnn


def cudnn_lstm_weights(params: Mapping[str, Any]) -> Array:
    """An ``LSTMCell``'s params as the flat weight vector of ``jax.experimental.rnn.lstm``.

    cuDNN's (and ``torch.nn.LSTM``'s) layout for one layer and direction:
    ``W_ih [4H, in]``, ``W_hh [4H, H]``, ``b_ih [4H]``, ``b_hh [4H]``, flattened and
    concatenated, gates in the order i, f, g, o — the cells' own order, so this is only
    a transpose of the ``[in, 4H]`` / ``[H, 4H]`` kernels. Returns ``[num_params]``.
    """
    ih, hh = params["ih"], params["hh"]
    return jnp.concatenate([ih["kernel"].T.ravel(), hh["kernel"].T.ravel(), ih["bias"], hh["bias"]])


def _cudnn_available() -> bool:
    if jax.default_backend() != "gpu":
        return False
    try:
        from jax.experimental import rnn  # noqa: F401
    except ImportError:
        return False
    return True


def _cudnn_applies(call: LoopCall) -> bool:
    layer = call.layer
    return (
        layer.backend == "cudnn"
        and supports(call.cell, "cudnn")
        and not call.reverse
        and call.cell.dtype is None
        and not layer.is_initializing()
        and _cudnn_available()
        and not call.dropping
        and call.drop_w is None
    )


def _run_cudnn(call: LoopCall) -> tuple[Array, Carry]:
    """One cuDNN LSTM layer: inputs [B, T, in] -> (outputs [B, T, H], (c, h))."""
    from jax.experimental import rnn

    inputs, seq_lengths = call.inputs, call.seq_lengths
    batch, time, features = inputs.shape
    c0, h0 = call.carry
    if seq_lengths is None:
        seq_lengths = jnp.full((batch,), time, jnp.int32)
    weights = cudnn_lstm_weights(call.cell.variables["params"]).astype(inputs.dtype)
    y, h, c = rnn.lstm(
        inputs,
        h0[None].astype(inputs.dtype),
        c0[None].astype(inputs.dtype),
        weights,
        seq_lengths.astype(jnp.int32),
        input_size=features,
        hidden_size=call.cell.features,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    return y, (c[0].astype(c0.dtype), h[0].astype(h0.dtype))


# --------------------------------------------------------------------------- linear


def _parallel_default() -> bool:
    """``parallel_scan="auto"``: parallel in time on accelerators; on CPU the sequential
    scan measured faster (experiments/results/cells.md)."""
    return jax.default_backend() in ("gpu", "tpu")


def _run_linear(call: LoopCall) -> tuple[Array, Carry]:
    """``h_t = a_t h_{t-1} + b_t`` from the cell's coefficients; recurrent dropout zeroes
    ``a`` (log a = -inf) where the mask drops a unit."""
    layer, carry = call.layer, call.carry
    x, valid = call.time_major()
    log_a, log_b = call.cell.coefficients(x)  # [time, batch, H] each, one matmul
    if call.dropping:
        mask = layer.recurrent_mask(jnp.shape(carry))
        log_a = jnp.where(mask > 0, log_a + jnp.log(jnp.maximum(mask, 1e-30)), NEG_LOG)
    parallel = _parallel_default() if layer.parallel_scan == "auto" else layer.parallel_scan == "on"
    parallel = parallel or layer.backend == "newton"
    carry, outputs = linear_recurrence(log_a, log_b, carry, valid, reverse=call.reverse, parallel=parallel,
                                       unroll=layer.unroll)
    return jnp.swapaxes(outputs, 0, 1), carry


# --------------------------------------------------------------------------- newton


def _run_newton(call: LoopCall) -> tuple[Array, Carry]:
    """All time steps at once; the iteration count, convergence flag and last update are
    sown as ``intermediates/newton``."""
    x, valid = call.time_major()
    mask = _recurrent_masks(call, supports(call.cell, "fused"))
    carry, outputs, info = newton_lib.cell_recurrence(
        call.cell, call.params(), x, call.carry, valid, reverse=call.reverse, mask=mask,
        options=call.layer.newton)
    call.layer.sow("intermediates", "newton", info)
    return jnp.swapaxes(outputs, 0, 1), carry


# --------------------------------------------------------------------------- fused


def _fused_applies(call: LoopCall) -> bool:
    return (supports(call.cell, "fused") and call.layer.backend != "flax_scan"
            and not call.layer.is_initializing())


def _run_fused(call: LoopCall) -> tuple[Array, Carry]:
    """The input projection of every step as one matmul, then the time loop whose backward
    pass computes ``dW_hh`` as one matmul after it."""
    layer, cell = call.layer, call.cell
    x, valid = call.time_major()
    xp = cell.input_projection(x)  # [time, batch, G*H], one matmul
    mask = _recurrent_masks(call, fused=True)
    hh = call.params()["hh"]
    carry, outputs = recurrence(
        cell.gates, cell.recurrent_input, hh["kernel"], hh["bias"], xp, call.carry, valid,
        reverse=call.reverse, unroll=layer.unroll, dtype=cell.dtype, remat=layer.remat, mask=mask,
    )
    return jnp.swapaxes(outputs, 0, 1), carry


# --------------------------------------------------------------------------- scan


def _fused_step(cell, carry, xp, mask):
    """A fused cell's step from its input projection; ``mask`` scales h before ``W_hh``."""
    if mask is None:
        return cell.step(carry, xp)
    return cell.gates(carry, xp, cell.hh(cell.recurrent_input(carry) * mask))


def _cell_step(cell, carry, x, mask):
    """Any cell's step; ``mask`` (one factor per carry leaf) scales the carry it reads."""
    if mask is None:
        return cell(carry, x)
    return cell(jax.tree.map(lambda c, m: c * m.astype(c.dtype), carry, mask), x)


def _scan_body(step):
    """``step(cell, carry, x, mask)`` as an ``nn.scan`` body over (x, valid or None): where
    not valid the carry is left unchanged and the output is zero."""

    def body(cell, carry, xs, mask):
        x, valid = xs
        new_carry, y = step(cell, carry, x, mask)
        if valid is None:
            return new_carry, y
        valid = valid[:, None]
        carry = jax.tree.map(lambda new, old: jnp.where(valid, new, old), new_carry, carry)
        return carry, jnp.where(valid, y, jnp.zeros_like(y))

    return body


def _run_scan(call: LoopCall) -> tuple[Array, Carry]:
    """``nn.scan`` over the cell's step (a fused cell's input projection hoisted out of the
    loop). Past a row's end the carry is frozen: running backwards, that keeps the initial
    carry through the padding and starts at position len-1."""
    layer, cell = call.layer, call.cell
    x, valid = call.time_major()
    fused = supports(cell, "fused")
    if fused:
        x = cell.input_projection(x)  # [time, batch, G*H], one matmul
    mask = _recurrent_masks(call, fused)
    body = _scan_body(_fused_step if fused else _cell_step)
    if layer.remat:
        body = nn.checkpoint(body)
    scan = nn.scan(
        body,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=(0, nn.broadcast),
        reverse=call.reverse,
        unroll=layer.unroll,
    )
    carry, outputs = weight_drop_lib.map_cell(scan, call.drop_w)(cell, call.carry, (x, valid), mask)
    return jnp.swapaxes(outputs, 0, 1), carry


register_loop("scan", applies=lambda call: True, run=_run_scan, before=None)
register_loop("cudnn", applies=_cudnn_applies, run=_run_cudnn)
register_loop("linear", applies=lambda call: supports(call.cell, "linear"), run=_run_linear)
register_loop("newton", run=_run_newton,
              applies=lambda call: call.layer.backend == "newton" and not call.layer.is_initializing())
register_loop("fused", applies=_fused_applies, run=_run_fused)
