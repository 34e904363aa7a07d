"""XLA:CPU flags for the CLI's steps: the depth-first instruction schedule.

XLA:CPU orders a step's instructions breadth-first by default ("optimised for concurrency":
independent operations become ready together, and its runtime runs ready operations side by
side on the intra-op thread pool); ``--xla_cpu_enable_concurrency_optimized_scheduler=false``
selects its depth-first memory scheduler instead. On the 2-core dev box the PTB-small train
step ran 1.03-1.07x faster with it in three in-process A/Bs (``benchmarks/ab_step.py``
with ``xla_cpu_enable_concurrency_optimized_scheduler`` per variant) and 1.09-1.10x in two
interleaved runs against the peers; its eval step 1.01x in-process (1.01-1.15x against the
peers); XLA's temp memory of the train step is the same (73.9 MB). Which instructions the
change reorders to that effect is not pinned down (experiments/results/bench.md, session 5).

``seqjax`` commands call :func:`prefer_depth_first_schedule` at start-up, before JAX's CPU
backend starts (it reads ``XLA_FLAGS`` then); a scheduler choice already in ``XLA_FLAGS``
wins, ``SEQJAX_XLA_TUNING=0`` turns it off, and library imports never change the flags.
GPU and TPU backends ignore the flag.
"""
from __future__ import annotations

import os

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def prefer_depth_first_schedule() -> bool:
    """Adds ``FLAG=false`` to ``XLA_FLAGS`` unless the user chose; True if it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("SEQJAX_XLA_TUNING", "1") == "0" or FLAG in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}=false".strip()
    return True
