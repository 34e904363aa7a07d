"""backend="newton" (seqjax/core/newton.py) against the sequential loop: outputs, final carries and
gradients of the same parameters, reached by the Newton iterations themselves (no fall-back)."""
from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.core import newton
from seqjax.core.cells import make_cell
from seqjax.core.layers import Recurrent, Stacked
from seqjax.core.newton import NewtonOptions

CELLS = ("rnn", "gru", "lstm", "paragru", "paralstm")
EXACT = ("paragru", "paralstm")  # unit-wise cells: exact Newton
OPTS = NewtonOptions(tol=1e-6, max_iters=40)
B, T, D, H = 3, 9, 4, 5
LENGTHS = jnp.array([9, 6, 0])


def _inputs():
    return jax.random.normal(jax.random.key(1), (B, T, D))


def _max_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _loss_of(outputs):
    """A loss that reads every output and final carry entry."""
    return sum(jnp.sum(jnp.sin(y)) + sum(jnp.sum(f**2) for f in jax.tree.leaves(c)) for (y, c), _ in outputs)


@pytest.mark.slow
def test_two_layer_bidirectional_stack_matches_scan():
    """gru (quasi-Newton) and paralstm (exact, 2 x 2 blocks) in a 2-layer bidirectional stack
    over ragged rows (one of length 0) from a nonzero initial carry: outputs, final carries
    and the gradients of the parameters, the inputs and the initial carries; no pass falls
    back, and the sown iteration counts are a handful for the exact cell.
    (benchmarks/newton_grid.py --check runs all five cells this way.)"""
    cells = ("gru", "paralstm")
    x = _inputs()

    def stacks(backend):
        return [Stacked(cell=c, hidden=H, layers=2, bidirectional=True, backend=backend, newton=OPTS)
                for c in cells]

    params = [jax.jit(s.init)(jax.random.key(0), x, LENGTHS)["params"] for s in stacks("scan")]
    carries = [jax.tree.map(lambda z: 0.5 + jnp.zeros_like(z), s.initialize_carry(B)) for s in stacks("scan")]

    def run(backend):
        def loss(ps, x, cs):
            outs = [s.apply({"params": p}, x, LENGTHS, c, mutable=["intermediates"])
                    for s, p, c in zip(stacks(backend), ps, cs)]
            return _loss_of(outs), [(y, c, st) for (y, c), st in outs]

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(params, x, carries)

    before = dict(newton.FALLBACKS)
    (_, want), (d_params0, d_x0, d_carry0) = run("scan")
    (_, got), (d_params1, d_x1, d_carry1) = run("newton")
    jax.block_until_ready(d_params1)
    assert dict(newton.FALLBACKS) == before, "a pass fell back to the sequential loop"
    assert _max_diff(d_x0, d_x1) < 1e-4  # d inputs, both cells together
    for i, cell in enumerate(cells):
        (y0, c0, _), (y1, c1, st) = want[i], got[i]
        assert _max_diff(y0, y1) < 1e-4, cell  # outputs
        assert _max_diff(c0, c1) < 1e-4, cell  # final carries
        assert _max_diff(d_params0[i], d_params1[i]) < 1e-4, cell
        assert _max_diff(d_carry0[i], d_carry1[i]) < 1e-4, cell
        infos = np.asarray(jax.tree.leaves(st["intermediates"])).reshape(-1, 3)
        assert len(infos) == 4 and infos[:, 1].all(), cell  # 2 layers x 2 directions, converged
        iters = infos[:, 0]
        # exact Newton: a handful; quasi-Newton: at most T + 1 (the first k states are exact after k)
        assert (iters <= 6).all() if cell in EXACT else (iters <= T + 1).all(), (cell, iters)


