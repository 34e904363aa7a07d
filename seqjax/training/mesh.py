"""One device mesh with a ``data`` axis: batches sharded, parameters replicated.

The same code runs on 1 CPU, N GPUs or a multi-host slice: jit partitions the step
(GSPMD) from the input shardings; there is no ``pmap`` and no per-device code.

Several processes (``seqjax train --distributed``): :func:`initialize_distributed` joins
them into one mesh of every device. Every batch a task yields is the *global* batch (the
same on every process, deterministic in seed and epoch); :func:`shard_batch` transfers
only this process's rows of it (:func:`process_rows`) to this process's devices, so N
processes compute exactly what one process with all the devices computes. Evaluation
batches whose rows do not divide the device count are padded with zero-weight rows
(:func:`pad_rows`).
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqjax.errors import TrainingError, UsageError

#: environment variables read by :func:`initialize_distributed` -> jax.distributed.initialize keyword
DISTRIBUTED_ENV = {
    "JAX_COORDINATOR_ADDRESS": "coordinator_address",
    "JAX_NUM_PROCESSES": "num_processes",
    "JAX_PROCESS_ID": "process_id",
}


def distributed_kwargs(env: Mapping[str, str]) -> dict:
    """Keyword arguments of ``jax.distributed.initialize`` from ``env``: the coordinator,
    process count and id where given (else JAX detects SLURM, TPU pods, Open MPI), and the
    bounded timeouts ``SEQJAX_INIT_TIMEOUT_S`` (joining, default 120) and
    ``SEQJAX_HEARTBEAT_TIMEOUT_S`` (a silent peer counts as dead, default 30)."""
    kwargs: dict[str, Any] = {}
    for var, key in DISTRIBUTED_ENV.items():
        if env.get(var):
            kwargs[key] = env[var] if key == "coordinator_address" else _int_env(env, var)
    kwargs["initialization_timeout"] = _int_env(env, "SEQJAX_INIT_TIMEOUT_S", 120)
    kwargs["heartbeat_timeout_seconds"] = _int_env(env, "SEQJAX_HEARTBEAT_TIMEOUT_S", 30)
    return kwargs


def _int_env(env: Mapping[str, str], var: str, default: int | None = None) -> int:
    value = env.get(var, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"environment variable {var}={value!r} must be an integer") from None


def initialize_distributed(enabled: bool, env: Mapping[str, str] = os.environ) -> bool:
    """Join the processes of a multi-process run (``--distributed``, or implied by
    ``JAX_COORDINATOR_ADDRESS``) before JAX starts its backend; CPU processes exchange
    collectives over gloo. Returns whether it initialized. A coordinator that cannot be
    reached within the timeout ends with one line."""
    if not (enabled or env.get("JAX_COORDINATOR_ADDRESS")):
        return False
    kwargs = distributed_kwargs(env)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = (f"coordinator {kwargs.get('coordinator_address', '(auto)')}, process "
             f"{kwargs.get('process_id', '(auto)')} of {kwargs.get('num_processes', '(auto)')}")
    if kwargs.get("process_id"):  # JAX aborts the process when it cannot reach the coordinator
        _wait_for_coordinator(kwargs.get("coordinator_address", ""), kwargs["initialization_timeout"], where)
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:  # nothing to detect the cluster from
        raise UsageError(f"--distributed: {e} Set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
                         "JAX_PROCESS_ID, or run under SLURM, Open MPI or on a TPU pod") from None
    except Exception as e:  # noqa: BLE001 — XlaRuntimeError DEADLINE_EXCEEDED and kin
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise TrainingError(f"jax.distributed.initialize failed ({where}) after at most "
                            f"{kwargs['initialization_timeout']} s: {first}; check that every process "
                            "started with the same coordinator address and count") from None
    return True


def _wait_for_coordinator(address: str, timeout_s: int, where: str) -> None:
    """Connect to ``host:port`` until it answers or ``timeout_s`` passes (one line then)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise UsageError(f"JAX_COORDINATOR_ADDRESS={address!r} must be HOST:PORT")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise TrainingError(f"jax.distributed.initialize failed ({where}): no coordinator answered "
                                    f"within {timeout_s} s ({e.strerror or e}); start process 0 first "
                                    "or check the address") from None
            time.sleep(0.5)


def make_mesh() -> Mesh:
    """All devices on one ``data`` axis (Auto: jit's partitioner places the rest)."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "data.batch_size") -> None:
    """A training batch must split evenly over the devices (evaluation batches are padded)."""
    n = mesh.devices.size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"{key}={batch_size!r} must be a positive integer")
    if batch_size % n:
        raise UsageError(f"{key}={batch_size} is not divisible by the {n} devices; pick a multiple of {n}")


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def process_rows(mesh: Mesh, rows: int) -> slice:
    """The rows of a global batch of ``rows`` that live on this process's devices (all of
    them on a single process); ``rows`` must divide by the device count."""
    spans = [idx[0] for idx in batch_sharded(mesh).addressable_devices_indices_map((rows,)).values()]
    start, stop = min(s.start or 0 for s in spans), max(rows if s.stop is None else s.stop for s in spans)
    if sum((rows if s.stop is None else s.stop) - (s.start or 0) for s in spans) != stop - start:
        raise ValueError("this process's devices do not hold one contiguous block of the batch")
    return slice(start, stop)


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Global host arrays ``[B, ...]`` -> global arrays split over ``data``; each process
    transfers only its :func:`process_rows` of every leaf."""
    sharding = batch_sharded(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x[process_rows(mesh, len(x))], x.shape)

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def in_lockstep(tree: Any) -> Any:
    """``tree``, waited for when a step's collectives run between several CPU devices.

    XLA:CPU runs each device's share of a program on a shared thread pool and an all-reduce
    waits until every device has reached it; with the next step already dispatched behind
    it, that rendezvous was seen to starve and abort the process (one process with 4
    virtual devices on 2 cores, and two processes over gloo). Waiting for each step before
    dispatching the next removes the overlap. Accelerators (NCCL, ICI) and a single CPU
    device never wait here: their steps stay asynchronous."""
    if jax.device_count() > 1 and jax.default_backend() == "cpu":
        jax.block_until_ready(tree)
    return tree


def pad_rows(batch: Mapping[str, np.ndarray], multiple: int, weight_key: str) -> dict:
    """``batch`` with its rows padded up to a multiple of ``multiple``: the padding repeats
    the last row (valid ids and lengths) with ``batch[weight_key]`` 0, so the task's metric
    sums are those of the unpadded batch."""
    rows = len(batch[weight_key])
    extra = -rows % multiple
    if not extra:
        return dict(batch)
    take = np.minimum(np.arange(rows + extra), rows - 1)
    out = {k: np.asarray(v)[take] for k, v in batch.items()}
    out[weight_key] = out[weight_key].copy()
    out[weight_key][rows:] = 0
    return out
