"""Storage faults end a run with one line and keep the last good checkpoint; the same
command resumes once the fault is gone. The disk-full case is faked by making orbax's save
raise what it raises on ENOSPC (and, where this process may mount, shown on a real tmpfs)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest

from seqjax.training.checkpoint import Checkpoints, StorageError, tree_nbytes

RUN = ["train", "sequences:tiny", "--set", "train.progress=off", "--set", "train.checkpoint_every=8"]
ENOSPC = ('RESOURCE_EXHAUSTED: Error writing "params/0" in OCDBT database at local file "/x/": '
          "Failed to write 405941 bytes to file 14: No space left on device [os_error_code='28']")


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_full_disk_while_saving_is_one_line_and_the_same_command_resumes(tmp_path, run_cli, monkeypatch):
    real_save = ocp.CheckpointManager.save

    def save(self, step, *args, **kwargs):
        if step == 16 and self.directory.name == "checkpoints":
            raise ValueError(ENOSPC)
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    workdir = tmp_path / "run"
    code, _, err = run_cli(*RUN, "--workdir", str(workdir))
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"seqjax: error: cannot write the checkpoint of step 16 in {workdir.resolve()}: "
                           "the disk is full (needs about "), line
    assert "the last good checkpoint (step 8) is kept" in line and "run the same command to resume" in line
    assert _steps(workdir) == [8]
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    code, out, err = run_cli(*RUN, "--workdir", str(workdir))
    assert code == 0, err
    assert "from step 8" in err and json.loads(out.strip().splitlines()[-1])["steps"] == 32


def test_after_a_failed_write_late_orbax_error_logs_stay_dropped(tmp_path):
    """The write threads of a failed save may log their copy of the failure after close();
    orbax's ERROR records stay filtered then, other loggers' records pass."""
    import errno
    import logging

    ck = Checkpoints(tmp_path / "run")

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")

    ck.latest.wait_until_finished = full
    with pytest.raises(StorageError, match="the disk is full"):
        ck.close()
    absl = logging.getLogger("absl")

    def record(path):
        return logging.LogRecord("absl", logging.ERROR, path, 1, "write failed", None, None)

    assert not absl.filter(record("/site-packages/orbax/checkpoint/_src/futures/future.py"))
    assert absl.filter(record("/site-packages/seqjax/training/loop.py"))
    ok = Checkpoints(tmp_path / "other")
    ok.close()
    assert absl.filter(record("/site-packages/orbax/checkpoint/_src/futures/future.py"))


def test_storage_error_names_the_bytes_of_the_state():
    import numpy as np

    assert tree_nbytes({"a": np.zeros((3, 4), np.float32), "b": [np.zeros(5, np.int8)]}) == 53
    assert issubclass(StorageError, Exception)


@pytest.mark.slow
def test_tmpfs_too_small_for_the_second_checkpoint(tmp_path):
    """A 1.5 MB tmpfs holds the first checkpoint (800 kB: 128-unit LSTM + Adam) and the best
    params but not the second checkpoint; after a remount to 6 MB the same command resumes."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the faked test covers the same path")
    try:
        cmd = [sys.executable, "-m", "seqjax", *RUN, "--set", "model.hidden=128",
               "--workdir", str(mnt / "run")]
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 1
        # the last line is the one line; orbax's own error logs are folded into it, and the
        # closed-event-loop reports of TensorStore's write threads are dropped
        lines = res.stderr.strip().splitlines()
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        assert "the disk is full" in lines[-1] and "(step 8) is kept" in lines[-1], res.stderr[-3000:]
        assert not [ln for ln in lines if ln.startswith("ERROR:absl")]
        assert _steps(mnt / "run") == [8]
        subprocess.run(["mount", "-o", "remount,size=6m", str(mnt)], check=True)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0 and "from step 8" in res.stderr, res.stderr
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_unwritable_workdir_is_one_line(tmp_path, run_cli):
    (tmp_path / "file").write_text("")
    code, _, err = run_cli(*RUN, "--workdir", str(tmp_path / "file" / "run"))
    assert code == 2
    bad = tmp_path / "file" / "run"
    assert err.strip().splitlines()[-1:] == [f"seqjax: error: --workdir {bad}: cannot write there "
                                             "(Not a directory); pick a directory you can write to"]


def test_config_json_that_no_longer_parses_is_one_line(tmp_path, run_cli):
    (tmp_path / "config.json").write_text('{"seed": 0,')
    (tmp_path / "checkpoints" / "8").mkdir(parents=True)  # a run to protect (else: a fresh start)
    code, _, err = run_cli(*RUN, "--workdir", str(tmp_path))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"seqjax: error: --workdir {tmp_path} holds checkpoints (steps 8) but "
                           f"{tmp_path / 'config.json'} does not parse (JSONDecodeError: ")
    code, _, err = run_cli("eval", str(tmp_path))
    assert code == 2 and "config.json does not parse" in err
