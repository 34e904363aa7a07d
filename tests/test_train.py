"""The training engine: a step learns, resume is exact, divergence stops cleanly,
checkpoints fall back (1 device == 4 devices: tests/test_multihost.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.errors import TrainingError
from seqjax.training import loop
from seqjax.training.checkpoint import Checkpoints, restore_params


def tiny(*overrides):
    return config_lib.resolve("sequences:tiny", ["train.progress=off", *overrides])


def test_train_step_changes_params_and_lowers_loss():
    engine = loop.make_engine(tiny("optim.lr=0.01"))
    state = engine.init_state()
    batch = next(iter(engine.task.train_batches(0)))
    sharded = loop.mesh_lib.shard_batch(batch, engine.mesh)
    before = jax.device_get(state.params)
    loss0 = float(engine.task.loss(state.params, batch, None, jax.random.PRNGKey(0), False)[0])
    for _ in range(20):
        state = engine.train_step(state, sharded)
    after = jax.device_get(state.params)
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != b)), before, after))
    assert all(changed)
    assert float(engine.task.loss(state.params, batch, None, jax.random.PRNGKey(0), False)[0]) < loss0 - 0.05
    assert int(state.step) == 20


def _final_params(workdir, cfg):
    like = jax.eval_shape(loop.make_engine(cfg).task.init_params, jax.random.PRNGKey(0))
    params, _ = restore_params(workdir, like, which="latest")
    return jax.device_get(params)


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    """Killed mid-epoch (step 5) and exactly at an epoch boundary (step 16), then resumed:
    the final params and every logged metric equal one uninterrupted run's."""
    o = [
        "model.layers=2",
        "model.dropout=0.3",
        "train.epochs=2",
        "train.log_every=3",
    ]  # dropout: the RNG resumes
    straight = loop.train(tiny(*o), tmp_path / "straight", echo=lambda s: None)
    rows = lambda d: [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    a = _final_params(tmp_path / "straight", tiny(*o))
    for stop_at in (5, 16):
        workdir = tmp_path / f"resumed_{stop_at}"
        out = loop.train(tiny(*o), workdir, stop_after=stop_at, echo=lambda s: None)
        assert out == {"interrupted_at": stop_at, "workdir": str(workdir)}
        resumed = loop.train(tiny(*o), workdir, echo=lambda s: None)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(_final_params(workdir, tiny(*o)))):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6, err_msg=f"stopped at {stop_at}")
        assert straight["best"]["test"]["acc"] == pytest.approx(resumed["best"]["test"]["acc"])
        assert strip(rows(tmp_path / "straight")) == strip(rows(workdir)), f"stopped at {stop_at}"


def test_run_directory_contents(tmp_path):
    summary = loop.train(tiny(), tmp_path, echo=lambda s: None)
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints", "best", "tb"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["experiment"] == "sequences" and cfg["preset"] == "tiny"
    splits = {json.loads(ln)["split"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()}
    assert {"train", "train_epoch", "valid", "test"} <= splits
    assert summary["steps"] == 2 * (512 // 32)


def test_nonfinite_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    cfg = tiny(
        "optim.name=sgd",
        "optim.lr=1e30",
        "optim.clip_norm=0.0",
        "train.epochs=3",
        "train.checkpoint_every=1",
        "train.log_every=1",
        "model.cell=rnn_relu",
    )
    with pytest.raises(TrainingError, match=r"non-finite loss at step \d+") as e:
        loop.train(cfg, tmp_path, echo=lambda s: None)
    bad = int(str(e.value).split("step ")[1].split(";")[0])
    ck = Checkpoints(tmp_path)
    saved = ck.latest.all_steps()
    ck.close()
    assert saved and max(saved) < bad
    like = jax.eval_shape(loop.make_engine(cfg).task.init_params, jax.random.PRNGKey(0))
    params, _ = restore_params(tmp_path, like, which="latest")
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(params)))


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
    o = ["train.epochs=2", "train.checkpoint_every=4", "train.keep_checkpoints=3"]
    loop.train(tiny(*o), tmp_path, stop_after=12, echo=lambda s: None)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 12
    for f in (tmp_path / "checkpoints" / "12").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    messages = []
    with pytest.warns(UserWarning, match="step 12 is unreadable"):
        loop.train(tiny(*o), tmp_path, echo=messages.append)
    assert any("from step 8" in m for m in messages)


