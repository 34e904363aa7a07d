"""Several processes are one computation: two local processes x 2 devices (gloo CPU
collectives, loopback coordinator) train exactly what one process x 4 devices trains,
write one run directory, resume after both are killed, and end in bounded time when a
peer dies or the coordinator cannot be reached. Evaluation runs on any device count."""
from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

TIMEOUT_S = 240  # one launch of a tiny preset; hangs fail the test instead of the suite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    keep = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_")  # the suite's shared cache
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") or k.startswith(keep)}
    return {**env, "JAX_PLATFORMS": "cpu", "SEQJAX_TUNING": "0",
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "  # the suite's compile level
                         f"--xla_force_host_platform_device_count={devices}".strip(), **extra}


def _cmd(preset: str, workdir: pathlib.Path, *sets: str) -> list[str]:
    cmd = [sys.executable, "-m", "seqjax", "train", preset, "--workdir", str(workdir)]
    for s in ("train.progress=off", "train.log_every=1", *sets):
        cmd += ["--set", s]
    return cmd


def _start(cmd: list[str], processes: int, port: int, **extra) -> list[subprocess.Popen]:
    """``processes`` local processes x 2 devices running ``cmd --distributed``."""
    pipe = subprocess.PIPE
    return [subprocess.Popen(cmd + ["--distributed"], stdout=pipe, stderr=pipe, text=True,
                             env=_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                      JAX_NUM_PROCESSES=str(processes), JAX_PROCESS_ID=str(i),
                                      SEQJAX_HEARTBEAT_TIMEOUT_S="5", **extra))
            for i in range(processes)]


def _start_each(cmds: list[list[str]], port: int, **extra) -> list[subprocess.Popen]:
    """One local process x 2 devices per command of ``cmds``, joined as one run."""
    pipe, n = subprocess.PIPE, len(cmds)
    return [subprocess.Popen(cmd + ["--distributed"], stdout=pipe, stderr=pipe, text=True,
                             env=_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                      JAX_NUM_PROCESSES=str(n), JAX_PROCESS_ID=str(i),
                                      SEQJAX_HEARTBEAT_TIMEOUT_S="5", **extra))
            for i, cmd in enumerate(cmds)]


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT_S)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out


def two_processes(cmd: list[str]) -> None:
    for code, _, err in _finish(_start(cmd, 2, _free_port())):
        assert code == 0, err[-3000:]


def one_process(cmd: list[str], devices: int = 4) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, env=_env(devices), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def rows(workdir: pathlib.Path, *splits: str) -> list[dict]:
    out = [json.loads(ln) for ln in (workdir / "metrics.jsonl").read_text().splitlines()]
    out = [r for r in out if not splits or r["split"] in splits]
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in out]


def assert_same_rows(a: list[dict], b: list[dict]) -> None:
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    for x, y in zip(a, b):
        keys = sorted(k for k, v in x.items() if isinstance(v, float))
        np.testing.assert_allclose([x[k] for k in keys], [y[k] for k in keys], rtol=1e-4, atol=1e-6,
                                   err_msg=f"step {x['step']} {x['split']}")


def summary_metrics(workdir: pathlib.Path) -> dict:
    """Flat ``{"final/test/loss": ..., "best/step": ...}`` of summary.json (no timings)."""
    s = json.loads((workdir / "summary.json").read_text())
    flat = {"steps": s["steps"], "best/step": s["best"]["step"]}
    for w in ("final", "best"):
        for split in ("valid", "test"):
            flat.update({f"{w}/{split}/{k}": v for k, v in s[w][split].items() if k != "tokens_per_s"})
    return flat


@pytest.fixture(scope="session")
def sequences_runs(tmp_path_factory):
    """``sequences:tiny`` (2 epochs, 32 steps) on 1 process x 4 devices and on 2 x 2.

    Built once per test run, not once per xdist worker: the runs live in the directory all
    workers share, and the first worker to need them builds them under a file lock while the
    other waits (building them twice at once would cost more than the wait).
    """
    base = tmp_path_factory.getbasetemp()  # under xdist: popen-gwN/ in this run's directory
    root = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "sequences_runs"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            shutil.rmtree(root / "one", ignore_errors=True)
            shutil.rmtree(root / "two", ignore_errors=True)
            one_process(_cmd("sequences:tiny", root / "one"))
            two_processes(_cmd("sequences:tiny", root / "two"))
            (root / "done").touch()
    return root / "one", root / "two"


@pytest.mark.slow
def test_one_device_equals_four_devices(sequences_runs, tmp_path):
    four = sequences_runs[0]
    single = tmp_path / "single"
    one_process(_cmd("sequences:tiny", single), devices=1)
    assert len(rows(single, "train", "valid")) > 10
    assert_same_rows(rows(single, "train", "valid"), rows(four, "train", "valid"))


