"""Orbax checkpoints of a run: the latest K full train states, and the best params.

Layout inside a run directory::

    checkpoints/<step>/{state,meta}   full TrainState + host-side loop position (JSON)
    best/<step>/{params,meta}         params of the best evaluation so far

Restoring walks back from the newest step: a corrupt or partial latest checkpoint
falls back to the previous one with a warning, so a killed job loses at most the
steps since its last save.

For inference, ``restore_params(..., "average")`` returns the element-wise mean of the
best params and the params of every kept checkpoint (checkpoint averaging, a cheap
ensemble of the end of training; experiments/results/translate.md has its effect on BLEU);
``train.keep_checkpoints`` sets how many recent ones are kept and so averaged.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec

from seqjax.errors import DataError, TrainingError, UsageError
from seqjax.training import extensions


class StorageError(TrainingError):
    """A checkpoint could not be written (disk full, directory unwritable); the last good
    checkpoint stays and the same command resumes from it once the fault is fixed."""


#: errno values and orbax/TensorStore status words that mean "the disk refused the write"
_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EROFS, errno.EPERM)


def _cause(e: BaseException) -> str:
    """A few words for a failed write: disk full, not writable, or the error's first line."""
    chain = [e]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
        if len(chain) > 8:
            break
    for c in chain:
        code, text = getattr(c, "errno", None), str(c)
        if code in _FULL or "RESOURCE_EXHAUSTED" in text or "No space left" in text:
            return "the disk is full"
        if code in _DENIED or "PERMISSION_DENIED" in text or "Read-only file system" in text:
            return "the directory is not writable"
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"


class _QuietOrbaxErrors(logging.Filter):
    """Drops orbax's ERROR records (tracebacks of its background write threads): the
    failure they describe reaches the caller as one :class:`StorageError` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or f"{os.sep}orbax{os.sep}" not in record.pathname


_QUIET = _QuietOrbaxErrors()


def tree_nbytes(tree: Any) -> int:
    """Bytes of the arrays of ``tree`` (what a checkpoint of it roughly needs)."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)
                   if hasattr(x, "shape")))


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _saved_replicated(manager: ocp.CheckpointManager, step: int, item: str) -> Any:
    """Restore target of ``item`` at ``step``: its saved shapes and dtypes, replicated over
    this process's devices (a checkpoint written on another device or process count)."""
    sharding = NamedSharding(jax.make_mesh((jax.device_count(),), ("data",)), PartitionSpec())
    saved = manager.item_metadata(step)[item]
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), saved)


