"""A run directory belongs to one run (seqjax/training/rundir.py): a second training is
locked out, a config that changes the model, data or optimizer is refused with every old
file kept (``--move-aside`` moves the old run aside), allowed changes are recorded, reruns
add no duplicate rows, a torn metrics line or the empty config.json of a failed start
block nothing, a config error leaves no directory, a failed final evaluation still writes
summary.json, every run records its provenance, and the processes of a multi-process run
agree on their config and on a stop."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from test_multihost import TIMEOUT_S, _cmd, _finish, _free_port, _start, _start_each

from seqjax import config as config_lib
from seqjax.errors import TrainingError
from seqjax.training import rundir
from seqjax.training.logger import parse_rows

RUN = ("train", "sequences:tiny", "--set", "train.steps=4", "--set", "train.eval_every=2",
       "--set", "train.log_every=1", "--set", "train.progress=off")


def _cli(*args: str) -> tuple[int, str, str]:
    from seqjax.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _last(err: str) -> str:
    return err.strip().splitlines()[-1]


def _files(workdir: pathlib.Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a run directory (the lock file aside)."""
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(workdir.rglob("*")) if p.is_file() and p.name != rundir.LOCK}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step ``sequences:tiny`` run, started over the empty config.json a failed
    start (a full disk) left; returns the run directory and the training's stderr."""
    workdir = tmp_path_factory.mktemp("rundir") / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("")
    code, _, err = _cli(*RUN, "--workdir", str(workdir))
    assert code == 0, err
    return workdir, err


@pytest.fixture
def run(finished, tmp_path) -> pathlib.Path:
    """A copy of the finished run, for a test to change."""
    return pathlib.Path(shutil.copytree(finished[0], tmp_path / "run"))


def test_empty_config_json_of_a_failed_start_does_not_block(finished):
    workdir, err = finished
    assert (f"warning: {workdir / 'config.json'} does not parse (JSONDecodeError: Expecting value: line 1 "
            "column 1 (char 0)) and there is no checkpoint: a leftover of a failed start, starting afresh"
            ) in err.splitlines()
    assert config_lib.from_json((workdir / "config.json").read_text()).train.steps == 4


def test_provenance_is_recorded(finished):
    workdir, _ = finished
    prov = json.loads((workdir / "provenance.json").read_text())
    assert json.loads((workdir / "summary.json").read_text())["provenance"] == prov
    (s,) = prov["sessions"]
    assert s["seqjax"] == "0.1.0" and s["argv"] == sys.argv and s["host"] == socket.gethostname()
    assert s["git"] is None or (len(s["git"]["commit"]) == 40 and isinstance(s["git"]["dirty"], bool))
    for lib in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "datasets"):
        assert s["libraries"][lib], lib
    assert s["processes"] == 1 and s["devices"]["count"] >= 1 and s["devices"]["platform"] == "cpu"
    assert s["start"] <= s["end"] and (s["start_step"], s["steps"], s["outcome"]) == (0, 4, "finished")


def test_rerun_of_a_finished_run_adds_no_row_and_drops_a_torn_line(run, finished):
    """Killed between the test row and summary.json, with a torn last line: the rerun warns
    once, writes summary.json and leaves one row per (step, split)."""
    before = parse_rows(run / "metrics.jsonl")[0]
    (run / "summary.json").unlink()
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "epoch": 1, "spl')
    code, _, err = _cli(*RUN, "--workdir", str(run))
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.startswith("warning:")] == [
        f"warning: {run / 'metrics.jsonl'}: its last line is not a whole JSON row (a write cut short); "
        "dropped"]
    rows, whole = parse_rows(run / "metrics.jsonl", warn=None)
    assert whole and [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in before]
    assert [r["split"] for r in rows].count("test") == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and [s["start_step"] for s in summary["provenance"]["sessions"]] == [0, 4]


def test_changed_config_is_refused_and_the_run_kept(run, run_cli):
    files = _files(run)
    code, _, err = run_cli(*RUN, "--workdir", str(run), "--set", "model.hidden=20")
    assert code == 2
    assert _last(err) == (
        f"seqjax: error: --workdir {run} holds a run with another config (model.hidden: 16 → 20); use the "
        f"recorded values, pick another --workdir, or add --move-aside to move the old run into "
        f"{run}/previous-<time>/ (nothing is deleted)")
    code, _, err = run_cli("train", "ptb_lm:tiny", "--workdir", str(run))
    assert code == 2 and _last(err).startswith(
        f"seqjax: error: --workdir {run} holds a run with another config "
        '(experiment: "sequences" → "ptb_lm", ')
    assert _files(run) == files  # every checkpoint, row and file as it was
    code, out, err = run_cli("eval", str(run))
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["checkpoint_step"] == 4


def test_allowed_change_is_accepted_and_recorded(run):
    code, _, err = _cli(*RUN, "--workdir", str(run), "--set", "train.steps=6")
    assert code == 0, err
    said = f"config change on resume, recorded in {run / 'config.json'}: train.steps: 4 → 6"
    assert said in err.splitlines()
    assert config_lib.from_json((run / "config.json").read_text()).train.steps == 6
    sessions = json.loads((run / "provenance.json").read_text())["sessions"]
    assert sessions[-1]["config_changes"] == {"train.steps": [4, 6]} and sessions[-1]["start_step"] == 4
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert sorted(rundir.RESUMABLE_KEYS) == sorted(set(rundir.RESUMABLE_KEYS))  # the one list, no repeats


