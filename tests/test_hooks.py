"""Hooks (seqjax/training/hooks.py): user hooks run at their cadence from the Python API and
from the config by import path; the built-in hooks keep the run's rows; a second signal
during an evaluation loses no evaluation and no best-params update."""
import json
import os
import signal

import pytest

from seqjax import config as config_lib
from seqjax.training import hooks as hooks_lib
from seqjax.training import loop

O = ["train.progress=off", "train.steps=8", "train.eval_every=4", "train.log_every=3", "model.dropout=0.2"]


def tiny(*overrides):
    return config_lib.resolve("sequences:tiny", [*O, *overrides])


def rows(workdir):
    strip = lambda r: {k: v for k, v in r.items() if k != "tokens_per_s"}  # noqa: E731
    return [strip(json.loads(ln)) for ln in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run with recording hooks on every event: (workdir, summary, seen)."""
    seen = []
    record = lambda on: lambda info: seen.append((on, info.step))  # noqa: E731
    hooks = [
        hooks_lib.Hook(record("every3"), every=3),
        hooks_lib.Hook(record("eval"), on="eval"),
        hooks_lib.Hook(record("checkpoint"), on="checkpoint"),
        hooks_lib.Hook(lambda info: seen.append(("end", info.metrics["best"]["step"])), on="end"),
    ]
    workdir = tmp_path_factory.mktemp("straight")
    summary = loop.train(tiny(), workdir, echo=lambda s: None, hooks=hooks)
    return workdir, summary, seen


def test_hooks_run_at_their_cadence(straight):
    _, summary, seen = straight
    assert [s for on, s in seen if on == "every3"] == [3, 6]
    assert [s for on, s in seen if on == "eval"] == [4, 8]
    assert [s for on, s in seen if on == "checkpoint"] == [4, 8]
    assert seen[-1] == ("end", summary["best"]["step"]) and [on for on, _ in seen].count("end") == 1
    # a user step hook runs after the evaluation of its step and before its checkpoint
    assert seen.index(("eval", 4)) < seen.index(("checkpoint", 4))


def test_builtin_hooks_and_their_order():
    hooks = hooks_lib.Hooks()
    calls = []
    hooks.add(lambda i: calls.append("user"))
    hooks.add(lambda i: calls.append("ckpt"), order=hooks_lib.CHECKPOINT)
    hooks.add(lambda i: calls.append("log"), order=hooks_lib.LOG)
    hooks.add_hook(lambda i: calls.append("odd"), every=2)
    info = type("I", (), {"step": 3})()
    hooks.run("step", info)
    assert calls == ["log", "user", "ckpt"]
    with pytest.raises(hooks_lib.UsageError, match="every=0"):
        hooks_lib.Hook(print, every=0)
    with pytest.raises(hooks_lib.UsageError, match="on='never'"):
        hooks_lib.Hook(print, on="never")


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


def test_second_signal_during_evaluation_loses_nothing(straight, tmp_path, monkeypatch):
    """Two SIGINTs inside the evaluation of step 4 (its valid row already written) and again
    inside the last one (step 8): each stop saves; the resumed runs redo the cut evaluations,
    so the rows, best/ and the summary equal an uninterrupted run's."""
    workdir, summary, _ = straight
    due, real = {4, 8}, loop._Session.keep_best

    def keep_best(self, info):
        if self.step in due:
            due.discard(self.step)
            os.kill(os.getpid(), signal.SIGINT)  # first: stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # second: stop now, inside the evaluation
        return real(self, info)

    monkeypatch.setattr(loop._Session, "keep_best", keep_best)
    run = tmp_path / "run"
    for _ in (4, 8):
        with pytest.raises(KeyboardInterrupt):
            loop.train(tiny(), run, echo=lambda s: None)
    assert not due
    resumed = loop.train(tiny(), run, echo=lambda s: None)
    assert resumed["best"]["step"] == summary["best"]["step"] != -1
    for key in ("loss", "acc"):
        assert resumed["best"]["valid"][key] == pytest.approx(summary["best"]["valid"][key], rel=1e-6)
    assert any((run / "best").iterdir())
    assert rows(run) == rows(workdir)
