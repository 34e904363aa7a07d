"""The rules of a run directory: one run per directory, written so that nothing is lost.

A run directory (``seqjax train --workdir W``) holds one run. :class:`RunDir` enforces it
in two phases around the building of the task (:func:`seqjax.training.loop.train`):

* :meth:`RunDir.prepare`, before anything is built: the directory is created if needed
  (and removed again if the start fails before the run begins: a config error leaves
  nothing behind), the lock ``W/.lock`` is taken, and a run already recorded there is
  compared with the new config. A second training on W, or a config that differs in a key
  outside :data:`RESUMABLE_KEYS`, is refused with one line (exit 2) naming the ways out;
  ``--move-aside`` instead moves the old run into ``W/previous-<time>/`` (nothing is ever
  deleted).
* :meth:`RunDir.commit`, once the task is built: the old run moved aside if asked,
  ``config.json`` written (atomically; allowed changes noted) and a session appended to
  ``provenance.json``.

The lock is ``fcntl.flock`` on ``W/.lock``, held by the training process (process 0 of a
multi-process run) until it ends: the operating system releases it when the process dies,
so a lock left by a killed run never blocks the next start. ``config.json``,
``summary.json`` and ``provenance.json`` are written atomically (:func:`atomic_write`): a
crash or a full disk leaves the old file or none, never a torn one, and a torn or empty
``config.json`` left by an older start is ignored with a warning when the directory holds
no checkpoint and no metrics rows.

A multi-process run (``--distributed``) decides once for all its processes: they compare
their configs before anything starts (:func:`resolve_together`, :func:`check_same_config`:
a config error on any process or configs that differ stop every process with one line),
and process 0 takes the lock and writes; the others share its verdict.

Provenance (``provenance.json``, copied into ``summary.json``): one entry a session (every
resume appends one) with the seqjax version, the git commit and dirty flag when seqjax runs
from a checkout, the versions of the libraries that decide the numbers, the command line,
the devices, processes and hosts, and the start and end times and steps.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from seqjax import config as config_lib
from seqjax import importpath
from seqjax.errors import SeqjaxError, TrainingError, UsageError

#: Config keys that may differ between a run's recorded ``config.json`` and a resumed
#: session: none of them changes the model, the data or the optimizer state. The length of
#: training, the evaluation / checkpoint / logging cadence, early stopping, the progress bar,
#: which params the final report uses, evaluation batching and the speed knobs documented as
#: giving the same numbers. Every other key (the experiment and preset included) must match.
RESUMABLE_KEYS: tuple[str, ...] = (
    "train.epochs",
    "train.steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.log_every",
    "train.early_stop_patience",
    "train.progress",
    "train.final_params",
    "data.eval_batch_size",
    "data.test_batch_size",
    "model.unroll",
    "model.eval_unroll",
    "model.eval_wavefront",
    "model.remat",
)

#: the libraries whose versions a run records (distribution names)
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "datasets", "numpy", "ml-collections")

LOCK, CONFIG, SUMMARY, PROVENANCE = ".lock", "config.json", "summary.json", "provenance.json"
PREVIOUS = "previous-"  # prefix of the folders old runs are moved into

_MISSING = object()


def now() -> str:
    """The time, ISO 8601 in UTC with seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- files


