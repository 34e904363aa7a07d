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

The processes agree on the rest through the coordination service's key-value store (host
to host, no device program): :func:`exchange` compares what each was started with,
:func:`decided_by_process_0` shares process 0's verdict on the run directory, and
:class:`AgreedStop` stops every process after the same step when any one of them is asked
to stop.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqjax.errors import DataError, SeqjaxError, TrainingError, UsageError

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


# ----------------------------------------------------------------------------- agreement

#: how long a process waits for a peer's answer in the key-value store (a dead peer ends the
#: run sooner, through the heartbeat timeout)
WAIT_S = 3600


_run = [0]  # training calls so far in this program: their keys never meet (``seqjax/<n>/...``)


def begin_run() -> None:
    """Start the keys of a new training call (every process calls it the same number of times)."""
    _run[0] += 1


def _key(*parts: object) -> str:
    return "/".join(("seqjax", str(_run[0]), *map(str, parts)))


def kv_client():
    """The coordination service's client of a multi-process run; None in one process."""
    if jax.process_count() == 1:
        return None
    from jax._src import distributed  # the client jax.distributed.initialize made

    return distributed.global_state.client


def _get(client, key: str, timeout_s: float = WAIT_S) -> str:
    try:
        return client.blocking_key_value_get(key, int(timeout_s * 1000))
    except Exception as e:  # noqa: BLE001 — XlaRuntimeError DEADLINE_EXCEEDED
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise TrainingError(f"process {jax.process_index()}: no answer from the other processes of the run "
                            f"within {timeout_s:.0f} s ({first}); relaunch every process with the same "
                            "command") from None


def exchange(name: str, value: str, timeout_s: float | None = None) -> dict[int, str]:
    """Post ``value`` under ``name`` and read the values the others posted: process 0 reads
    every process's, the others read process 0's (``{process: value}``; empty in one
    process). Bounded by ``SEQJAX_INIT_TIMEOUT_S`` (the processes start together)."""
    client = kv_client()
    if client is None:
        return {}
    me, n = jax.process_index(), jax.process_count()
    timeout_s = timeout_s or _int_env(os.environ, "SEQJAX_INIT_TIMEOUT_S", 120)
    client.key_value_set(_key(name, me), value)
    return {j: _get(client, _key(name, j), timeout_s) for j in (range(1, n) if me == 0 else [0])}


_ERRORS = {2: UsageError, 3: DataError}


def error_class(exit_code: int) -> type[SeqjaxError]:
    """The error class that exits with ``exit_code`` (a peer's error raised here)."""
    return _ERRORS.get(exit_code, TrainingError)


def decided_by_process_0(name: str, fn: Callable[[], object]) -> object:
    """``fn()`` on process 0, its outcome shared: every other process waits for it, and a
    :class:`SeqjaxError` raised there is raised on each of them too (the same line and exit
    code), so no process is left waiting for a peer that gave up. One process: ``fn()``."""
    client = kv_client()
    if client is None:
        return fn()
    key = _key("decided", name)
    if jax.process_index() == 0:
        try:
            out = fn()
        except SeqjaxError as e:
            client.key_value_set(key, json.dumps({"error": str(e), "code": e.exit_code}))
            raise
        except BaseException as e:
            first = (str(e).strip().splitlines() or [""])[0][:160]
            error = f"process 0 failed: {type(e).__name__}: {first}"
            client.key_value_set(key, json.dumps({"error": error, "code": 1}))
            raise
        client.key_value_set(key, "{}")
        return out
    got = json.loads(_get(client, key))
    if "error" in got:
        raise error_class(got["code"])(got["error"])
    return None


class AgreedStop:
    """Stop requests (SIGTERM, Ctrl-C) of a multi-process run, acted on by every process
    after the same step, so that each saves the same checkpoint and none waits in a
    collective for a peer that left.

    Wraps the process's own stop requests (``local.signal``: the signal number or None) and
    answers the loop's ``stop.signal`` after each step. At agreed check steps each process
    posts its own request to the key-value store, process 0 reads them all and posts the
    verdict together with the next check step, chosen so that checks come about every
    ``interval_s`` seconds of training: a stop takes effect within that time plus a step,
    and between checks a step costs nothing extra (a check: two round trips to the
    coordinator). Every other attribute is ``local``'s.
    """

    def __init__(self, local, step: Callable[[], int], echo: Callable[[str], None], interval_s: float = 1.0):
        self.local, self._step, self._echo, self.interval_s = local, step, echo, interval_s
        self.client, self.me, self.n = kv_client(), jax.process_index(), jax.process_count()
        self.agreed: int | None = None  # the signal every process stops for
        self.checks = 0  # checks done (the key of the next one)
        self._next: int | None = None  # step of the next check (None: the first poll)
        self._last: tuple[int, float] | None = None  # (step, time) of the last check (process 0)

    def __getattr__(self, name: str):
        return getattr(self.local, name)

    @property
    def alone(self) -> bool:
        """True when this process stops without the others (a second signal): a checkpoint
        needs them all, so the last saved one stands."""
        return self.agreed is None

    @property
    def signal(self) -> int | None:
        if self.agreed is not None:
            return self.agreed
        step = self._step()
        if self._next is not None and step < self._next:
            return None
        self._next = step + 1  # polled again at this step: answered below, not checked again
        mine = self.local.signal or 0
        key = _key("stop", self.checks)
        if self.me == 0:
            asked = [(mine, 0)] + [(int(_get(self.client, f"{key}/{j}")), j) for j in range(1, self.n)]
            sig, who = next(((s, j) for s, j in asked if s), (0, -1))
            self._next = step + self._every(step)
            self.client.key_value_set(f"{key}/verdict", f"{sig},{who},{self._next}")
            if self.checks:
                for j in range(1, self.n):
                    self.client.key_value_delete(_key("stop", self.checks - 1, j))
                self.client.key_value_delete(_key("stop", self.checks - 1, "verdict"))
        else:
            self.client.key_value_set(f"{key}/{self.me}", str(mine))
            sig, who, self._next = map(int, _get(self.client, f"{key}/verdict").split(","))
        self.checks += 1
        if sig:
            self.agreed = sig
            if who != self.me:
                self._echo(f"process {who} received {signal.Signals(sig).name}: every process stops after "
                           f"step {step} with a checkpoint")
        return self.agreed

    def _every(self, step: int) -> int:
        """Steps to the next check: about ``interval_s`` at the recent step time."""
        now, last = time.monotonic(), self._last
        self._last = (step, now)
        if last is None or step <= last[0]:
            return 1
        per_step = (now - last[1]) / (step - last[0])
        return int(min(1000, max(1, self.interval_s / max(per_step, 1e-6))))  # interval 0: every step


def agreed_stop(local, step: Callable[[], int], echo: Callable[[str], None],
                env: Mapping[str, str] = os.environ):
    """``local`` in one process; an :class:`AgreedStop` around it in a multi-process run,
    checking about every ``SEQJAX_STOP_CHECK_S`` seconds (default 1; 0: after every step)."""
    if jax.process_count() == 1:
        return local
    try:
        interval = float(env.get("SEQJAX_STOP_CHECK_S", 1.0))
    except ValueError:
        raise UsageError(f"SEQJAX_STOP_CHECK_S={env['SEQJAX_STOP_CHECK_S']!r}: expected seconds") from None
    return AgreedStop(local, step, echo, interval_s=interval)
