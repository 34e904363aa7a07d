"""A recurrent layer's time loop as a function with its own backward pass.

Autodiff through a scan of ``h_{t-1} @ W_hh`` accumulates the weight gradient inside the
backward loop: at every time step a rank-B update ``h_{t-1}^T dz_t`` of the whole
``[H, G*H]`` matrix, read and written once per step. At hidden size 650 that is 6.8 MB
per step and layer, which made the accumulation the largest item of the PTB LSTM-650
train step on CPU (experiments/results/bench.md, session 4). :func:`recurrence` runs the
same loop, but its backward loop only carries the state gradient and stacks the
gradients of the recurrent pre-activations ``dz_t``; ``dW_hh = H_prev^T dZ`` and
``db_hh = sum dZ`` are then one ``[H, T*B] x [T*B, G*H]`` matmul and one reduction.

The numbers are those of plain autodiff up to float summation order (tests/test_recurrence.py).
Being a ``jax.custom_vjp``, it supports reverse mode (``jax.grad``, ``jax.vjp``) but not
forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``): for those, layers take
``backend="flax_scan"`` (``--set model.backend=flax_scan``).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any
#: ``update(carry, xp_t, hh_t) -> (carry', y_t)``: the cell's gate math, given the input
#: projection ``xp_t`` [B, G*H] and the recurrent projection ``hh_t = h @ W_hh + b_hh``.
Update = Callable[[Carry, Array, Array], tuple[Carry, Array]]
#: ``hidden(carry) -> h`` [B, H]: the part of the carry that multiplies ``W_hh``.
Hidden = Callable[[Carry], Array]


def _project(h: Array, kernel: Array, bias: Array, dtype) -> Array:
    """``h @ W_hh + b_hh`` as ``nn.Dense(dtype=dtype)`` computes it (operands promoted)."""
    dt = dtype or jnp.result_type(h, kernel, bias)
    return jnp.dot(h.astype(dt), kernel.astype(dt)) + bias.astype(dt)


def _loop(update, hidden, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid, taps=None):
    """The time loop. With ``taps`` ([T, B, G*H] zeros, added to ``hh_t``) it also returns
    the stacked ``h_{t-1}``: the cotangent of ``taps`` is then ``dZ``. ``remat``: the
    backward pass recomputes each step from its carry instead of storing its gate
    activations."""

    def step(carry, xs):
        x, ok, tap = xs
        h = hidden(carry)
        hh = _project(h, kernel, bias, dtype)
        new_carry, y = update(carry, x, hh if tap is None else hh + tap)
        if ok is not None:  # past a row's end: carry frozen, output zero
            ok = ok[:, None]
            new_carry = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_carry, carry)
            y = jnp.where(ok, y, jnp.zeros_like(y))
        return new_carry, (y, h if tap is not None else None)

    if remat:
        step = jax.checkpoint(step)
    carry, (ys, h_prev) = jax.lax.scan(step, carry, (xp, valid, taps), reverse=reverse, unroll=unroll)
    return carry, ys, h_prev


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4, 5))
def _recurrence(update, hidden, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid):
    carry, ys, _ = _loop(update, hidden, reverse, unroll, dtype, False, kernel, bias, xp, carry, valid)
    return carry, ys


def _fwd(update, hidden, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid):
    hh = jax.eval_shape(partial(_project, dtype=dtype), hidden(carry), kernel, bias)  # dtype only, no matmul
    taps = jnp.zeros(xp.shape[:2] + bias.shape, hh.dtype)

    def loop(xp, carry, taps):  # kernel and bias are constants here: no dW in the backward loop
        return _loop(update, hidden, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid, taps)

    (carry, ys, h_prev), vjp = jax.vjp(loop, xp, carry, taps)
    return (carry, ys), (vjp, h_prev, kernel, bias)


def _bwd(update, hidden, reverse, unroll, dtype, remat, res, cotangents):
    vjp, h_prev, kernel, bias = res
    d_carry, d_ys = cotangents
    d_xp, d_carry0, d_z = vjp((d_carry, d_ys, jnp.zeros_like(h_prev)))
    t, b, h = h_prev.shape
    d_kernel = jnp.dot(h_prev.reshape(t * b, h).astype(d_z.dtype).T, d_z.reshape(t * b, -1),
                       preferred_element_type=jnp.float32)
    d_bias = jnp.sum(d_z, axis=(0, 1), dtype=jnp.float32)
    return d_kernel.astype(kernel.dtype), d_bias.astype(bias.dtype), d_xp, d_carry0, None


_recurrence.defvjp(_fwd, _bwd)


def recurrence(
    update: Update,
    hidden: Hidden,
    kernel: Array,
    bias: Array,
    xp: Array,
    carry: Carry,
    valid: Array | None = None,
    *,
    reverse: bool = False,
    unroll: int = 1,
    dtype: Any = None,
    remat: bool = False,
) -> tuple[Carry, Array]:
    """Runs ``carry, y_t = update(carry, xp_t, hidden(carry) @ kernel + bias)`` over time.

    Args:
      update: the cell's gate math (see :data:`Update`); must not close over params.
      hidden: picks ``h`` [B, H] out of the carry.
      kernel: ``W_hh`` [H, G*H]. bias: ``b_hh`` [G*H].
      xp: input projections [T, B, G*H] (time-major).
      carry: the initial carry (pytree of [B, ...]).
      valid: [T, B] bools, or None: where False the carry is kept and the output is zero.
      reverse: run from t = T-1 down to 0.
      unroll: scan unroll factor.
      dtype: computation dtype of the recurrent matmul (None: promoted from the operands).
      remat: rematerialise each step in the backward pass (``jax.checkpoint``): the
        forward keeps only the carries, not the gate activations — less memory for long
        sequences, one more recurrent matmul and gate pass per step.

    Returns:
      (final carry, outputs [T, B, H]).
    """
    return _recurrence(update, hidden, reverse, unroll, dtype, bool(remat), kernel, bias, xp, carry, valid)