def atomic_write(path: pathlib.Path, text: str) -> None:
    """Replace ``path`` by ``text`` all at once: written to a temporary file in the same
    directory, flushed to disk, renamed over ``path`` (readers see the old file or the new
    one, never part of one). A failed write (a full disk) leaves the old file and raises
    :class:`TrainingError` with one line."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        raise TrainingError(f"cannot write {path} ({why}); fix that and run the same command again") from None
    with contextlib.suppress(OSError):  # the rename itself survives a crash once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_json(path: pathlib.Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
    """Steps of the committed checkpoints in ``workdir/checkpoints`` and ``workdir/best``."""
    steps = set()
    for sub in ("checkpoints", "best"):
        d = pathlib.Path(workdir) / sub
        if d.is_dir():
            steps.update(int(p.name) for p in d.iterdir() if p.name.isdigit() and p.is_dir())
    return sorted(steps)


# --------------------------------------------------------------------------- configs


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": 32}}`` -> ``{"model.hidden": 32}`` (JSON values)."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def normalized(config_json: str) -> dict[str, Any]:
    """A config's flat ``{key: value}`` as ``config.json`` records it (through
    :func:`seqjax.config.from_json`, so a file from an older seqjax gains the defaults of
    keys added since), with import paths by their modules' names today
    (:func:`seqjax.importpath.current_paths`: a run started as ``model.cell=seqjax.cells:LSTMCell``
    compares equal to ``seqjax.core.cells:LSTMCell``)."""
    recorded = json.loads(config_lib.to_json(config_lib.from_json(config_json)))
    return flatten(importpath.current_paths(recorded))


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` of the flat configs' differences (a key absent on
    one side is :data:`_MISSING` there); ``experiment`` and ``preset`` first."""
    keys = sorted(set(old) | set(new), key=lambda k: (k not in ("experiment", "preset"), k))
    return {k: (old.get(k, _MISSING), new.get(k, _MISSING)) for k in keys
            if old.get(k, _MISSING) != new.get(k, _MISSING)}


def describe_diff(diff: dict[str, tuple[Any, Any]], most: int = 6) -> str:
    """``model.hidden: 32 → 64, seed: 0 → 1`` (the first ``most`` keys, then a count)."""
    def show(v):
        return "(absent)" if v is _MISSING else json.dumps(v)

    parts = [f"{k}: {show(a)} → {show(b)}" for k, (a, b) in list(diff.items())[:most]]
    if len(diff) > most:
        parts.append(f"and {len(diff) - most} more")
    return ", ".join(parts)


def resumable(key: str) -> bool:
    return key in RESUMABLE_KEYS


def resolve_together(resolve: Callable[[], Any], workdir: str | None,
                     default_workdir: Callable[[Any], Any]) -> tuple[Any, str]:
    """``(config, workdir)`` of a ``seqjax train`` command: ``resolve()`` and ``workdir`` (else
    ``default_workdir(config)``). In a multi-process run every process resolves its own, then
    they compare before anything else starts: a config error on any process, or configs that
    differ, stop every process with one line (the error's exit code; 2 for a mismatch)
    instead of leaving the others waiting for a peer that left; the default workdir is
    process 0's (it names the time)."""
    from seqjax.training import mesh

    if mesh.kv_client() is None:
        cfg = resolve()
        return cfg, workdir or str(default_workdir(cfg))
    import jax

    me, n = jax.process_index(), jax.process_count()
    try:
        cfg, error = resolve(), None
        mine = {"config": config_lib.to_json(cfg), "workdir": workdir or str(default_workdir(cfg))}
    except Exception as e:  # noqa: BLE001 — told to the others, then raised here
        cfg, error = None, e
        first = (str(e).splitlines() or [""])[0]
        line = str(e) if isinstance(e, SeqjaxError) else f"{type(e).__name__}: {first}"
        mine = {"error": line[:300], "code": getattr(e, "exit_code", 1)}
    heard = {pid: json.loads(text) for pid, text in mesh.exchange("resolve", json.dumps(mine)).items()}
    if error is not None:
        raise error
    for pid, theirs in sorted(heard.items()):
        if "error" in theirs:
            raise mesh.error_class(theirs["code"])(f"process {pid} of {n} stopped: {theirs['error']}")
        if theirs["config"] != mine["config"]:
            raise _different(pid, theirs["config"], mine["config"])
    return cfg, workdir or (heard[0]["workdir"] if me else mine["workdir"])