@pytest.mark.slow
def test_reversed_ragged_layers_match_scan_and_fall_back_once(caplog):
    """rnn, lstm and paragru as one reversed layer over ragged rows from a nonzero carry, and
    rnn once more with max_iters=2, too few for its quasi-Newton iteration at T = 9: that
    layer's forward and adjoint passes fall back to the sequential loop (counted, one log
    line each, still exact); no other pass does."""
    layers = [("rnn", OPTS), ("lstm", OPTS), ("paragru", OPTS), ("rnn", NewtonOptions(max_iters=2))]
    x = _inputs()

    def modules(backend):
        return [Recurrent(make_cell(c, H, parent=None), reverse=True, backend=backend, newton=o)
                for c, o in layers]

    params = [jax.jit(m.init)(jax.random.key(0), x, LENGTHS)["params"] for m in modules("scan")]
    carries = [jax.tree.map(lambda z: 0.5 + jnp.zeros_like(z), make_cell(c, H).initialize_carry(None, (B, D)))
               for c, _ in layers]

    def run(backend):
        def loss(ps, x, cs):
            outs = [m.apply({"params": p}, x, LENGTHS, c, mutable=["intermediates"])
                    for m, p, c in zip(modules(backend), ps, cs)]
            return _loss_of(outs), [(y, c, st) for (y, c), st in outs]

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(params, x, carries)

    newton.FALLBACKS.clear()
    with caplog.at_level(logging.WARNING, logger="seqjax.core.newton"):
        (_, want), grads0 = run("scan")
        (_, got), grads1 = run("newton")
        jax.block_until_ready(grads1)
    assert newton.FALLBACKS == {"forward": 1, "adjoint": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "seqjax.core.newton"]
    assert len(lines) == 2 and all("sequential loop" in line for line in lines)
    assert _max_diff([w[:2] for w in want], [g[:2] for g in got]) < 1e-4  # outputs, final carries
    assert _max_diff(grads0, grads1) < 1e-4  # d params, d inputs, d initial carries
    infos = [np.asarray(st["intermediates"]["newton"][0]) for _, _, st in got]
    assert [i[1] for i in infos] == [1.0, 1.0, 1.0, 0.0]  # converged, except the starved one
    assert infos[2][0] <= 6 and infos[0][0] <= T + 1


def test_paragru_long_sequence_converges_in_a_few_iterations_damped_or_not():
    """ParaGRU at T = 4096 (hidden 8, batch 2): exact Newton converges in <= 4 iterations to
    the sequential loop's states; with damping (J / 1.5) it converges too, in more."""
    x = jax.random.normal(jax.random.key(2), (2, 4096, 3))
    ref = Recurrent(make_cell("paragru", 8, parent=None))
    new = [Recurrent(make_cell("paragru", 8, parent=None), backend="newton", newton=NewtonOptions(damping=d))
           for d in (0.0, 0.5)]
    params = jax.jit(ref.init)(jax.random.key(0), x)

    @jax.jit
    def run(p, x):
        return ref.apply(p, x), [m.apply(p, x, mutable=["intermediates"]) for m in new]

    want, got = run(params, x)
    (iters, converged, _), (damped_iters, damped_converged, _) = [
        np.asarray(st["intermediates"]["newton"][0]) for _, st in got]
    assert converged and iters <= 4, iters
    assert damped_converged and iters < damped_iters <= 40, damped_iters
    assert _max_diff(want, got[0][0]) < 1e-4 and _max_diff(want, got[1][0]) < 1e-4


def test_block_scan():
    """Both methods of the block scan solve h_t = A_t h_{t-1} + b_t (2 x 2 blocks, T = 7)."""
    k = jax.random.split(jax.random.key(3), 3)
    a = 0.5 * jax.random.normal(k[0], (7, 2, 2, 1, 3))  # [T, k, k, B, H]
    b = jax.random.normal(k[1], (7, 2, 1, 3))
    h = h0 = jax.random.normal(k[2], (2, 1, 3))
    want = []
    for t in range(7):
        h = jnp.einsum("pqbu,qbu->pbu", a[t], h) + b[t]
        want.append(h)
    for method in ("chunked", "associative"):
        got = jax.jit(newton.block_linear_scan, static_argnums=3)(a, b, h0, method)
        assert _max_diff(jnp.stack(want), got) < 1e-5, method