def test_move_aside_keeps_every_old_file(run):
    files, said = _files(run), []
    cfg = config_lib.resolve("sequences:tiny", ["model.hidden=20"])
    rd = rundir.RunDir(run, cfg, move_aside=True, echo=said.append).prepare()
    rd.commit()
    rd.close(outcome="test")
    (old,) = run.glob(f"{rundir.PREVIOUS}*")
    assert said == [f"moved the old run of {run} into {old}/"]
    assert _files(old) == files
    assert config_lib.from_json((run / "config.json").read_text()).model.hidden == 20
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [rundir.LOCK, "config.json", "provenance.json", old.name])


def test_second_training_is_locked_out_until_the_first_dies(tmp_path, run_cli):
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen(  # the lock protocol: flock on WORKDIR/.lock, who holds it written in it
        [sys.executable, "-c", "import fcntl, json, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | "
         "os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'pid': os.getpid(), "
         "'host': 'h', 'since': 't'}).encode()); print('locked', flush=True); time.sleep(60)",
         str(workdir / ".lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        code, _, err = run_cli(*RUN, "--workdir", str(workdir))
        assert code == 2
        assert _last(err) == (f"seqjax: error: --workdir {workdir} is in use by another training (pid "
                              f"{holder.pid} on h since t); wait until it ends, or pick another --workdir")
        assert [p.name for p in workdir.iterdir()] == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    lock = rundir.Lock(workdir)
    lock.acquire()  # a killed holder's lock is gone with it
    lock.release()


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    said = []
    rd = rundir.RunDir(tmp_path / "run", config_lib.resolve("sequences:tiny"), echo=said.append).prepare()
    assert said == [f"warning: {tmp_path / 'run' / '.lock'}: this filesystem does not lock files (flock); a "
                    "second training on this directory would not be stopped"]
    rd.abandon()
    assert list(tmp_path.iterdir()) == []


def test_config_error_leaves_no_directory(tmp_path, run_cli):
    workdir = tmp_path / "a" / "b" / "run"
    code, _, err = run_cli("train", "agnews:tiny", "--workdir", str(workdir), "--set", "data.source=csv",
                           "--set", f"data.files.train={tmp_path}/nope.csv")
    assert code == 3, err
    assert list(tmp_path.iterdir()) == []


def test_failed_final_evaluation_keeps_the_model_and_what_was_measured(run, monkeypatch, run_cli):
    from seqjax.tasks.base import Task

    def broken(self, params):
        raise IndexError("list index out of range")

    monkeypatch.setattr(Task, "final_report", broken)
    code, _, err = run_cli(*RUN, "--workdir", str(run))
    assert code == 1
    assert _last(err) == (
        "seqjax: error: the final evaluation failed (IndexError: list index out of range); the trained "
        f"model is kept in {run}/checkpoints and what was measured in {run}/summary.json")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["error"] == "the final evaluation failed: IndexError: list index out of range"
    assert summary["final"]["test"]["acc"] >= 0 and summary["best"]["test"]["acc"] >= 0
    assert summary["provenance"]["sessions"][-1]["outcome"] == "failed in the final evaluation"
    assert rundir.checkpoint_steps(run) == [2, 4]


def test_atomic_write_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    rundir.atomic_write(path, "old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TrainingError, match=r"cannot write .*summary.json \(the disk is full\); fix that"):
        rundir.atomic_write(path, "new, longer text\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


# ----------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_processes_started_with_different_configs_stop_with_one_line(tmp_path):
    workdir, port = tmp_path / "run", _free_port()
    procs = _start_each([_cmd("sequences:tiny", workdir, f"model.hidden={h}") for h in (16, 20)], port)
    for code, _, err in _finish(procs):
        assert code == 2, err[-2000:]
        assert err.strip().splitlines() == [
            "seqjax: error: the processes of this run were started with different configs (process 0 → 1 "
            "of 2: model.hidden: 16 → 20); start every process with the same command"]
    assert not workdir.exists()


def test_a_config_error_on_one_process_stops_the_others(monkeypatch):
    """Process 1's config does not resolve: process 0 stops with its line and exit code
    instead of waiting for a peer that left."""
    import jax

    from seqjax.errors import UsageError
    from seqjax.training import mesh

    told = {}

    def exchange(name, value):
        told[name] = json.loads(value)
        return {1: json.dumps({"error": "model.hidden=-3: must be int or list of ints >= 1", "code": 2})}

    monkeypatch.setattr(mesh, "kv_client", lambda: object())
    monkeypatch.setattr(mesh, "exchange", exchange)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    resolve = lambda: config_lib.resolve("sequences:tiny")  # noqa: E731
    with pytest.raises(UsageError, match=r"^process 1 of 2 stopped: model.hidden=-3: must be int or list"):
        rundir.resolve_together(resolve, None, lambda cfg: "ckpt/x")
    assert told["resolve"]["workdir"] == "ckpt/x" and json.loads(told["resolve"]["config"])["task"]


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_with_a_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    procs = _start(_cmd("sequences:tiny", workdir, "train.epochs=100", "train.eval_every=10000",
                        "train.checkpoint_every=10000"), 2, _free_port())
    try:
        metrics, deadline = workdir / "metrics.jsonl", time.time() + TIMEOUT_S
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)  # the supervisor: it forwards the signal to its worker
        t0 = time.time()
        out = _finish(procs)
    finally:
        for p in procs:
            p.kill()
    assert time.time() - t0 < 60
    steps = set()
    for code, _, err in out:
        assert code == 130, err[-2000:]
        last = _last(err)
        assert last.startswith("interrupted at step ") and last.endswith(
            f"; checkpoint saved in {workdir}; run the same command to resume"), last
        steps.add(int(last.split()[3].rstrip(";")))
    (step,) = steps  # both after the same step
    assert f"process 1 received SIGTERM: every process stops after step {step} with a checkpoint" in out[0][2]
    assert rundir.checkpoint_steps(workdir) == [step]
