"""Hooks (seqjax/training/hooks.py) and the train-state extensions on one shared run: user
hooks run at their cadence from the Python API and from the config by import path; the EMA
(seqjax/training/extensions/ema.py) equals the hand-computed average and is what evaluation
scores; a run with EMA and gradient accumulation killed mid-epoch (``stop_after``) and then
stopped by a second signal inside its last evaluation resumes to exactly the uninterrupted
run: no evaluation, no best-params update, no row lost (the LM-specific checks of
accumulation: tests/test_extensions.py)."""
import json
import os
import signal

import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.training import hooks as hooks_lib
from seqjax.training import loop
from seqjax.training.checkpoint import restore_params

DECAY = 0.7
O = ["train.progress=off", "train.steps=8", "train.eval_every=4", "train.log_every=3", "model.dropout=0.2",
     "optim.lr=0.05", f"train.ema={DECAY}", "train.accumulate=4"]


def tiny(*overrides):
    return config_lib.resolve("sequences:tiny", [*O, *overrides])


def rows(workdir):
    strip = lambda r: {k: v for k, v in r.items() if k != "tokens_per_s"}  # noqa: E731
    return [strip(json.loads(ln)) for ln in (workdir / "metrics.jsonl").read_text().splitlines()]


def restore(workdir, which):
    like = jax.eval_shape(loop.make_engine(tiny()).task.init_params, jax.random.PRNGKey(0))
    return jax.device_get(restore_params(workdir, like, which)[0])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run with recording hooks on every event: (workdir, summary, seen,
    [initial params, params after step 1, ...])."""
    seen, params = [], [jax.device_get(loop.make_engine(tiny()).init_state().params)]
    record = lambda on: lambda info: seen.append((on, info.step))  # noqa: E731
    hooks = [
        hooks_lib.Hook(record("every3"), every=3),
        hooks_lib.Hook(record("eval"), on="eval"),
        hooks_lib.Hook(record("checkpoint"), on="checkpoint"),
        hooks_lib.Hook(lambda info: seen.append(("end", info.metrics["best"]["step"])), on="end"),
        lambda info: params.append(jax.device_get(info.state.params)),  # a plain callable: every step
    ]
    workdir = tmp_path_factory.mktemp("straight")
    summary = loop.train(tiny(), workdir, echo=lambda s: None, hooks=hooks)
    return workdir, summary, seen, params


def test_hooks_run_at_their_cadence(straight):
    _, summary, seen, params = straight
    assert [s for on, s in seen if on == "every3"] == [3, 6]
    assert [s for on, s in seen if on == "eval"] == [4, 8]
    assert [s for on, s in seen if on == "checkpoint"] == [4, 8]
    assert seen[-1] == ("end", summary["best"]["step"]) and [on for on, _ in seen].count("end") == 1
    # a user step hook runs after the evaluation of its step and before its checkpoint
    assert seen.index(("eval", 4)) < seen.index(("checkpoint", 4))
    assert len(params) == 1 + 8


def test_hook_order_and_bad_hooks():
    hooks, calls = hooks_lib.Hooks(), []
    hooks.add(lambda i: calls.append("user"))
    hooks.add(lambda i: calls.append("ckpt"), order=hooks_lib.CHECKPOINT)
    hooks.add(lambda i: calls.append("log"), order=hooks_lib.LOG)
    hooks.add_hook(lambda i: calls.append("even"), every=2)
    hooks.run("step", type("Info", (), {"step": 3})())
    assert calls == ["log", "user", "ckpt"]
    with pytest.raises(hooks_lib.UsageError, match="every=0"):
        hooks_lib.Hook(print, every=0)
    with pytest.raises(hooks_lib.UsageError, match="on='never'"):
        hooks_lib.Hook(print, on="never")


def test_ema_equals_the_hand_computed_average_and_is_evaluated(straight):
    workdir, summary, _, params = straight
    by_hand = params[0]
    for p in params[1:]:
        by_hand = jax.tree.map(lambda e, x: DECAY * e + (1 - DECAY) * x, by_hand, p)
    ema, latest = restore(workdir, "ema"), restore(workdir, "latest")
    for a, b, p in zip(jax.tree.leaves(by_hand), jax.tree.leaves(ema), jax.tree.leaves(latest)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(b, p)  # the EMA is not the trained params
    valid = [r for r in rows(workdir) if r["split"] == "valid"]
    engine = loop.make_engine(tiny())
    on_ema = engine.evaluate(loop.mesh_lib.replicate(ema, engine.mesh), "valid")
    assert valid[-1]["step"] == 8 and valid[-1]["loss"] == pytest.approx(on_ema["loss"], abs=2e-6)
    if summary["best"]["step"] == 8:  # best/ holds the EMA of the best step
        jax.tree.map(np.testing.assert_array_equal, restore(workdir, "best"), ema)


def test_kill_then_signal_in_last_evaluation_loses_nothing(straight, tmp_path, monkeypatch, run_cli):
    """Killed after step 3 (``stop_after``, mid-epoch; the EMA is in the checkpoint), resumed,
    then two SIGINTs inside the last evaluation (its valid
    row already written, best/ not yet updated): the second resume redoes that evaluation,
    so rows, best/, the summary, the params and the EMA equal the uninterrupted run's."""
    workdir, summary, _, _ = straight
    due, real = {8}, loop._Session.keep_best

    def keep_best(self, info):
        if self.step in due:
            due.discard(self.step)
            os.kill(os.getpid(), signal.SIGINT)  # first: stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # second: stop now, inside the evaluation
        return real(self, info)

    monkeypatch.setattr(loop._Session, "keep_best", keep_best)
    run = tmp_path / "run"
    assert loop.train(tiny(), run, stop_after=3, echo=lambda s: None)["interrupted_at"] == 3
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny(), run, echo=lambda s: None)
    assert not due
    resumed = loop.train(tiny(), run, echo=lambda s: None)
    assert resumed["best"]["step"] == summary["best"]["step"] != -1
    for key in ("loss", "acc"):
        assert resumed["best"]["valid"][key] == pytest.approx(summary["best"]["valid"][key], rel=1e-6)
    assert any((run / "best").iterdir())
    assert rows(run) == rows(workdir)
    for which in ("ema", "latest"):
        jax.tree.map(np.testing.assert_array_equal, restore(workdir, which), restore(run, which))
    code, out, err = run_cli("eval", str(run), "--checkpoint", "ema")
    assert code == 0 and "ema checkpoint of step 8" in err, err
    code, out, err = run_cli("eval", str(run), "--checkpoint", "emma")
    assert code == 2 and "ema" in err and len(err.strip().splitlines()) == 1, err


def test_user_hook_by_import_path_runs_from_the_cli(run_cli, tmp_path):
    import userhooks

    userhooks.SEEN.clear()
    paths = 'train.hooks=["userhooks:every_two","userhooks:at_end"]'
    code, out, err = run_cli("train", "sequences:tiny", "--workdir", str(tmp_path / "run"),
                             "--set", "train.progress=off", "--set", "train.steps=5", "--set", paths)
    assert code == 0, err
    assert userhooks.SEEN == [("step", 2), ("step", 4), ("end", 5)]
    code, out, err = run_cli("train", "sequences:tiny", "--workdir", str(tmp_path / "bad"),
                             "--set", 'train.hooks=["userhooks:nothing"]')
    assert code == 2 and len(err.strip().splitlines()) == 1 and "userhooks" in err, err
    assert not (tmp_path / "bad" / "checkpoints").exists()