class Checkpoints:
    """The run's orbax managers. Every process of a multi-process run calls every method
    (orbax writes each array's shards from the process that holds them and the JSON once).
    A failed write raises :class:`StorageError`: one line with the directory, the bytes
    needed, the free bytes and the step of the last good checkpoint."""

    def __init__(self, workdir: pathlib.Path, keep: int = 2, enabled: bool = True):
        self.enabled = enabled
        self.root = pathlib.Path(workdir).resolve()
        def options(name: str, keep: int) -> ocp.CheckpointManagerOptions:
            # own barrier names: both managers may save the same step at once (multi-process)
            return ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=True, cleanup_tmp_directories=True,
                multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name),
            )

        def handlers(tree: str) -> dict:  # named, so a checkpoint's metadata reads without a target
            return {tree: ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}

        self.latest = ocp.CheckpointManager(
            self.root / "checkpoints", options=options("latest", max(keep, 1)),
            item_handlers=handlers("state"),
        )
        self.best = ocp.CheckpointManager(
            self.root / "best", options=options("best", 1), item_handlers=handlers("params")
        )
        self._pending: tuple[str, int, int] | None = None  # (what, step, bytes) of the write in flight
        logging.getLogger("absl").addFilter(_QUIET)

    @contextlib.contextmanager
    def _writing(self, what: str, step: int, nbytes: int) -> Iterator[None]:
        """Turn any failure of this write into one line."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 — orbax raises ValueError/OSError/XlaRuntimeError
            raise self._fault(what, step, nbytes, e) from None

    def _fault(self, what: str, step: int, needed: int, e: BaseException) -> StorageError:
        try:
            free = f", {shutil.disk_usage(self.root).free} free"
        except OSError:
            free = ""
        good = [s for s in self.latest.all_steps() if s != step]
        last = f"the last good checkpoint (step {max(good)}) is kept" if good else "no checkpoint was written"
        return StorageError(f"cannot write the {what} of step {step} in {self.root}: {_cause(e)} "
                            f"(needs about {needed} bytes{free}); {last}; "
                            "free space and run the same command to resume")

    # -- saving ----------------------------------------------------------------------
    def save(self, step: int, state: Any, meta: dict) -> None:
        if not self.enabled or step in self.latest.all_steps():
            return
        self._write(self.latest, "checkpoint", step, state=state, meta=meta)

    def save_best(self, step: int, params: Any, meta: dict) -> None:
        if not self.enabled:
            return
        for old in self.best.all_steps():
            if old >= step:
                return
        self._write(self.best, "best params", step, params=params, meta=meta)

    def _write(self, manager, what: str, step: int, meta: dict, **tree: Any) -> None:
        """Save the one pytree of ``tree`` (``state=`` or ``params=``) and ``meta`` as ``step``
        of ``manager``, once the write in flight is done; ``what`` names it in errors."""
        self.wait()
        (key, value), = tree.items()
        self._pending = (what, step, tree_nbytes(value))
        with self._writing(*self._pending):
            manager.save(step, args=ocp.args.Composite(**{key: ocp.args.StandardSave(value)},
                                                       meta=ocp.args.JsonSave(meta)))

    def wait(self) -> None:
        """Block until the write in flight is on disk (:class:`StorageError` if it failed)."""
        with self._writing(*(self._pending or ("checkpoint", -1, 0))):
            self.latest.wait_until_finished()
            self.best.wait_until_finished()
        self._pending = None

    def close(self) -> None:
        """:meth:`wait`, then release both managers (their own errors are the ones wait raised).

        After a failed write the other write threads of that save may still be running and
        log their own copy of the failure; the filter then stays on for the rest of the
        process, which ends with the one line :meth:`wait` raised."""
        failed = True
        try:
            self.wait()
            failed = False
        finally:
            for manager in (self.latest, self.best):
                with contextlib.suppress(Exception):
                    manager.close()
            if not failed:
                logging.getLogger("absl").removeFilter(_QUIET)

    # -- restoring -------------------------------------------------------------------
    def restore_latest(self, like_state: Any) -> tuple[Any, dict] | None:
        """The newest readable ``(state, meta)``, or None when there is no checkpoint."""
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                out = self.latest.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(_abstract(like_state)), meta=ocp.args.JsonRestore()
                    ),
                )
                return out["state"], dict(out["meta"])
            except Exception as e:  # noqa: BLE001 — any unreadable checkpoint: fall back
                warnings.warn(f"checkpoint at step {step} is unreadable ({type(e).__name__}: {e}); "
                              "trying the previous one", stacklevel=2)
        return None

    def restore_best(self, like_params: Any) -> tuple[Any, dict] | None:
        step = self.best.latest_step()
        if step is None:
            return None
        target = _saved_replicated(self.best, step, "params")
        out = self.best.restore(
            step,
            args=ocp.args.Composite(params=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
        )
        return jax.tree.map(lambda _, x: x, like_params, out["params"]), dict(out["meta"])


# -- reading for inference ---------------------------------------------------------------
#: directory and item name of each kind of checkpoint (see the module docstring)
KINDS = {"best": ("best", "params"), "latest": ("checkpoints", "state")}


class Unreadable(Exception):
    """One checkpoint directory cannot be restored (partial, corrupt, or not this model)."""


class CheckpointReader:
    """Read-only access to a run's checkpoints, for inference while a training may be writing.

    Unlike an orbax ``CheckpointManager`` it creates, cleans and deletes nothing: it lists
    the step directories orbax has finalized (``checkpoints/<step>``, ``best/<step>``; the
    ``<step>.orbax-checkpoint-tmp-*`` directories of a write in flight are not steps) and
    restores one with a plain ``Checkpointer``. ``warn`` gets one line per checkpoint that
    cannot be read (the caller then falls back to another one).
    """

    def __init__(self, workdir: str | pathlib.Path, warn=None):
        self.root = pathlib.Path(workdir).resolve()
        self.warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))

    def steps(self, kind: str) -> list[int]:
        """Finalized steps of ``kind`` (``best`` or ``latest``), newest first."""
        d = self.root / KINDS[kind][0]
        try:
            return sorted(ocp.step.checkpoint_steps(d), reverse=True) if d.is_dir() else []
        except OSError:  # a step deleted by the training while listing: list again
            return sorted(ocp.step.checkpoint_steps(d), reverse=True) if d.is_dir() else []

    def read(self, kind: str, step: int, like_params: Any, pick=None) -> tuple[Any, dict]:
        """``(params, meta)`` of ``kind`` at ``step``, shaped like ``like_params`` (arrays
        replicated over this process's devices); :class:`Unreadable` if it cannot be.
        ``pick(saved state) -> params`` chooses other params of a ``latest`` checkpoint."""
        sub, item = KINDS[kind]
        path = self.root / sub / str(step)
        handler = ocp.CompositeCheckpointHandler(**{item: ocp.StandardCheckpointHandler(),
                                                    "meta": ocp.JsonCheckpointHandler()})
        try:
            with ocp.Checkpointer(handler) as ck:
                rep = NamedSharding(jax.make_mesh((jax.device_count(),), ("data",)), PartitionSpec())
                saved = ck.metadata(path).item_metadata[item]
                target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=rep), saved)
                out = ck.restore(path, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(target),
                                                                  "meta": ocp.args.JsonRestore()}))
            tree = pick(out[item]) if pick else out[item]["params"] if item == "state" else out[item]
            params = _like(like_params, tree)
        except Exception as e:  # noqa: BLE001 — orbax/tensorstore raise many kinds: one line
            first = (str(e).strip().splitlines() or [""])[0]
            raise Unreadable(f"{path} is unreadable ({type(e).__name__}: {first[:160]})") from None
        return params, dict(out["meta"] or {})

    def _gone(self, kind: str, step: int, wait_s: float = 0.5) -> bool:
        """The step directory disappears within ``wait_s``: the training is deleting it
        (``keep_checkpoints``) while it was read, which is no fault of the checkpoint."""
        path = self.root / KINDS[kind][0] / str(step)
        deadline = time.monotonic() + wait_s
        while path.is_dir():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def first_readable(self, kind: str, like_params: Any, then: str = "") -> tuple[int, Any, dict] | None:
        """``(step, params, meta)`` of the newest readable checkpoint of ``kind``; one line
        for each one skipped (``then`` names the fall-back after the last). A step the
        training deletes meanwhile is passed over silently and the steps are listed again
        (newer ones may have been written)."""
        tried: set[int] = set()
        for _ in range(64):  # a bound, not a retry budget: each round tries a new step
            steps = [s for s in self.steps(kind) if s not in tried]
            if not steps:
                return None
            step = steps[0]
            tried.add(step)
            try:
                return (step, *self.read(kind, step, like_params))
            except Unreadable as e:
                if self._gone(kind, step):
                    continue
                nxt = f"the {kind} checkpoint of step {steps[1]}" if len(steps) > 1 else then
                self.warn(f"{e}; {'using ' + nxt if nxt else 'no other to use'}")
        return None

    def all_readable(self, kind: str, like_params: Any):
        """``(step, params, meta)`` of every readable checkpoint of ``kind``, newest first."""
        for step in self.steps(kind):
            try:
                yield (step, *self.read(kind, step, like_params))
            except Unreadable as e:
                if not self._gone(kind, step):
                    self.warn(f"{e}; left out")


def _like(like: Any, tree: Any) -> Any:
    """``tree`` in the structure of ``like``; :class:`ValueError` naming the first leaf whose
    shape differs (a checkpoint of another model than the run's config.json describes)."""
    flat_like, _ = jax.tree_util.tree_flatten_with_path(like)
    out = jax.tree.map(lambda _, x: x, like, tree)
    for (path, a), b in zip(flat_like, jax.tree.leaves(out)):
        if tuple(a.shape) != tuple(b.shape):
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            raise ValueError(f"{name} is {tuple(b.shape)}, the run's config makes it {tuple(a.shape)}")
    return out


def average_params(trees: list[Any]) -> Any:
    """Element-wise mean of params trees of one structure (accumulated in float32)."""
    def mean(*xs):
        acc = sum(np.asarray(x, np.float32) for x in xs) / len(xs)
        return acc.astype(np.asarray(xs[0]).dtype)

    return jax.tree.map(mean, *trees)


def restore_average(ck: Checkpoints | CheckpointReader, like_params: Any) -> tuple[Any, dict] | None:
    """The mean of the best params and every readable kept checkpoint's params, with
    ``{"step": newest, "averaged_steps": [...]}``; None when there is no checkpoint. Given
    the training's :class:`Checkpoints`, it first waits for the write in flight."""
    if isinstance(ck, Checkpoints):
        ck.wait()
        ck = CheckpointReader(ck.root)
    by_step = {step: params for step, params, _ in ck.all_readable("latest", like_params)}
    if (best := ck.first_readable("best", like_params)) is not None:
        by_step[best[0]] = best[1]
    if not by_step:
        return None
    steps = sorted(by_step)
    return average_params([by_step[s] for s in steps]), {"step": steps[-1], "averaged_steps": steps}


def restore_view(reader: CheckpointReader, which: str, like_params: Any) -> tuple[Any, dict]:
    """The params a train-state extension keeps (``--checkpoint ema``: the EMA of the params)
    from the newest readable checkpoint; one-line UsageError for an unknown name or a run
    that did not keep them."""
    ext = extensions.view_of(which)
    for step in reader.steps("latest"):
        try:
            params, meta = reader.read("latest", step, like_params,
                                       pick=lambda state: ext.view_params(state["ext"][ext.name]))
        except Unreadable as e:
            if "KeyError" in str(e):
                break
            reader.warn(f"{e}; trying an older checkpoint")
            continue
        return params, {**meta, "step": step, "kind": which}
    raise UsageError(f"{reader.root}: no checkpoint holds {which} params (the run did not keep them); "
                     "use --checkpoint best, latest or average")


#: for each ``--checkpoint`` choice, the kinds tried in order
_ORDER = {"best": ("best", "latest"), "latest": ("latest", "best")}


def restore_params(workdir: str | pathlib.Path, like_params: Any, which: str = "best",
                   warn=None) -> tuple[Any, dict]:
    """Params of a run for inference, read-only (:class:`CheckpointReader`): ``best``
    (falling back to the latest readable checkpoint), ``latest`` (falling back to older
    ones, then to the best params), or ``average`` (:func:`restore_average`). ``meta`` gets
    ``"kind"`` (``best``, ``latest`` or ``average``) and ``"step"``.

    Raises :class:`UsageError` when the run has no checkpoint yet (exit 2) and
    :class:`DataError` when none of its checkpoints is readable (exit 3)."""
    reader = CheckpointReader(workdir, warn)
    if which not in ("best", "latest", "average"):
        return restore_view(reader, which, like_params)
    if which == "average" and (got := restore_average(reader, like_params)) is not None:
        return got[0], {**got[1], "kind": "average"}
    order = _ORDER.get(which, _ORDER["best"])
    for i, kind in enumerate(order):
        then = f"the {order[i + 1]} checkpoint" if i + 1 < len(order) and reader.steps(order[i + 1]) else ""
        if (got := reader.first_readable(kind, like_params, then)) is not None:
            step, params, meta = got
            return params, {**meta, "step": step, "kind": kind}
    if any(reader.steps(k) for k in order):
        raise DataError(f"{reader.root}: no checkpoint is readable (see the lines above); "
                        "retrain, or restore the run directory from a copy")
    raise UsageError(f"{workdir}: no checkpoint yet; train first with `seqjax train ... --workdir {workdir}`")