def check_same_config(config_json: str) -> list[str]:
    """Stop a multi-process run whose processes were given different configs: one line
    (exit 2) on every process, naming the keys, instead of a collective that aborts later
    on mismatched programs. Returns the hosts of the processes this one heard from (all of
    them on process 0)."""
    from seqjax.training import mesh

    mine = {"config": config_json, "host": socket.gethostname()}
    hosts = [socket.gethostname()]
    for pid, text in sorted(mesh.exchange("config", json.dumps(mine)).items()):
        theirs = json.loads(text)
        hosts.append(theirs["host"])
        if theirs["config"] != config_json:
            raise _different(pid, theirs["config"], config_json)
    return hosts


def _different(pid: int, theirs: str, mine: str) -> UsageError:
    """The one line for process ``pid``'s config ``theirs`` that differs from this one's."""
    import jax

    me, n = jax.process_index(), jax.process_count()
    first, second = (theirs, mine) if pid < me else (mine, theirs)
    diff = describe_diff(config_diff(normalized(first), normalized(second)))
    return UsageError(f"the processes of this run were started with different configs (process "
                      f"{min(pid, me)} → {max(pid, me)} of {n}: {diff}); start every process with the same "
                      "command")


# --------------------------------------------------------------------------- the lock


#: errno values of a filesystem that does not lock (some network filesystems)
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class Lock:
    """An exclusive ``flock`` on ``workdir/.lock``, held until :meth:`release` or the end
    of the process; the file records who holds it (pid, host, start, command line)."""

    def __init__(self, workdir: pathlib.Path):
        self.path = pathlib.Path(workdir) / LOCK
        self.fd: int | None = None
        self.created = False
        self.unsupported = False  # the filesystem refuses flock

    def acquire(self) -> None:
        """Take the lock or raise :class:`UsageError` naming its holder."""
        while True:
            self.created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in _NO_FLOCK:  # a filesystem without locks: train unlocked (the caller warns)
                    self.unsupported = True
                    return
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UsageError(f"--workdir {self.path.parent} is in use by another training ("
                                 f"{self.holder()}); wait until it ends, or pick another --workdir") from None
            try:  # the file may have been removed between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now(), "argv": sys.argv}
        with contextlib.suppress(OSError):  # who holds it is a courtesy (a full disk: the lock still holds)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its lock file gives no details"

    def release(self, remove: bool = False) -> None:
        """Unlock; ``remove`` also deletes the lock file (only one this start created and holds,
        or could not lock)."""
        if remove and self.created and (self.fd is not None or self.unsupported):
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


# --------------------------------------------------------------------------- provenance