def test_signal_inside_a_step_loses_nothing(tmp_path, monkeypatch):
    """SIGTERM delivered while a step runs (its input state already donated): the step
    finishes, its result is checkpointed (raising at the signal would leave only deleted
    arrays to save: "Array has been deleted")."""
    import dataclasses
    import signal

    real_build = loop.make_engine

    def make_engine(*args, **kwargs):
        engine = real_build(*args, **kwargs)
        calls = []

        def step(state, batch):
            out = engine.train_step(state, batch)  # `state` is donated from here on
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        return dataclasses.replace(engine, train_step=step)

    monkeypatch.setattr(loop, "make_engine", make_engine)
    messages = []
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny("train.steps=50", "train.checkpoint_every=1000"), tmp_path, echo=messages.append)
    assert any("checkpoint saved" in m for m in messages), messages
    steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert max(steps) == 3
    monkeypatch.setattr(loop, "make_engine", real_build)
    resumed = []
    summary = loop.train(tiny("train.steps=5", "train.checkpoint_every=1000"), tmp_path, echo=resumed.append)
    assert summary["steps"] == 5 and any("step 3" in m for m in resumed), resumed


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM"])
def test_signal_checkpoints_between_steps_and_resumes(tmp_path, sig):
    """A scheduler's SIGTERM (or Ctrl-C) mid-training: the step in flight finishes, a
    checkpoint of that step is written, exit 130 with one line; the same command resumes."""
    import signal
    import time

    workdir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "seqjax",
        "train",
        "sequences:tiny",
        "--workdir",
        str(workdir),
        "--set",
        "train.progress=off",
        "--set",
        "train.steps=100000",
        "--set",
        "train.log_every=1",
        "--set",
        "train.checkpoint_every=100000",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 5):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in (out + err) and "Error" not in err, err
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps and max(steps) >= 5  # the step reached, not the last periodic checkpoint (none)
    last = max(steps)
    res = subprocess.run(
        cmd[:-6] + ["--set", "train.progress=off", "--set", f"train.steps={last + 3}"],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert f"step {last}" in res.stdout + res.stderr
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if '"train"' in line]
    assert rows[-1]["step"] == last + 3


def test_average_checkpoint_is_the_mean_of_best_and_kept(tmp_path):
    """``--checkpoint average`` = element-wise mean of the best params and every kept
    checkpoint's params; ``seqjax eval`` reports which steps it averaged."""
    cfg = tiny("train.epochs=3", "train.checkpoint_every=3", "train.keep_checkpoints=2", "optim.lr=0.01")
    loop.train(cfg, tmp_path, echo=lambda s: None)
    like = jax.eval_shape(loop.make_engine(cfg).task.init_params, jax.random.PRNGKey(0))
    best, best_meta = restore_params(tmp_path, like, which="best")
    ck = Checkpoints(tmp_path)
    kept = sorted(ck.latest.all_steps())
    ck.close()
    assert len(kept) == 2
    trees = [best]
    import orbax.checkpoint as ocp  # the kept states, read independently of restore_params

    ck = Checkpoints(tmp_path)
    for step in kept:
        trees.append(
            ck.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"][
                "params"
            ]
        )
    ck.close()
    avg, meta = restore_params(tmp_path, like, which="average")
    assert meta["averaged_steps"] == sorted({best_meta["step"], *kept})
    n = len(meta["averaged_steps"])
    expect = jax.tree.map(
        lambda *xs: sum(np.asarray(x) for x in xs) / n,
        *(trees if best_meta["step"] not in kept else trees[1:]),
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-7), avg, expect)
    # an average of different params is none of them
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(avg), jax.tree.leaves(best)))

    import contextlib
    import io

    from seqjax.app import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["eval", str(tmp_path), "--checkpoint", "average"]) == 0
    report = json.loads(out.getvalue())
    assert report["checkpoint"] == "average" and report["averaged_steps"] == meta["averaged_steps"]
    assert np.isfinite(report["loss"])


def test_eval_unroll_changes_speed_not_numbers():
    """``model.eval_unroll`` unrolls the eval step's scan only: same metrics as unroll 1."""
    reports = {}
    for u in (0, 3):
        engine = loop.make_engine(tiny(f"model.eval_unroll={u}"))
        params = engine.init_state().params
        assert engine.task.step_model(False).rnn.unroll == (u or engine.task.model().rnn.unroll)
        assert engine.task.step_model(True).rnn.unroll == engine.task.model().rnn.unroll
        reports[u] = engine.evaluate(params, "valid")
    for k, v in reports[0].items():
        if k != "tokens_per_s":
            np.testing.assert_allclose(reports[3][k], v, rtol=1e-6, err_msg=k)
