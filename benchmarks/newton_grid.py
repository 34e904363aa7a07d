"""Where Newton's parallel-in-time solve pays: a training step (forward + gradient) of one
recurrent layer, sequential loop vs ``backend="newton"`` vs the linear parallel scan, over
hidden size x sequence length, measured side by side in one process.

    python benchmarks/newton_grid.py                      # the grid, printed
    python benchmarks/newton_grid.py --write              # and into experiments/results/longrange.md
    python benchmarks/newton_grid.py --check              # newton == scan for every cell, iterations

Columns: ``seq`` = ParaGRU on the sequential scan (``backend=scan``), ``newton`` = the same
layer and params by Newton iterations (``backend=newton``, exact diagonal Jacobian), ``linear``
= minGRU by its log-space parallel scan (``parallel_scan=on``: a linear recurrence, one pass,
the floor any parallel-in-time method pays); ``iters`` = Newton iterations to tolerance
(1e-5). Times are the fastest of ``--repeats`` jitted steps after a warm-up (the three
take turns in each round, so that a busy machine slows them alike), milliseconds, batch
``--batch``, 2 input features. A configuration whose sequential step took longer
than ``--budget`` seconds ends that row's larger lengths for every column.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.core import newton
from seqjax.core.cells import make_cell
from seqjax.core.layers import Recurrent, Stacked

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "results" / "longrange.md"
BEGIN, END = "<!-- newton_grid:begin -->", "<!-- newton_grid:end -->"


def _layer(cell: str, hidden: int, backend: str, parallel_scan: str = "auto") -> Recurrent:
    return Recurrent(make_cell(cell, hidden, parent=None), backend=backend, parallel_scan=parallel_scan)


def _step(module, params, x):
    """A jitted value-and-grad step of ``module`` (run once: compiled), and the Newton
    iterations it sowed (NaN when it fell back to the sequential loop)."""

    @jax.jit
    def step(p, x):
        def loss(p):
            (y, _), st = module.apply(p, x, mutable=["intermediates"])
            return jnp.mean(y**2), st

        (value, st), grads = jax.value_and_grad(loss, has_aux=True)(p)
        return value, grads, st

    infos = jax.tree.leaves(jax.block_until_ready(step(params, x))[2])
    iters = None
    if infos:
        info = np.asarray(infos[0])
        iters = float(info[0]) if info[1] == 1.0 else float("nan")
    return (lambda: jax.block_until_ready(step(params, x))), iters


def _interleaved_ms(steps: dict, repeats: int) -> dict:
    """The fastest of ``repeats`` runs of each step in ms, the steps taking turns in every
    round so that a busy machine slows them alike."""
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, run in steps.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v) for k, v in times.items()}


def grid(hiddens, lengths, batch: int, repeats: int, budget: float) -> list[dict]:
    rows = []
    for h in hiddens:
        stop = False
        for t in lengths:
            if stop:
                break
            x = jax.random.normal(jax.random.key(t), (batch, t, 2))
            para = _layer("paragru", h, "scan")
            params = jax.jit(para.init)(jax.random.key(0), x[:, :8])
            lin = _layer("mingru", h, "scan", parallel_scan="on")
            steps = {"seq": _step(para, params, x)[0]}
            steps["newton"], iters = _step(_layer("paragru", h, "newton"), params, x)
            steps["linear"] = _step(lin, jax.jit(lin.init)(jax.random.key(0), x[:, :8]), x)[0]
            ms = _interleaved_ms(steps, repeats)
            row = {"hidden": h, "length": t, **{f"{k}_ms": v for k, v in ms.items()}, "iters": iters}
            rows.append(row)
            print(json.dumps(row), flush=True)
            stop = row["seq_ms"] > 1e3 * budget
            jax.clear_caches()
    return rows


def check(cells, batch=3, length=9, hidden=5) -> list[dict]:
    """Every cell in a 2-layer bidirectional stack over ragged rows from a nonzero carry:
    the largest difference to ``backend=scan`` of outputs, final carries and gradients, and
    the Newton iterations of its four layers (tests/test_newton.py runs two of the cells)."""
    x = jax.random.normal(jax.random.key(1), (batch, length, 4))
    lengths = jnp.array([length, length - 3, 0])
    opts = newton.NewtonOptions(tol=1e-6, max_iters=40)
    out = []
    for cell in cells:
        ref, new = (Stacked(cell=cell, hidden=hidden, layers=2, bidirectional=True, backend=b, newton=opts)
                    for b in ("scan", "newton"))
        params = jax.jit(ref.init)(jax.random.key(0), x, lengths)["params"]
        carry = jax.tree.map(lambda z: 0.5 + jnp.zeros_like(z), ref.initialize_carry(batch))

        def run(module, params=params, carry=carry):
            def loss(p, x, c):
                (y, final), st = module.apply({"params": p}, x, lengths, c, mutable=["intermediates"])
                total = jnp.sum(jnp.sin(y)) + sum(jnp.sum(f**2) for f in jax.tree.leaves(final))
                return total, (y, final, st)

            return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(params, x, carry)

        before = dict(newton.FALLBACKS)
        (_, (y0, c0, _)), g0 = run(ref)
        (_, (y1, c1, st)), g1 = run(new)

        def diff(a, b):
            return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

        infos = np.asarray(jax.tree.leaves(st["intermediates"])).reshape(-1, 3)
        row = {"cell": cell, "outputs": diff(y0, y1), "carries": diff(c0, c1), "grads": diff(g0, g1),
               "iters": [int(i) for i in infos[:, 0]], "converged": bool(infos[:, 1].all()),
               "fell_back": dict(newton.FALLBACKS) != before}
        print(json.dumps(row), flush=True)
        out.append(row)
    # ParaGRU at T = 4096 (hidden 8, batch 2): iterations to tolerance
    x = jax.random.normal(jax.random.key(2), (2, 4096, 3))
    layer = _layer("paragru", 8, "newton")
    params = jax.jit(layer.init)(jax.random.key(0), x[:, :8])
    _, st = jax.jit(lambda p, x: layer.apply(p, x, mutable=["intermediates"]))(params, x)
    info = np.asarray(st["intermediates"]["newton"][0])
    row = {"cell": "paragru T=4096 hidden 8", "iters": [int(info[0])], "converged": bool(info[1])}
    print(json.dumps(row), flush=True)
    out.append(row)
    return out


def _machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in cpu.splitlines()
                     if line.startswith("Model name"))
    except Exception:  # noqa: BLE001 (any failure: the platform string is enough)
        model = platform.processor()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return (f"{model}, {jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}, "
            f"commit {commit}")


def markdown(rows: list[dict], checks: list[dict], argv: list[str], wall: float) -> str:
    lines = [BEGIN, "", f"`python benchmarks/newton_grid.py {' '.join(argv)}` — {_machine()}; "
             f"{wall / 60:.1f} min wall.", ""]
    if rows:
        lines += ["Training step (forward + gradient) of one layer, fastest of the rounds, ms; `newton/seq` "
                  "< 1: Newton wins.", "",
                  "| hidden | T | seq ms | newton ms | linear ms | newton/seq | iters |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            lines.append(f"| {r['hidden']} | {r['length']} | {r['seq_ms']:.1f} | {r['newton_ms']:.1f} | "
                         f"{r['linear_ms']:.1f} | {r['newton_ms'] / r['seq_ms']:.2f} | {r['iters']:.0f} |")
        lines += ["", "Crossover (per hidden size, the smallest T of the grid from which newton is faster "
                  "than seq at every longer T too):", ""]
        for h in sorted({r["hidden"] for r in rows}):
            row = sorted((r["length"], r["newton_ms"] < r["seq_ms"]) for r in rows if r["hidden"] == h)
            wins = [t for i, (t, _) in enumerate(row) if all(win for _, win in row[i:])]
            lines.append(f"- hidden {h}: " + (f"T >= {min(wins)}" if wins else "none in the grid"))
    if checks:
        lines += ["", "newton vs scan, 2-layer bidirectional stack, ragged rows, nonzero initial carry "
                  "(largest absolute difference; iterations of its 4 layers):", "",
                  "| cell | outputs | final carries | gradients | iterations | fell back |",
                  "| --- | ---: | ---: | ---: | --- | --- |"]
        for c in checks:
            if "outputs" in c:
                lines.append(f"| {c['cell']} | {c['outputs']:.1e} | {c['carries']:.1e} | {c['grads']:.1e} | "
                             f"{c['iters']} | {c['fell_back']} |")
            else:
                lines.append(f"| {c['cell']} | | | | {c['iters']} (converged: {c['converged']}) | |")
    return "\n".join(lines + ["", END])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="1,4,16,64,256")
    ap.add_argument("--lengths", default="256,1024,4096,16384,65536")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds a sequential step may take")
    ap.add_argument("--check", action="store_true", help="run the equality check instead of the grid")
    ap.add_argument("--write", action="store_true", help=f"replace the grid's section of {RESULTS.name}")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows, checks = [], []
    if args.check:
        checks = check(("rnn", "gru", "lstm", "paragru", "paralstm"))
    else:
        rows = grid([int(h) for h in args.hidden.split(",")], [int(t) for t in args.lengths.split(",")],
                    args.batch, args.repeats, args.budget)
    text = markdown(rows, checks, argv, time.time() - t0)
    print(text)
    if args.write:
        marker_begin = BEGIN if not args.check else BEGIN.replace("grid", "check")
        marker_end = END if not args.check else END.replace("grid", "check")
        text = text.replace(BEGIN, marker_begin).replace(END, marker_end)
        old = RESULTS.read_text() if RESULTS.exists() else ""
        if marker_begin in old:
            head, rest = old.split(marker_begin, 1)
            old = head + text + rest.split(marker_end, 1)[1]
        else:
            old = old + ("\n" if old else "") + text + "\n"
        RESULTS.write_text(old)


if __name__ == "__main__":
    main()
