"""One device mesh with a ``data`` axis: batches sharded, parameters replicated.

The same code runs on 1 CPU, N GPUs or a multi-host TPU slice: jit partitions the step
(GSPMD) from the input shardings; there is no ``pmap`` and no per-device code. For
several hosts, call :func:`maybe_initialize_distributed` first (``seqjax train
--distributed``), and every host feeds its own slice of the global batch.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from seqjax.errors import UsageError


def maybe_initialize_distributed(enabled: bool) -> None:
    """``jax.distributed.initialize()`` for multi-host runs (TPU pods, SLURM, or the
    ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` env vars)."""
    if enabled or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()


def make_mesh() -> Mesh:
    """All devices on one ``data`` axis (Auto: jit's partitioner places the rest)."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "data.batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise UsageError(f"{key}={batch_size} is not divisible by the {n} devices; pick a multiple of {n}")


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Host arrays with a leading (process-local) batch axis -> global arrays split over ``data``."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def process_slice(batch_size: int) -> slice:
    """This host's rows of a global batch (the whole batch on a single host)."""
    per = batch_size // jax.process_count()
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)