def git_state(where: pathlib.Path | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout seqjax runs from, None when it is not
    run from one (an installed wheel, no git)."""
    where = pathlib.Path(where or pathlib.Path(__file__).resolve().parent.parent)

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10)

    try:  # the package's own files must be tracked there (not a venv inside some other repo)
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def library_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for name in ("seqjax", *LIBRARIES):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def session_record(hosts: list[str] | None = None) -> dict:
    """What this process knows of the session starting now (provenance.json)."""
    import jax

    devices = jax.devices()
    versions = library_versions()
    return {
        "start": now(),
        "end": None,
        "seqjax": versions.pop("seqjax"),
        "git": git_state(),
        "libraries": versions,
        "python": platform.python_version(),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "hosts": hosts or [socket.gethostname()],
        "processes": jax.process_count(),
        "devices": {"count": len(devices), "platform": devices[0].platform, "kind": devices[0].device_kind,
                    "per_process": jax.local_device_count()},
    }


# --------------------------------------------------------------------------- the run directory


class RunDir:
    """One training call's claim on a run directory (module docstring): :meth:`prepare`,
    :meth:`commit`, then :meth:`write_summary` and :meth:`close`; :meth:`abandon` on a
    failed start. Process 0 decides and writes; the other processes of a multi-process run
    share its decisions (:func:`seqjax.training.mesh.decided_by_process_0`)."""

    def __init__(self, path: str | pathlib.Path, cfg, *, move_aside: bool = False,
                 echo: Callable[[str], None] = print):
        import jax

        self.path = pathlib.Path(path)
        self.config_json = config_lib.to_json(cfg)
        self.move_aside, self.echo = move_aside, echo
        self.is_main = jax.process_index() == 0
        self.lock = Lock(self.path)
        self.created: list[pathlib.Path] = []  # folders this start made, outermost first
        self.recorded = False  # the folder holds a run (config.json, checkpoints or metrics)
        self.to_move: str | None = None  # why the old run is moved aside at commit
        self.changes: dict[str, list] = {}  # allowed config changes of this session
        self.hosts: list[str] | None = None
        self.provenance: dict = {"sessions": []}
        self.committed = False

    # -- before the task is built ------------------------------------------------------
    def prepare(self) -> RunDir:
        """Check every process was given the same config, then (process 0) create, lock and
        check the directory; every process raises the same one-line error on a refusal."""
        from seqjax.training import mesh

        mesh.begin_run()
        self.hosts = check_same_config(self.config_json)
        try:
            mesh.decided_by_process_0("prepare", self._prepare)
        except BaseException:
            self.abandon()
            raise
        return self

    def _prepare(self) -> None:
        path = self.path
        try:
            missing = [p for p in [path, *path.parents] if not p.exists()]
            path.mkdir(parents=True, exist_ok=True)
            self.created = missing[::-1]
            probe = path / f".write-test-{os.getpid()}"
            try:
                with open(probe, "w") as f:
                    f.write("x" * 4096)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                with contextlib.suppress(OSError):
                    probe.unlink()
        except OSError as e:  # prepare() removes what was created
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TrainingError(f"--workdir {path}: the disk is full; free space and run the same "
                                    "command again") from None
            raise UsageError(f"--workdir {path}: cannot write there ({e.strerror or e}); "
                             "pick a directory you can write to") from None
        self.lock.acquire()
        if self.lock.unsupported:
            self.echo(f"warning: {self.lock.path}: this filesystem does not lock files (flock); a second "
                      "training on this directory would not be stopped")
        self._check()

    def _check(self) -> None:
        """Compare the run recorded in the directory (if any) with the new config."""
        path, saved = self.path, self.path / CONFIG
        steps = checkpoint_steps(path)
        metrics = path / "metrics.jsonl"
        rows = metrics.is_file() and metrics.stat().st_size > 0
        self.recorded = saved.is_file() or bool(steps) or rows
        if self.move_aside:
            self.to_move = "asked"
            return
        held = " and ".join(([f"checkpoints (steps {_steps(steps)})"] if steps else [])
                            + (["metrics rows"] if rows else []))
        if not saved.is_file():
            if held:
                self._refuse(f"holds {held} but no {CONFIG}", f"restore {saved}")
            return
        try:
            old = normalized(saved.read_text())
        except Exception as e:  # noqa: BLE001 — JSONDecodeError, unknown keys, bad types
            why = f"{saved} does not parse ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})"
            if held:
                self._refuse(f"holds {held} but {why}", "restore the file (e.g. from a copy of the run)")
            self.echo(f"warning: {why} and there is no checkpoint: a leftover of a failed start, "
                      "starting afresh")
            return
        diff = config_diff(old, normalized(self.config_json))
        fixed = {k: v for k, v in diff.items() if not resumable(k)}
        if fixed and not held:
            self.echo(f"warning: {saved} records another config ({describe_diff(fixed)}) but the run "
                      "saved no checkpoint and no metrics: replacing it")
        elif fixed:
            self._refuse(f"holds a run with another config ({describe_diff(fixed)})",
                         "use the recorded values")
        else:
            self.changes = {k: [a, b] for k, (a, b) in diff.items()}
            if diff:
                self.echo(f"config change on resume, recorded in {saved}: {describe_diff(diff, most=99)}")

    def _refuse(self, what: str, also: str = "") -> None:
        ways = ", ".join(w for w in (also, "pick another --workdir") if w)
        raise UsageError(f"--workdir {self.path} {what}; {ways}, or add --move-aside to move the old run "
                         f"into {self.path / (PREVIOUS + '<time>')}/ (nothing is deleted)")

    # -- once the task is built ----------------------------------------------------------
    def commit(self) -> None:
        """The run begins: the old run moved aside if asked, config.json and a new
        provenance session written (process 0); every process waits for it."""
        from seqjax.training import mesh

        try:
            mesh.decided_by_process_0("commit", self._commit)
        except BaseException:
            self.abandon()
            raise
        self.committed = True

    def _commit(self) -> None:
        if self.to_move and self.recorded:
            self._move_old_run()
        self.provenance = self._read_provenance()
        session = session_record(self.hosts)
        if self.changes:
            session["config_changes"] = self.changes
        self.provenance["sessions"].append(session)
        atomic_write(self.path / CONFIG, self.config_json + "\n")
        atomic_write_json(self.path / PROVENANCE, self.provenance)

    def _move_old_run(self) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        dest, n = self.path / f"{PREVIOUS}{stamp}", 1
        while dest.exists():
            n += 1
            dest = self.path / f"{PREVIOUS}{stamp}-{n}"
        dest.mkdir()
        for entry in sorted(self.path.iterdir()):
            if entry.name != LOCK and not entry.name.startswith(PREVIOUS) and entry != dest:
                os.rename(entry, dest / entry.name)
        self.echo(f"moved the old run of {self.path} into {dest}/")
        self.recorded = False

    def _read_provenance(self) -> dict:
        p = self.path / PROVENANCE
        if not p.is_file():
            return {"sessions": []}
        try:
            data = json.loads(p.read_text())
            if isinstance(data.get("sessions"), list):
                return data
        except (OSError, ValueError, AttributeError):
            pass
        self.echo(f"warning: {p} does not parse; its earlier sessions are dropped")
        return {"sessions": []}

    # -- the end -------------------------------------------------------------------------
    def note(self, **fields: Any) -> None:
        """Add ``fields`` (e.g. the step the session starts from) to this session's entry."""
        if self.provenance["sessions"]:
            self.provenance["sessions"][-1].update(fields)

    def end_session(self, **fields: Any) -> dict:
        """The provenance with this session's end (time and ``fields``: steps, outcome)."""
        if self.provenance["sessions"]:
            self.provenance["sessions"][-1].update(end=now(), **fields)
        return self.provenance

    def write_summary(self, summary: dict, **fields: Any) -> None:
        """``summary.json`` with the run's provenance (process 0; atomic)."""
        if not self.is_main:
            return
        summary["provenance"] = self.end_session(**fields)
        atomic_write_json(self.path / SUMMARY, summary)

    def close(self, **fields: Any) -> None:
        """Record the session's end in provenance.json and release the lock."""
        if self.is_main and self.committed:
            try:
                atomic_write_json(self.path / PROVENANCE, self.end_session(**fields))
            except TrainingError as e:
                self.echo(f"warning: {e}")
        self.lock.release()

    def abandon(self) -> None:
        """A start that failed before the run began: release the lock and remove what this
        start created (the lock file and folders it made, if nothing else is in them)."""
        if self.committed:
            return
        made = self.created and self.path in self.created
        self.lock.release(remove=made or (self.lock.created and not self.recorded and _only_lock(self.path)))
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _only_lock(path: pathlib.Path) -> bool:
    try:
        return [p.name for p in path.iterdir()] == [LOCK]
    except OSError:
        return False


def _steps(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if len(steps) <= 4 else f"{steps[0]}, ..., {steps[-1]}"


@contextlib.contextmanager
def starting(rundir: RunDir) -> Iterator[RunDir]:
    """``with starting(RunDir(...).prepare()) as rd: build...; rd.commit()``: a failure in
    the block abandons the start."""
    try:
        yield rundir
    except BaseException:
        rundir.abandon()
        raise
