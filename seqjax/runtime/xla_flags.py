"""XLA:CPU's depth-first instruction schedule, chosen by the ``seqjax`` executable.

XLA:CPU orders a step's instructions breadth-first by default ("optimised for concurrency":
independent operations become ready together and run side by side on the intra-op thread
pool); ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` selects its depth-first
memory scheduler, which ran the recurrent train and eval steps faster on CPU with the same
temporary memory (the A/B figures are in experiments/results/bench.md).

The flag has to be in ``XLA_FLAGS`` before JAX's CPU backend starts. A scheduler choice
already in ``XLA_FLAGS`` wins; library imports never change the flags; GPU and TPU
backends ignore it.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def prefer_depth_first_schedule() -> bool:
    """Adds ``FLAG=false`` to ``XLA_FLAGS`` unless the user chose; True if it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}=false".strip()
    return True
