"""A/B timing of config variants of one step, interleaved in one process.

    python benchmarks/ab_step.py --variant "chunk 150=model.head_chunk=150" \
        --variant "chunk 350=model.head_chunk=350" [--eval] [--rounds 30] [--steps 5]

Builds the engine's jitted train (or eval) step once per variant (PTB-small by default, the
shapes of ``seqjax bench``), then in every round runs ``--steps`` steps of each variant in
turn; prints the median ms per step over rounds and each variant's ratio to the first.
Interleaving in one process cancels most of this VM's slow drifts (the same command gave
105-141 ms per step a few minutes apart as separate processes). Items ``xla_*=V`` of a
variant are XLA compiler options of its compilation instead of config overrides::

    python benchmarks/ab_step.py --variant "bfs=xla_cpu_enable_concurrency_optimized_scheduler=true" \
        --variant "dfs=xla_cpu_enable_concurrency_optimized_scheduler=false"
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from seqjax import config as config_lib
from seqjax.app import bench
from seqjax.app.cli import tune_process
from seqjax.training import loop
from seqjax.training import mesh as mesh_lib


def _compiler_options(sets: list[str]) -> tuple[list[str], dict]:
    """Splits ``xla_*=V`` items (XLA debug options for this variant's compilation, e.g.
    ``xla_cpu_enable_concurrency_optimized_scheduler=false``) from config overrides."""
    opts = {}
    for item in [s for s in sets if s.startswith("xla_")]:
        key, _, value = item.partition("=")
        opts[key] = {"true": True, "false": False}.get(value.lower(), value)
    return [s for s in sets if not s.startswith("xla_")], opts


def build(config: str, sets: list[str], eval_step: bool):
    sets, options = _compiler_options(sets)
    cfg = config_lib.resolve(config, sets)
    task, make_batch = bench.synthetic_task(cfg)
    engine = loop.make_engine(cfg, task=task)
    batch = mesh_lib.shard_batch(
        make_batch(np.random.default_rng(0), "valid" if eval_step else "train"), engine.mesh
    )
    state = engine.init_state()
    if eval_step:
        carry = task.initial_carry(len(next(iter(batch.values())))) if task.stateful else None
        compiled = engine.eval_step.lower(state.params, batch, carry).compile(
            compiler_options=options or None
        )
        return lambda s: (compiled(s.params, batch, carry)[0]["count"].block_until_ready(), s)[1], state
    compiled = engine.train_step.lower(state, batch).compile(compiler_options=options or None)
    return lambda s: jax.block_until_ready(compiled(s, batch)), state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default=bench.DEFAULT_CONFIG)
    ap.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=KEY=V[,KEY=V]",
        help="a contestant: its name, then comma-separated --set overrides (none: NAME=) and "
        "xla_*=V XLA compiler options of its compilation",
    )
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    tune_process()  # as the `seqjax` executable does (SEQJAX_TUNING=0: off)
    base = list(bench.DEFAULT_OVERRIDES) if args.config == bench.DEFAULT_CONFIG else []
    runs = {}
    for spec in args.variant:
        name, _, sets = spec.partition("=")
        runs[name] = build(args.config, base + [s for s in sets.split(",") if s], args.eval)
    states = {k: r[1] for k, r in runs.items()}
    for k, (fn, _) in runs.items():  # warm up
        for _ in range(2):
            states[k] = fn(states[k])
    times = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, (fn, _) in runs.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                states[k] = fn(states[k])
            times[k].append((time.perf_counter() - t0) / args.steps)
    first = statistics.median(next(iter(times.values())))
    print(
        f"{args.config} {'eval' if args.eval else 'train'} step, {jax.devices()[0]}, "
        f"median of {args.rounds} rounds x {args.steps} steps\n"
    )
    print("| variant | ms / step | × first (speed) |\n| --- | ---: | ---: |")
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"| {k} | {1e3 * med:.1f} | {first / med:.2f} |")


if __name__ == "__main__":
    main()