@pytest.mark.slow
def test_two_processes_equal_one_process_row_by_row(sequences_runs, run_cli, capsys):
    one, two = sequences_runs
    assert len(rows(two, "train")) == 32  # written once: one row a step, not one a process
    assert_same_rows(rows(one), rows(two))
    assert summary_metrics(one) == pytest.approx(summary_metrics(two), rel=1e-4)
    for name in ("config.json", "summary.json", "checkpoints", "best", "tb"):
        assert (two / name).exists(), name
    # the multi-process checkpoint restores in one process (the test process: 1 device)
    code, out, err = run_cli("eval", str(two), "--split", "test")
    assert code == 0, err
    best_test = json.loads((two / "summary.json").read_text())["best"]["test"]
    assert json.loads(out)["loss"] == pytest.approx(best_test["loss"], rel=1e-5)


@pytest.mark.slow
def test_killed_processes_resume_to_the_uninterrupted_result(sequences_runs, tmp_path):
    """A peer killed mid-run: the survivor ends within the heartbeat timeout (5 s here)
    with one line instead of hanging or JAX's abort; both relaunched with the same commands
    end as the straight run."""
    _, straight = sequences_runs
    workdir = tmp_path / "run"
    cmd = _cmd("sequences:tiny", workdir, "train.checkpoint_every=4")
    port = _free_port()
    procs = _start(cmd, 2, port)
    try:
        metrics, deadline = workdir / "metrics.jsonl", time.time() + TIMEOUT_S
        logged = lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 13  # noqa: E731
        while time.time() < deadline and not logged():
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGKILL)  # the supervisor: its worker dies with it
        t0 = time.time()
        _, err = procs[0].communicate(timeout=60)
        assert procs[0].returncode == 1 and time.time() - t0 < 45
        # JAX's LOG(FATAL) block on the survivor became one line
        assert "Check failure" not in err and "coordination_service" not in err, err[-2000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("seqjax: error: the run ended: process 1 stopped sending heartbeats"), last
        assert f"the last checkpoint in {workdir} is step " in last
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    kept = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert kept and max(kept) < 32
    for code, _, err in _finish(_start(cmd, 2, port)):
        assert code == 0, err[-3000:]
        assert f"from step {max(kept)}" in err
    assert summary_metrics(workdir) == pytest.approx(summary_metrics(straight), rel=1e-5)
    assert_same_rows(rows(straight), rows(workdir))


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])  # the command's JSON result line


@pytest.mark.slow
def test_bucketed_batches_two_processes_equal_one_process(tmp_path):
    """``agnews:tiny``: length-bucketed batches split across processes."""
    sets = ["train.steps=8", "train.eval_every=8"]
    one_process(_cmd("agnews:tiny", tmp_path / "one", *sets))
    two_processes(_cmd("agnews:tiny", tmp_path / "two", *sets))
    assert len(rows(tmp_path / "two", "train")) == 8
    assert_same_rows(rows(tmp_path / "one"), rows(tmp_path / "two"))


@pytest.mark.slow
def test_lm_two_processes_equal_one_process_and_evaluate_on_any_device_count(tmp_path, run_cli):
    """``ptb_lm:tiny`` (BPTT streams, the carry threaded across windows) on 2 processes x 2
    devices equals 1 x 4 row by row. Its 5 valid streams and its single test stream do not
    divide the 4 devices: they are padded with rows of weight 0, and ``seqjax eval`` of the
    two-process run's params on 1 device (this process) and on 2 scores the same numbers."""
    sets = ["train.steps=8", "train.eval_every=8", "data.max_tokens=4000", "data.eval_batch_size=5",
            "data.test_batch_size=1"]
    run = _last_json(one_process(_cmd("ptb_lm:tiny", tmp_path / "one", *sets)).stdout)["best"]
    two = tmp_path / "two"
    two_processes(_cmd("ptb_lm:tiny", two, *sets))
    assert len(rows(two, "train")) == 8
    assert_same_rows(rows(tmp_path / "one"), rows(two))
    for split in ("valid", "test"):
        code, out, err = run_cli("eval", str(two), "--split", split)
        assert code == 0, err
        assert _last_json(out)["ppl"] == pytest.approx(run[split]["ppl"], rel=1e-5), split
    cmd = [sys.executable, "-m", "seqjax", "eval", str(two), "--split", "test"]
    res = subprocess.run(cmd, env=_env(2), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0, res.stderr
    assert _last_json(res.stdout)["ppl"] == pytest.approx(run["test"]["ppl"], rel=1e-5)


def test_unreachable_coordinator_ends_with_one_line():
    t0 = time.time()
    res = subprocess.run(
        [sys.executable, "-m", "seqjax", "train", "sequences:tiny", "--distributed"], capture_output=True,
        text=True, timeout=120,
        env=_env(1, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}", JAX_NUM_PROCESSES="2",
                 JAX_PROCESS_ID="1", SEQJAX_INIT_TIMEOUT_S="3"))
    assert res.returncode == 1 and time.time() - t0 < 60
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("seqjax: error: jax.distributed.initialize failed (coordinator 127.0.0.1:"), last
    assert "process 1 of 2" in last and "no coordinator answered within 3 s" in last


def test_distributed_without_a_cluster_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "seqjax", "train", "sequences:tiny", "--distributed"],
                         capture_output=True, text=True, timeout=120, env=_env(1))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("seqjax: error: --distributed: ")
    assert "JAX_COORDINATOR_ADDRESS" in res.stderr
