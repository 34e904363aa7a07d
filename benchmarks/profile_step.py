"""Where a step's time goes: the engine's jitted train (or eval) step under ``jax.profiler``,
summed per XLA op (thunk) and per step.

    python benchmarks/profile_step.py                       # PTB-small train step
    python benchmarks/profile_step.py --eval                # its eval step (batch 64)
    python benchmarks/profile_step.py agnews:bilstm-2x64 --set data.batch_size=128 --top 20
    PYTHONPATH=/tmp/old python benchmarks/profile_step.py   # another checkout (git archive)
    python benchmarks/profile_step.py --overlap ynn_fusion.24   # what ran beside that op

Same synthetic batches and steps as ``seqjax bench`` (``seqjax.app.bench.synthetic_task`` and
``seqjax.training.loop.make_engine``). Prints the wall time per step and the ``--top`` ops by
time per step with their call counts; look an op name up in the optimized HLO
(``--hlo FILE`` writes it). On CPU, Eigen dots run asynchronously, so their own rows
understate them; the per-step wall time is the figure to compare.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import resource
import shutil
import tempfile
import time

import jax
import numpy as np

from seqjax import config as config_lib
from seqjax.app import bench
from seqjax.app.cli import tune_process
from seqjax.training import loop
from seqjax.training import mesh as mesh_lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default=bench.DEFAULT_CONFIG)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--eval", action="store_true", help="profile the eval step instead of the train step")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--hlo", help="write the optimized HLO text of the step here")
    ap.add_argument(
        "--overlap",
        action="append",
        default=[],
        metavar="OP",
        help="for the first call of OP in the trace, the ops that ran on other threads meanwhile",
    )
    args = ap.parse_args()
    tune_process()  # as the `seqjax` executable does (SEQJAX_TUNING=0: off)
    sets = list(bench.DEFAULT_OVERRIDES) + args.sets if args.config == bench.DEFAULT_CONFIG else args.sets
    cfg = config_lib.resolve(args.config, sets)
    task, make_batch = bench.synthetic_task(cfg)
    engine = loop.make_engine(cfg, task=task)
    batch = mesh_lib.shard_batch(
        make_batch(np.random.default_rng(0), "valid" if args.eval else "train"), engine.mesh
    )
    state = engine.init_state()
    if args.eval:
        carry = task.initial_carry(len(next(iter(batch.values())))) if task.stateful else None
        compiled = engine.eval_step.lower(state.params, batch, carry).compile()

        def run(s):
            compiled(s.params, batch, carry)[0]["count"].block_until_ready()
            return s
    else:
        compiled = engine.train_step.lower(state, batch).compile()

        def run(s):
            s = compiled(s, batch)
            jax.block_until_ready(s)
            return s

    if args.hlo:
        with open(args.hlo, "w") as f:
            f.write(compiled.as_text())
    for _ in range(3):
        state = run(state)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state = run(state)
    wall = (time.perf_counter() - t0) / args.steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / args.steps
    trace_dir = tempfile.mkdtemp()
    try:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                state = run(state)
        events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))[
            "traceEvents"
        ]
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "PjitFunction")):
            total[name] += e["dur"]
            count[name] += 1
    step = "eval" if args.eval else "train"
    print(
        f"{args.config} {step} step: {1e3 * wall:.1f} ms wall per step (no profiler), "
        f"{faults:.0f} page faults per step, {jax.devices()[0]}"
    )
    print("\n| op | ms / step | calls / step |\n| --- | ---: | ---: |")
    for name, us in total.most_common(args.top):
        print(f"| {name[:60]} | {us / args.steps / 1e3:.2f} | {count[name] / args.steps:g} |")
    for op in args.overlap:
        print_overlap(events, op)


def print_overlap(events, op: str) -> None:
    """Which ops ran on other threads while the first call of ``op`` ran (ms of overlap)."""
    ops = [
        e
        for e in events
        if e.get("ph") == "X" and not e.get("name", "").startswith(("$", "ThunkExecutor", "Pjit"))
    ]
    calls = sorted((e for e in ops if e["name"] == op), key=lambda e: e["ts"])
    if not calls:
        print(f"\n{op}: not in the trace")
        return
    first = calls[0]
    start, end = first["ts"], first["ts"] + first["dur"]
    overlap = collections.Counter()
    for e in ops:
        if e["tid"] != first["tid"]:
            shared = min(end, e["ts"] + e["dur"]) - max(start, e["ts"])
            if shared > 0:
                overlap[e["name"]] += shared
    top = ", ".join(f"{name} {us / 1e3:.2f}" for name, us in overlap.most_common(5))
    print(f"\n{op} ({first['dur'] / 1e3:.2f} ms): on other threads meanwhile (ms): {top or 'nothing'}")


if __name__ == "__main__":
    main()
