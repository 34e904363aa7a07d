"""Nonlinear recurrences solved parallel in time by Newton's method (DEER, quasi-DEER, ParaRNN).

A recurrent layer computes ``s_t = F(s_{t-1}, x_t)`` for t = 1..T from ``s_0``. Seen as one
system of T equations in all the states at once, it can be solved by Newton's method
(Lim et al. 2024, "DEER"): from a guess ``s^k`` every iteration linearises F around it and
solves the *linear* recurrence

    s^{k+1}_t = J_t s^{k+1}_{t-1} + (F(s^k_{t-1}, x_t) - J_t s^k_{t-1}),   J_t = ∂F/∂s at s^k_{t-1}

with one parallel scan over time (``jax.lax.associative_scan``: O(T) work, O(log T) depth),
the nonlinear part being one evaluation of F over all time steps at once (the recurrent
matmul of all T steps as one large matmul).

The Jacobian used is a *per-unit block*: unit i's next carry (one entry per carry leaf,
k leaves: k = 1 for h, 2 for an LSTM's (c, h)) is linearised in unit i's carry only, a
k × k block per unit and time step. That is

- exact for cells whose step is unit-wise (diagonal recurrent weights: ``paragru``,
  ``paralstm`` of ``seqjax.core.paracells``, which declare ``unitwise = True``): Newton proper,
  quadratic convergence, a handful of iterations (ParaRNN, Danieli et al. 2025);
- for cells with dense recurrent weights (``rnn``, ``gru``, ``lstm``) the unit blocks of the
  true Jacobian (its diagonal for one-leaf carries): quasi-Newton (quasi-DEER, Gonzalez et
  al. 2024), computed from ``jax.jvp`` of the gate math with the diagonal of ``W_hh``;
- for any other cell the same blocks from ``jax.jvp`` with one-hot tangents (H of them per
  leaf: correct, but H times the work of a step per iteration).

Whatever Jacobian is used, the solution is the same (the fixed point is the sequential
recurrence), and after k iterations the first k states are exact, so the iteration
converges in at most T steps. ``damping`` λ shrinks the Jacobian to J / (1 + λ): towards
the Jacobi (Picard) iteration at λ → ∞, which cannot diverge: a simple trust region in
the spirit of ELK (Gonzalez et al. 2024) that keeps the scan element-wise. Iterations stop
when the largest update is at most ``tol``; when ``max_iters`` is reached, or the iterate
is not finite, the states are computed again by the sequential loop (one logged line;
every fall-back counted in :data:`FALLBACKS`).

Gradients come from the implicit function theorem, not from differentiating through the
iterations: the adjoint ``λ_t = g_t + J_{t+1}ᵀ λ_{t+1}`` (``g``: the cotangent of the
states) is one more linear recurrence, backwards in time, solved by the same scan — in one
pass with the exact unit blocks, by the same quasi-Newton iteration (each iteration one
parallel ``vjp`` over all steps and one scan) with approximate ones. The parameter and
input gradients are then one ``vjp`` of F over all time steps.

Arrays are time-major here: ``xs`` [T, B, ...], carries are pytrees of [B, H] leaves.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.core.cells import supports
from seqjax.core.recurrence import project

Array = jax.Array
Carry = Any
#: ``step(params, carry, x_t) -> (carry', y_t)``: one time step of a cell, for [B, ...] rows.
Step = Callable[[Any, Carry, Any], tuple[Carry, Array]]
#: ``linearize(params, carry, x_t) -> (carry', blocks [k, k, B, H])``: the step's next carry
#: and its per-unit Jacobian blocks ``blocks[p, q, b, i] = ∂carry'_p[b, i] / ∂carry_q[b, i]``.
Linearize = Callable[[Any, Carry, Any], tuple[Carry, Array]]

_log = logging.getLogger(__name__)

#: fall-backs to the sequential loop since the process started: {"forward": n, "adjoint": n}
FALLBACKS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class NewtonOptions:
    """How the Newton iteration runs (``model.newton_*``).

    Attributes:
      tol: converged when the largest change of any state entry in one iteration is at most
        ``tol`` (for the adjoint: ``tol`` times max(1, its largest entry)).
      max_iters: iterations before the fall-back to the sequential loop.
      damping: λ >= 0; the linearisation uses J / (1 + λ) (module docstring).
    """

    tol: float = 1e-5
    max_iters: int = 100
    damping: float = 0.0

    def __post_init__(self):
        if not (self.tol > 0 and self.max_iters >= 1 and self.damping >= 0):
            raise ValueError(f"Newton options need tol > 0, max_iters >= 1, damping >= 0; got {self}")


def _fell_back(kind: str, iters, err) -> None:
    FALLBACKS[kind] += 1
    if FALLBACKS[kind] == 1:
        _log.warning("newton: the %s pass did not converge in %d iterations (largest update %.3g); it ran "
                     "the sequential loop (raise model.newton_max_iters or model.newton_damping; later "
                     "fall-backs are counted in seqjax.core.newton.FALLBACKS)", kind, int(iters), float(err))


# ---------------------------------------------------------------------- stacked carries


def _stack(carry: Carry) -> Array:
    """A carry of k leaves [B, H] -> [k, B, H] float32 (the units minor: element-wise work
    vectorises over them)."""
    return jnp.stack([leaf.astype(jnp.float32) for leaf in jax.tree.leaves(carry)], axis=0)


def _unstack(like: Carry, s: Array) -> Carry:
    """[k, B, H] -> a carry with the structure and dtypes of ``like``."""
    leaves, treedef = jax.tree.flatten(like)
    return jax.tree.unflatten(treedef, [s[j].astype(leaf.dtype) for j, leaf in enumerate(leaves)])


def _matvec(a: Array, v: Array) -> Array:
    """Per-unit blocks times vectors: [..., k, k, B, H] x [..., k, B, H] -> [..., k, B, H]."""
    if a.shape[-3] == 1:
        return a[..., 0, :, :] * v
    return jnp.einsum("...pqbh,...qbh->...pbh", a, v)


def _matmul(a2: Array, a1: Array) -> Array:
    """Per-unit block products: [..., k, k, B, H] each."""
    if a1.shape[-3] == 1:
        return a2 * a1
    return jnp.einsum("...prbh,...rqbh->...pqbh", a2, a1)


def _transpose(a: Array) -> Array:
    return jnp.swapaxes(a, -4, -3)


def _eye(k: int, dtype) -> Array:
    """Identity blocks [k, k, 1, 1]."""
    return jnp.eye(k, dtype=dtype)[:, :, None, None]


def _compose(earlier, later):
    """``h -> a1 h + b1`` then ``h -> a2 h + b2``: ``(a2 a1, a2 b1 + b2)``."""
    a1, b1 = earlier
    a2, b2 = later
    return _matmul(a2, a1), _matvec(a2, b1) + b2


def _chunked_scan(a: Array, b: Array) -> Array:
    """The states from h_{-1} = 0 in about 2 sqrt(T) sequential steps of O(T / sqrt(T))
    vectorised work each: every chunk of c steps composes its maps locally (all chunks side
    by side), a scan over the chunks' ends gives the state entering each chunk, and one
    parallel pass finishes every step. O(T) work, a constant-size program."""
    t = a.shape[0]
    c = max(1, int(round(t ** 0.5)))
    n = -(-t // c)
    pad = n * c - t
    if pad:  # identity maps behind the end
        eye = jnp.broadcast_to(_eye(a.shape[-3], a.dtype), (pad,) + a.shape[1:])
        a = jnp.concatenate([a, eye])
        b = jnp.concatenate([b, jnp.zeros((pad,) + b.shape[1:], b.dtype)])
    a = jnp.swapaxes(a.reshape((n, c) + a.shape[1:]), 0, 1)  # [c, n, ...]: scan over the position in a chunk
    b = jnp.swapaxes(b.reshape((n, c) + b.shape[1:]), 0, 1)

    def local(acc, ab):
        acc = _compose(acc, ab)
        return acc, acc

    _, (la, lb) = jax.lax.scan(local, (a[0], b[0]), (a[1:], b[1:]))
    la = jnp.concatenate([a[:1], la])  # [c, n, ...]: chunk-local prefix maps
    lb = jnp.concatenate([b[:1], lb])

    def across(h, ends):  # the state entering each chunk
        end_a, end_b = ends
        return _matvec(end_a, h) + end_b, h

    _, h_in = jax.lax.scan(across, jnp.zeros_like(b[0, 0]), (la[-1], lb[-1]))  # [n, ...]
    h = _matvec(la, h_in[None]) + lb  # [c, n, ...]
    return jnp.swapaxes(h, 0, 1).reshape((n * c,) + h.shape[2:])[:t]


def block_linear_scan(a: Array, b: Array, h0: Array, method: str = "auto") -> Array:
    """``h_t = a_t h_{t-1} + b_t`` for t = 0..T-1, all at once.

    Args:
      a: per-unit blocks [T, k, k, B, H]. b: [T, k, B, H]. h0: the state before t = 0 [k, B, H].
      method: "associative" (``jax.lax.associative_scan``: O(T) work in O(log T) parallel
        passes, for accelerators), "chunked" (:func:`_chunked_scan`: O(T) work in about
        2 sqrt(T) sequential vectorised steps, for CPUs) or "auto" (associative on GPU/TPU).

    Returns:
      h [T, k, B, H].
    """
    b = b.at[0].add(_matvec(a[0], h0))
    if method == "auto":
        method = "associative" if jax.default_backend() in ("gpu", "tpu") else "chunked"
    if method == "chunked":
        return _chunked_scan(a, b)
    return jax.lax.associative_scan(_compose, (a, b))[1]


# ---------------------------------------------------------------------- the solver


@dataclasses.dataclass(frozen=True, eq=False)
class _System:
    """The recurrence of one layer in stacked form (hashed by identity: a static argument).

    ``step(p, s, x, ok) -> s'`` and ``lin(p, s, x, ok) -> (s', blocks)`` on stacked carries
    [k, B, H], with the length mask applied (where not ``ok`` the carry is kept: s' = s, the
    block is the identity); ``exact``: the blocks are the whole Jacobian."""

    step: Callable
    lin: Callable
    exact: bool


def _over_time(fn, params, xs, prev, valid):
    """``fn`` at every time step at once: vmapped over axis 0 of xs, prev and valid."""
    return jax.vmap(fn, in_axes=(None, 0, 0, 0 if valid is not None else None))(params, prev, xs, valid)


def _prev(s0: Array, states: Array) -> Array:
    """The carries each step reads: [s_0, s_1, .., s_{T-1}] from states s_1..s_T."""
    return jnp.concatenate([s0[None], states[:-1]], axis=0)


def _newton(system: _System, opts: NewtonOptions, params, xs, s0, valid):
    """The forward iteration; returns (states [T, k, B, H], info [3]: iterations, converged,
    largest last update)."""
    t = jax.tree.leaves(xs)[0].shape[0]
    shrink = 1.0 / (1.0 + opts.damping)

    def body(state):
        states, i, _ = state
        prev = _prev(s0, states)
        f, blocks = _over_time(system.lin, params, xs, prev, valid)
        blocks = blocks * shrink if opts.damping else blocks
        new = block_linear_scan(blocks, f - _matvec(blocks, prev), s0)
        err = jnp.max(jnp.abs(new - states))
        return new, i + 1, jnp.where(jnp.isfinite(err), err, jnp.inf)

    def more(state):
        _, i, err = state
        return (i < opts.max_iters) & ((i == 0) | ((err > opts.tol) & jnp.isfinite(err)))

    start = jnp.broadcast_to(s0, (t,) + s0.shape)
    states, iters, err = jax.lax.while_loop(more, body, (start, jnp.int32(0), jnp.float32(jnp.inf)))
    converged = err <= opts.tol

    def sequential():
        jax.debug.callback(partial(_fell_back, "forward"), iters, err)

        def one(s, inp):
            x, ok = inp
            s = system.step(params, s, x, ok)
            return s, s

        return jax.lax.scan(one, s0, (xs, valid))[1]

    states = jax.lax.cond(converged, lambda: states, sequential)
    return states, jnp.stack([iters.astype(jnp.float32), converged.astype(jnp.float32), err])


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _solve(system, opts, params, xs, s0, valid):
    return _newton(system, opts, params, xs, s0, valid)


def _solve_fwd(system, opts, params, xs, s0, valid):
    states, info = _newton(system, opts, params, xs, s0, valid)
    return (states, info), (params, xs, s0, valid, states)


def _solve_bwd(system, opts, res, cotangents):
    params, xs, s0, valid, states = res
    g = cotangents[0]  # [T, k, B, H]
    prev = _prev(s0, states)

    def shifted(q):  # q_t = J_tᵀ λ_t reaches λ_{t-1}: [q_1, .., q_{T-1}, 0] (0-based: q[1:], 0)
        return jnp.concatenate([q[1:], jnp.zeros_like(q[:1])], axis=0)

    def reverse_scan(blocks_t, rhs):  # λ_t = blocks_t λ_{t+1} + rhs_t, backwards in time
        flip = partial(jnp.flip, axis=0)
        return flip(block_linear_scan(flip(blocks_t), flip(rhs), jnp.zeros_like(rhs[0])))

    _, blocks = _over_time(system.lin, params, xs, prev, valid)
    adj = shifted(_transpose(blocks))  # block of λ_{t+1} in λ_t's equation
    lam = reverse_scan(adj, g)
    if not system.exact:
        _, pull = jax.vjp(lambda p: _over_time(system.step, params, xs, p, valid), prev)

        def body(state):
            lam, i, _ = state
            q = shifted(pull(lam)[0])
            new = reverse_scan(adj, g + q - _matvec(adj, shifted(lam)))
            err = jnp.max(jnp.abs(new - lam)) / jnp.maximum(1.0, jnp.max(jnp.abs(new)))
            return new, i + 1, jnp.where(jnp.isfinite(err), err, jnp.inf)

        def more(state):
            _, i, err = state
            return (i < opts.max_iters) & ((i == 0) | ((err > opts.tol) & jnp.isfinite(err)))

        lam, iters, err = jax.lax.while_loop(more, body, (lam, jnp.int32(0), jnp.float32(jnp.inf)))

        def sequential():
            jax.debug.callback(partial(_fell_back, "adjoint"), iters, err)

            def one(q_next, inp):  # backwards: λ_t = g_t + q_{t+1}; q_t = J_tᵀ λ_t
                g_t, p_t, x_t, ok_t = inp
                lam_t = g_t + q_next
                _, pull_t = jax.vjp(lambda s: system.step(params, s, x_t, ok_t), p_t)
                return pull_t(lam_t)[0], lam_t

            return jax.lax.scan(one, jnp.zeros_like(s0), (g, prev, xs, valid), reverse=True)[1]

        lam = jax.lax.cond(err <= opts.tol, lambda: lam, sequential)
    _, pull_all = jax.vjp(lambda p, x, c: _over_time(system.step, p, x, c, valid), params, xs, prev)
    d_params, d_xs, d_prev = pull_all(lam)
    return d_params, d_xs, d_prev[0], None


_solve.defvjp(_solve_fwd, _solve_bwd)


def _masked(fn):
    """``fn(p, carry, x) -> (carry', y)`` as a stacked step with the length mask."""

    def step(like, p, s, x, ok):
        new, _ = fn(p, _unstack(like, s), x)
        new = _stack(new)
        return new if ok is None else jnp.where(ok[:, None], new, s)

    return step


def _unit_blocks(fn_of_carry, carry: Carry) -> tuple[Carry, Array]:
    """(fn(carry), the Jacobian of a unit-wise ``fn`` as blocks [k, k, B, H]) by k ``jvp``s of
    all-ones tangents on one carry leaf each (exact when unit i's output reads unit i only)."""
    out, lin = jax.linearize(fn_of_carry, carry)
    leaves, treedef = jax.tree.flatten(carry)
    cols = []
    for q in range(len(leaves)):
        tangent = jax.tree.unflatten(treedef, [jnp.ones_like(l) if j == q else jnp.zeros_like(l)
                                               for j, l in enumerate(leaves)])
        cols.append(_stack(lin(tangent)))  # [k, B, H]: column q of every unit's block
    return out, jnp.stack(cols, axis=1)


def _one_hot_blocks(fn_of_carry, carry: Carry) -> tuple[Carry, Array]:
    """(fn(carry), the per-unit blocks of its true Jacobian) for any ``fn``: one ``jvp`` per
    unit and carry leaf (H * k of them)."""
    out, lin = jax.linearize(fn_of_carry, carry)
    leaves, treedef = jax.tree.flatten(carry)
    h = leaves[0].shape[-1]
    cols = []
    for q in range(len(leaves)):
        def column(u, q=q):
            tangent = [jnp.zeros_like(l) for l in leaves]
            tangent[q] = jnp.broadcast_to(jax.nn.one_hot(u, h, dtype=leaves[q].dtype), leaves[q].shape)
            return _stack(lin(jax.tree.unflatten(treedef, tangent)))[:, :, u]  # [k, B]
        cols.append(jnp.moveaxis(jax.vmap(column)(jnp.arange(h)), 0, -1))  # [k, B, H]
    return out, jnp.stack(cols, axis=1)


def _system(step: Step, linearize: Linearize | None, exact: bool, like: Carry) -> _System:
    masked = _masked(step)

    def lin(p, s, x, ok):
        carry = _unstack(like, s)
        if linearize is None:
            new, blocks = _one_hot_blocks(lambda c: step(p, c, x)[0], carry)
        else:
            new, blocks = linearize(p, carry, x)
        new = _stack(new)
        if ok is None:
            return new, blocks
        on = ok[:, None]  # [B, 1]: broadcasts over [.., B, H]
        return jnp.where(on, new, s), jnp.where(on, blocks, _eye(blocks.shape[0], blocks.dtype))

    return _System(partial(masked, like), lin, exact)


def newton_recurrence(
    step: Step,
    params: Any,
    xs: Any,
    carry: Carry,
    valid: Array | None = None,
    *,
    linearize: Linearize | None = None,
    exact: bool = False,
    reverse: bool = False,
    options: NewtonOptions = NewtonOptions(),
) -> tuple[Carry, Array, Array]:
    """Runs ``carry, y_t = step(params, carry, x_t)`` over time by Newton iterations.

    Args:
      step: the cell's step (:data:`Step`); a pure function of its arguments. Every carry
        leaf must be [B, H] with one H.
      params: what ``step`` reads besides the carry and input (a pytree; differentiable).
      xs: the inputs, a pytree of [T, B, ...] arrays (time-major).
      carry: the initial carry.
      valid: [T, B] bools or None: where False the carry is kept and the output is zero.
      linearize: the step's next carry and per-unit Jacobian blocks (:data:`Linearize`), or
        None: the blocks of the true Jacobian by one-hot ``jvp``s (H * k per iteration).
      exact: the blocks are the whole Jacobian (a unit-wise cell): the adjoint is solved in
        one scan.
      reverse: run from t = T-1 down to 0 (with ``valid``, the valid prefix of each row).
      options: tolerance, iterations, damping.

    Returns:
      (final carry, outputs [T, B, ...], info [3] float32: Newton iterations of the forward
      pass, 1.0 if they converged (else the sequential loop ran), the largest last update).
    """
    leaves = jax.tree.leaves(carry)
    if len({jnp.shape(leaf) for leaf in leaves}) != 1 or jnp.ndim(leaves[0]) != 2:
        raise ValueError(f"backend='newton' needs a carry of [batch, H] arrays of one shape, got "
                         f"{jax.tree.map(jnp.shape, carry)}")
    if reverse:
        xs = jax.tree.map(partial(jnp.flip, axis=0), xs)
        valid = None if valid is None else jnp.flip(valid, 0)
    system = _system(step, linearize, exact, carry)
    s0 = _stack(carry)
    states, info = _solve(system, options, params, xs, s0, valid)
    info = jax.lax.stop_gradient(info)

    # outputs (and the states once more) from the solved carries, all steps at once
    def one(p, s, x, ok):
        new, y = step(p, _unstack(carry, s), x)
        if ok is not None:
            new = jax.tree.map(lambda a, b: jnp.where(ok[:, None], a, b), new, _unstack(carry, s))
            y = jnp.where(ok[:, None], y, jnp.zeros_like(y))
        return new, y

    new, ys = _over_time(one, params, xs, _prev(s0, states), valid)
    final = jax.tree.map(lambda a: a[-1], new)
    if reverse:
        ys = jnp.flip(ys, 0)
    return final, ys, info


# ---------------------------------------------------------------------- cells


def _diagonal_of(kernel: Array) -> Array:
    """The entries of ``W_hh`` [H, G*H] that map unit i to unit i of each gate: [G*H]."""
    h, gh = kernel.shape
    return jnp.diagonal(kernel.reshape(h, gh // h, h), axis1=0, axis2=2).reshape(gh)


def _tile(h: Array, n: int) -> Array:
    """[..., H] -> [..., n*H]: h repeated once per gate (gate-major, as the projections)."""
    return jnp.tile(h, (1,) * (h.ndim - 1) + (n // h.shape[-1],))


def cell_recurrence(cell, params: Any, x: Array, carry: Carry, valid: Array | None = None, *,
                    reverse: bool = False, mask: Any = None,
                    options: NewtonOptions = NewtonOptions()) -> tuple[Carry, Array, Array]:
    """A seqjax layer's cell run by :func:`newton_recurrence`.

    Args:
      cell: the (bound) cell. Cells with gates — fused (``seqjax.core.cells``: ``gates``,
        ``recurrent_input``, a dense ``hh``) or with diagonal recurrent weights
        (``seqjax.core.paracells``: ``recurrent_projection``) — have their input projection
        hoisted out of the iterations and their Jacobian blocks from the gate math; any
        other cell runs as ``cell(carry, x)`` with one-hot blocks (exact ones if it
        declares ``unitwise``).
      params: the cell's params.
      x: inputs [T, B, in] (time-major).
      carry, valid, reverse, options: as in :func:`newton_recurrence`.
      mask: recurrent dropout factors as the other backends apply them: for fused cells a
        [B, H] factor on h before ``W_hh``, for any other cell one per carry leaf, on the
        carry the step reads.

    Returns:
      (final carry, outputs [T, B, H], info) as :func:`newton_recurrence`.
    """
    fused, unitwise = supports(cell, "fused"), supports(cell, "unitwise")
    if fused or hasattr(cell, "recurrent_projection"):
        xp = cell.input_projection(x)  # [T, B, G*H]: one matmul
        hh = dict(params["hh"])
        if fused:
            dtype = cell.dtype

            def projection(h, kernel, bias):
                return project(h, kernel, bias, dtype)

            diag = _diagonal_of
        else:
            projection, diag = cell.recurrent_projection, (lambda k: k)

        def read(c, p):  # (the carry the gates see, the h the projection reads)
            if mask is None:
                return c, cell.recurrent_input(c)
            if fused:  # as seqjax.core.recurrence: the mask scales h before W_hh only
                h = cell.recurrent_input(c)
                return c, h * p["mask"].astype(h.dtype)
            c = jax.tree.map(lambda a, m: a * m.astype(a.dtype), c, p["mask"])  # as the generic scan
            return c, cell.recurrent_input(c)

        def step(p, c, xp_t):
            c, h = read(c, p)
            return cell.gates(c, xp_t, projection(h, p["kernel"], p["bias"]))

        def linearize(p, c0, xp_t):
            _, h0 = read(c0, p)
            hh0 = projection(h0, p["kernel"], p["bias"])
            w = diag(p["kernel"]).astype(hh0.dtype)

            def local(c):  # the step with W_hh's off-diagonal entries frozen at c0
                c, h = read(c, p)
                return cell.gates(c, xp_t, hh0 + _tile(h - h0, hh0.shape[-1]) * w)[0]

            return _unit_blocks(local, c0)

        if mask is not None:
            hh["mask"] = mask
        return newton_recurrence(step, hh, xp, carry, valid, linearize=linearize, exact=not fused,
                                 reverse=reverse, options=options)

    module, variables = cell.unbind()

    def step(p, c, x_t):
        if mask is not None:
            c = jax.tree.map(lambda a, m: a * m.astype(a.dtype), c, p["mask"])
        return module.apply({**variables, "params": p["params"]}, c, x_t)

    linearize = None
    if unitwise:
        def linearize(p, c0, x_t):
            return _unit_blocks(lambda c: step(p, c, x_t)[0], c0)

    p = {"params": params} if mask is None else {"params": params, "mask": mask}
    return newton_recurrence(step, p, x, carry, valid, linearize=linearize, exact=unitwise, reverse=reverse,
                             options=options)
