"""Interleaved in-process timing shared by the micro-benchmarks (``_bench_stack_loop.py``,
``_readout_probes.py``): every case once per round, in turn, so that this VM's slow drifts
hit all of them alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

Cases = dict[str, tuple[Callable[..., Any], tuple]]


def interleaved_ms(cases: Cases, rounds: int) -> dict[str, float]:
    """``{name: (fn, args)}`` -> median ms per call of each, over ``rounds`` interleaved
    rounds (after one warm-up call each, which compiles)."""
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, args) in cases.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t)
    return {name: 1e3 * float(np.median(ts)) for name, ts in times.items()}


def print_table(title: str, medians: dict[str, float], rounds: int) -> None:
    print(f"\n{title}; median of {rounds} interleaved rounds, {jax.devices()[0]}")
    print("\n| case | ms |\n| --- | ---: |")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.2f} |")
