"""Recurrent time loops as functions with their own backward passes: one layer
(:func:`recurrence`) and a unidirectional stack in one loop (:func:`stacked_recurrence`).

Autodiff through a scan of ``h_{t-1} @ W_hh`` accumulates the weight gradient inside the
backward loop: at every time step a rank-B update ``h_{t-1}^T dz_t`` of the whole
``[H, G*H]`` matrix, read and written once per step (6.8 MB per step and layer at hidden
size 650), which is memory-bound. :func:`recurrence` runs the
same loop, but its backward loop only carries the state gradient and stacks the
gradients of the recurrent pre-activations ``dz_t``; ``dW_hh = H_prev^T dZ`` and
``db_hh = sum dZ`` are then one ``[H, T*B] x [T*B, G*H]`` matmul and one reduction.

:func:`stacked_recurrence` runs L layers as one loop, layer l at time step k - l in
iteration k, so that the layers' steps of one iteration are independent and run side by
side (the section below).

:func:`linear_recurrence` runs ``h_t = a_t * h_{t-1} + b_t`` (the min cells of
``seqjax.core.mincells``) as a sequential scan or parallel in time in log space.

The numbers are those of plain autodiff up to float summation order (tests/test_recurrence.py).
Being ``jax.custom_vjp``s, they support reverse mode (``jax.grad``, ``jax.vjp``) but not
forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``): for those, layers take
``backend="flax_scan"`` (``--set model.backend=flax_scan``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Carry = Any
#: ``gates(carry, xp_t, hh_t) -> (carry', y_t)``: the cell's gate math, given the input
#: projection ``xp_t`` [B, G*H] and the recurrent projection ``hh_t = h @ W_hh + b_hh``.
Gates = Callable[[Carry, Array, Array], tuple[Carry, Array]]
#: ``recurrent_input(carry) -> h`` [B, H]: the part of the carry that multiplies ``W_hh``.
RecurrentInput = Callable[[Carry], Array]


def project(h: Array, kernel: Array, bias: Array, dtype) -> Array:
    """``h @ kernel + bias`` as ``nn.Dense(dtype=dtype)`` computes it (operands promoted):
    [..., in] x [in, N] -> [..., N]."""
    dt = dtype or jnp.result_type(h, kernel, bias)
    return jnp.dot(h.astype(dt), kernel.astype(dt)) + bias.astype(dt)


def _loop(gates, recurrent_input, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid, mask,
          taps=None):
    """The time loop. With ``taps`` ([T, B, G*H] zeros, added to ``hh_t``) it also returns
    the stacked ``h_{t-1}`` (times ``mask``): the cotangent of ``taps`` is then ``dZ``.
    ``remat``: the backward pass recomputes each step from its carry instead of storing its
    gate activations. ``mask`` [B, H] or None: a factor on h before the recurrent matmul."""

    def step(carry, xs):
        x, ok, tap = xs
        h = recurrent_input(carry)
        if mask is not None:
            h = h * mask.astype(h.dtype)
        hh = project(h, kernel, bias, dtype)
        new_carry, y = gates(carry, x, hh if tap is None else hh + tap)
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
def _recurrence(gates, recurrent_input, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid, mask):
    carry, ys, _ = _loop(gates, recurrent_input, reverse, unroll, dtype, False, kernel, bias, xp, carry,
                         valid, mask)
    return carry, ys


def _fwd(gates, recurrent_input, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid, mask):
    # the dtype only, no matmul
    hh = jax.eval_shape(partial(project, dtype=dtype), recurrent_input(carry), kernel, bias)
    taps = jnp.zeros(xp.shape[:2] + bias.shape, hh.dtype)

    def loop(xp, carry, taps):  # kernel and bias are constants here: no dW in the backward loop
        return _loop(gates, recurrent_input, reverse, unroll, dtype, remat, kernel, bias, xp, carry, valid,
                     mask, taps)

    (carry, ys, h_prev), vjp = jax.vjp(loop, xp, carry, taps)
    return (carry, ys), (vjp, h_prev, kernel, bias, mask)


def _bwd(gates, recurrent_input, reverse, unroll, dtype, remat, res, cotangents):
    vjp, h_prev, kernel, bias, mask = res
    d_carry, d_ys = cotangents
    d_xp, d_carry0, d_z = vjp((d_carry, d_ys, jnp.zeros_like(h_prev)))
    t, b, h = h_prev.shape
    d_kernel = jnp.dot(h_prev.reshape(t * b, h).astype(d_z.dtype).T, d_z.reshape(t * b, -1),
                       preferred_element_type=jnp.float32)
    d_bias = jnp.sum(d_z, axis=(0, 1), dtype=jnp.float32)
    d_mask = None if mask is None else jnp.zeros_like(mask)
    return d_kernel.astype(kernel.dtype), d_bias.astype(bias.dtype), d_xp, d_carry0, None, d_mask


_recurrence.defvjp(_fwd, _bwd)


def recurrence(
    gates: Gates,
    recurrent_input: RecurrentInput,
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
    mask: Array | None = None,
) -> tuple[Carry, Array]:
    """Runs ``carry, y_t = gates(carry, xp_t, (recurrent_input(carry) * mask) @ kernel + bias)`` over time.

    Args:
      gates: the cell's gate math (see :data:`Gates`); must not close over params.
      recurrent_input: picks ``h`` [B, H] out of the carry.
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
      mask: [B, H] factor on h before the recurrent matmul, the same at every step
        (recurrent dropout: 0 or 1/(1-p)), or None. The carry itself is not scaled.

    Returns:
      (final carry, outputs [T, B, H]).
    """
    return _recurrence(gates, recurrent_input, reverse, unroll, dtype, bool(remat), kernel, bias, xp, carry,
                       valid, mask)


# --------------------------------------------------------------------------------------
# Linear recurrences h_t = a_t * h_{t-1} + b_t (minGRU, minLSTM): sequential or parallel
# --------------------------------------------------------------------------------------

#: log of "nothing": exp(NEG_LOG) == 0 in float32, and sums of T of them stay finite
NEG_LOG = -1e30


def _log_combine(earlier, later):
    """Composes ``h -> a1 h + b1`` then ``h -> a2 h + b2`` in log space (b > 0):
    ``(log a1 + log a2, logaddexp(log a2 + log b1, log b2))``."""
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, jnp.logaddexp(la2 + lb1, lb2)


def _log_prefix_scan(log_a: Array, log_b: Array) -> tuple[Array, Array]:
    """Inclusive prefix compositions along axis 0 ([T, ...] each): Hillis-Steele, one
    ``lax.scan`` over the ceil(log2 T) levels, so the program does not grow with T (a
    ``jax.lax.associative_scan`` traces every level). Level k combines element t with
    element t - 2^k; each level is one fully parallel pass over [T, ...]."""
    t = log_a.shape[0]
    levels = max(1, math.ceil(math.log2(t))) if t > 1 else 0
    pad = [(t, 0)] + [(0, 0)] * (log_a.ndim - 1)

    def level(state, k):
        la, lb = state
        shift = jnp.left_shift(1, k)
        # element t - shift (identity (0, NEG_LOG) before the start)
        pa = jax.lax.dynamic_slice_in_dim(jnp.pad(la, pad), t - shift, t)
        pb = jax.lax.dynamic_slice_in_dim(jnp.pad(lb, pad, constant_values=NEG_LOG), t - shift, t)
        return _log_combine((pa, pb), (la, lb)), None

    (log_a, log_b), _ = jax.lax.scan(level, (log_a, log_b), jnp.arange(levels))
    return log_a, log_b


def linear_recurrence(
    log_a: Array,
    log_b: Array,
    h0: Array,
    valid: Array | None = None,
    *,
    reverse: bool = False,
    parallel: bool = False,
    unroll: int = 1,
) -> tuple[Array, Array]:
    """``h_t = exp(log_a_t) * h_{t-1} + exp(log_b_t)`` over time.

    Args:
      log_a, log_b: [T, B, H] (time-major), float32; ``log_b`` may be ``NEG_LOG`` (b = 0).
      h0: the initial state [B, H] (any sign).
      valid: [T, B] bools, or None: where False the state is kept and the output is zero.
      reverse: run from t = T-1 down to 0.
      parallel: all prefixes at once in log space (:func:`_log_prefix_scan`, the paper's
        log-space scan: O(T log T) work in log2 T parallel passes) instead of a
        ``lax.scan`` of T steps (O(T) work, T sequential steps). The same numbers up
        to float rounding.
      unroll: unroll factor of the sequential scan.

    Returns:
      (final state [B, H], outputs h_t [T, B, H]) in the dtype of ``h0``.
    """
    if valid is not None:
        on = valid[..., None]
        log_a = jnp.where(on, log_a, 0.0)
        log_b = jnp.where(on, log_b, NEG_LOG)
    if parallel:
        flip = (lambda a: jnp.flip(a, 0)) if reverse else (lambda a: a)  # noqa: E731
        la, lb = _log_prefix_scan(flip(log_a), flip(log_b))
        hs = flip(jnp.exp(la) * h0.astype(jnp.float32) + jnp.exp(lb))
        final = hs[0] if reverse else hs[-1]
    else:
        a, b = jnp.exp(log_a), jnp.exp(log_b)

        def step(h, ab):
            h = ab[0] * h + ab[1]
            return h, h

        final, hs = jax.lax.scan(step, h0.astype(jnp.float32), (a, b), reverse=reverse, unroll=unroll)
    if valid is not None:
        hs = jnp.where(valid[..., None], hs, 0.0)
    return final.astype(h0.dtype), hs.astype(h0.dtype)


# --------------------------------------------------------------------------------------
# A stack of layers in one time loop (a wavefront)
# --------------------------------------------------------------------------------------
#
# Run layer by layer, every layer of a stack is its own loop of T small sequential steps.
# In one loop over iterations k = 0 .. T+L-2 where layer l runs its time step t = k - l,
# layer l's input is what layer l-1 output at iteration k-1 (kept in the loop's carry), so
# the L steps of an iteration do not depend on each other: XLA:CPU runs them side by side,
# and the loop pays its per-iteration cost T+L-1 times instead of L*T times. The input
# projections of layers 1..L-1 move into the loop.
#
# The backward pass goes layer by layer again, from the top: each layer's backward loop
# carries only its state gradient and recomputes its gate activations from the stored
# carries and pre-activations; the gradients that cross layers (``dx_l W_ih_lᵀ``) and
# every weight gradient are single large matmuls between the loops.


def _shift(a, before: int, after: int):
    """Pads the time axis (0) of ``a`` with ``before`` zeros in front and ``after`` behind."""
    return jnp.pad(a, [(before, after)] + [(0, 0)] * (a.ndim - 1))


def _where(on, new, old):
    """``new`` where ``on`` (a scalar, or [B] rows), else ``old``; on pytrees."""
    on = on if on.ndim == 0 else on[:, None]
    return jax.tree.map(lambda a, b: jnp.where(on, a, b), new, old)


def _wave_loop(gates, recurrent_inputs, unroll, dtype, hh_k, hh_b, ih_k, ih_b, xp, carries, active, masks,
               keep):
    """The wavefront loop over K = T + L - 1 iterations.

    ``xp`` [K, B, G*H_0] (layer 0, zero-padded behind), ``active`` [K, L] or [K, L, B] bools
    (layer l runs at iteration k where true), ``masks`` L-1 [K, B, H] factors on the inputs
    of layers 1.. (or None). Returns (final carries, top outputs [K, B, H], and with
    ``keep`` per layer the stacked carries before each step, the inputs of layers 1..
    and, for ``keep == "all"``, the pre-activations ``x_l`` and ``hh_l``).
    """
    n = len(gates)
    first_inputs = tuple(jnp.zeros_like(recurrent_inputs[l](carries[l])) for l in range(n - 1))

    def step(state, xs):
        carries, prev_y = state
        x0, ok, mask = xs
        new_carries, ys, ins, xs_pre, hhs = [], [], [], [], []
        for l in range(n):
            hh = project(recurrent_inputs[l](carries[l]), hh_k[l], hh_b[l], dtype)
            if l == 0:
                x = x0
            else:
                inp = (prev_y[l - 1] if mask is None
                       else prev_y[l - 1] * mask[l - 1].astype(prev_y[l - 1].dtype))
                x = project(inp, ih_k[l - 1], ih_b[l - 1], dtype)
                ins.append(inp)
            new, y = gates[l](carries[l], x, hh)
            new_carries.append(_where(ok[l], new, carries[l]))
            ys.append(_where(ok[l], y, jnp.zeros_like(y)))
            xs_pre.append(x)
            hhs.append(hh)
        kept = None
        if keep:
            kept = (carries, tuple(ins)) + ((tuple(xs_pre), tuple(hhs)) if keep == "all" else ())
        return (tuple(new_carries), tuple(ys[:-1])), (ys[-1], kept)

    (carries, _), (ys, kept) = jax.lax.scan(step, (carries, first_inputs), (xp, active, masks), unroll=unroll)
    return carries, ys, kept


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _wave(gates, recurrent_inputs, unroll, dtype, remat, hh_k, hh_b, ih_k, ih_b, xp, carries, active, masks):
    carries, ys, _ = _wave_loop(gates, recurrent_inputs, unroll, dtype, hh_k, hh_b, ih_k, ih_b, xp, carries,
                                active, masks, None)
    return carries, ys


def _wave_fwd(gates, recurrent_inputs, unroll, dtype, remat, hh_k, hh_b, ih_k, ih_b, xp, carries, active,
              masks):
    carries, ys, kept = _wave_loop(gates, recurrent_inputs, unroll, dtype, hh_k, hh_b, ih_k, ih_b, xp,
                                   carries, active, masks, "carries" if remat else "all")
    return (carries, ys), (kept, xp, active, masks, hh_k, hh_b, ih_k, ih_b)


def _outer(a, dz):
    """``Σ_k a_kᵀ dz_k`` for [K, B, H] and [K, B, N]: one [H, K*B] x [K*B, N] matmul."""
    k, b, h = a.shape
    return jnp.dot(a.reshape(k * b, h).astype(dz.dtype).T, dz.reshape(k * b, -1),
                   preferred_element_type=jnp.float32)


def _layer_bwd(gates, recurrent_input, unroll, dtype, kernel, bias, prev, x, hh, ok, d_carry, d_ys):
    """One layer's backward loop (reverse time): state gradient in the carry, the gates
    recomputed from ``prev`` (stacked carries), ``x`` and ``hh`` (pre-activations, [K, B,
    G*H]). Returns (d initial carry, dx [K, B, G*H], dhh [K, B, G*H])."""

    def step(dc, xs):
        c, x_t, hh_t, on, dy = xs
        _, gates_vjp = jax.vjp(gates, c, x_t, hh_t)
        dc_new, dx, dhh = gates_vjp((_where(on, dc, jax.tree.map(jnp.zeros_like, dc)),
                                      _where(on, dy, jnp.zeros_like(dy))))
        _, project_vjp = jax.vjp(lambda c: project(recurrent_input(c), kernel, bias, dtype), c)
        (dc_hh,) = project_vjp(dhh)
        kept = _where(on, jax.tree.map(jnp.zeros_like, dc), dc)  # where the step did not run
        return jax.tree.map(lambda a, b, e: a + b + e, dc_new, dc_hh, kept), (dx, dhh)

    return jax.lax.scan(step, d_carry, (prev, x, hh, ok, d_ys), reverse=True, unroll=unroll)


def _wave_bwd(gates, recurrent_inputs, unroll, dtype, remat, res, cotangents):
    kept, xp, active, masks, hh_k, hh_b, ih_k, ih_b = res
    prevs, ins = kept[:2]
    d_carries, d_ys = cotangents
    n = len(gates)
    d_hh_k, d_hh_b, d_ih_k, d_ih_b, d_carries0 = ([None] * n, [None] * n, [None] * (n - 1), [None] * (n - 1),
                                                  [None] * n)
    for l in reversed(range(n)):
        h_prev = jax.vmap(recurrent_inputs[l])(prevs[l])  # [K, B, H_l]
        if remat:  # the pre-activations again: one large matmul each
            x = xp if l == 0 else project(ins[l - 1], ih_k[l - 1], ih_b[l - 1], dtype)
            hh = project(h_prev, hh_k[l], hh_b[l], dtype)
        else:
            x, hh = kept[2][l], kept[3][l]
        d_carries0[l], (dx, dhh) = _layer_bwd(gates[l], recurrent_inputs[l], unroll, dtype, hh_k[l], hh_b[l],
                                              prevs[l], x, hh, active[:, l], d_carries[l], d_ys)
        d_hh_k[l] = _outer(h_prev, dhh).astype(hh_k[l].dtype)
        d_hh_b[l] = jnp.sum(dhh, axis=(0, 1), dtype=jnp.float32).astype(hh_b[l].dtype)
        if l == 0:
            d_xp = dx
        else:
            d_ih_k[l - 1] = _outer(ins[l - 1], dx).astype(ih_k[l - 1].dtype)
            d_ih_b[l - 1] = jnp.sum(dx, axis=(0, 1), dtype=jnp.float32).astype(ih_b[l - 1].dtype)
            _, in_vjp = jax.vjp(partial(project, kernel=ih_k[l - 1], bias=ih_b[l - 1], dtype=dtype),
                                ins[l - 1])
            (d_in,) = in_vjp(dx)  # [K, B, H_{l-1}]: one large matmul
            if masks is not None:
                d_in = d_in * masks[l - 1].astype(d_in.dtype)
            # layer l read layer l-1's output of iteration k-1 at iteration k
            d_ys = jnp.concatenate([d_in[1:], jnp.zeros_like(d_in[:1])])
    d_masks = None if masks is None else tuple(jnp.zeros_like(m) for m in masks)
    return (tuple(d_hh_k), tuple(d_hh_b), tuple(d_ih_k), tuple(d_ih_b), d_xp.astype(xp.dtype),
            tuple(d_carries0), None, d_masks)


_wave.defvjp(_wave_fwd, _wave_bwd)


def stacked_recurrence(
    gates: tuple[Gates, ...],
    recurrent_inputs: tuple[RecurrentInput, ...],
    hh_kernels: tuple[Array, ...],
    hh_biases: tuple[Array, ...],
    ih_kernels: tuple[Array, ...],
    ih_biases: tuple[Array, ...],
    xp: Array,
    carries: tuple[Carry, ...],
    valid: Array | None = None,
    masks: tuple[Array, ...] | None = None,
    *,
    unroll: int = 1,
    dtype: Any = None,
    remat: bool = False,
) -> tuple[tuple[Carry, ...], Array]:
    """L stacked forward layers in one time loop: the same numbers as running them one
    after the other (each with :func:`recurrence`), up to float summation order.

    Layer l's step is ``carry_l, y_l = gates_l(carry_l, x_l, recurrent_input_l(carry_l) @ W_hh_l +
    b_hh_l)`` with ``x_0 = xp`` and ``x_l = (y_{l-1} * mask_l) @ W_ih_l + b_ih_l``.

    Args:
      gates, recurrent_inputs: per layer, as in :func:`recurrence`.
      hh_kernels, hh_biases: per layer, ``W_hh`` [H_l, G*H_l] and ``b_hh`` [G*H_l].
      ih_kernels, ih_biases: for layers 1..L-1, ``W_ih`` [H_{l-1}, G*H_l] and ``b_ih``.
      xp: layer 0's input projection [T, B, G*H_0] (time-major).
      carries: the L initial carries.
      valid: [T, B] bools, or None (every row full length): past a row's end every
        layer's carry is kept and its outputs are zero.
      masks: for layers 1..L-1, a [T, B, H_{l-1}] factor on the layer's input (dropout:
        0 or 1/(1-p)), or None.
      unroll, dtype: as in :func:`recurrence`.
      remat: the forward pass keeps only the carries and layer inputs for the backward
        pass, which recomputes the pre-activations (one large matmul per layer); without
        it, the pre-activations are kept too. The gate activations are recomputed in
        the backward loops either way.

    Returns:
      (the L final carries, top-layer outputs [T, B, H_{L-1}]).
    """
    n, t = len(gates), xp.shape[0]
    if not (len(recurrent_inputs) == len(hh_kernels) == len(hh_biases) == len(carries) == n
            and len(ih_kernels) == len(ih_biases) == n - 1 and n >= 1):
        raise ValueError(f"stacked_recurrence: {n} layers need {n} of each per-layer argument "
                         f"and {n - 1} input kernels")
    k = t + n - 1
    # layer l runs time step k - l at iteration k
    if valid is None:
        steps = np.arange(k)[:, None] - np.arange(n)[None, :]
        active = jnp.asarray((steps >= 0) & (steps < t))  # [K, L]
    else:
        active = jnp.stack([_shift(valid, l, n - 1 - l) for l in range(n)], axis=1)  # [K, L, B]
    if masks is not None:
        if len(masks) != n - 1:
            raise ValueError(f"stacked_recurrence: {n} layers take {n - 1} input masks, got {len(masks)}")
        masks = tuple(_shift(m, l + 1, n - 2 - l) for l, m in enumerate(masks))
    carries, ys = _wave(tuple(gates), tuple(recurrent_inputs), unroll, dtype, bool(remat), tuple(hh_kernels),
                        tuple(hh_biases), tuple(ih_kernels), tuple(ih_biases), _shift(xp, 0, n - 1),
                        tuple(carries), active, masks)
    return carries, ys[n - 1:]
