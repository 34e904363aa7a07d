"""seqjax/app/api.py: README's snippet as written, a user-defined task in the one loop, lazy export."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import seqjax
from seqjax.app import api
from seqjax.errors import UsageError
from seqjax.tasks.many_to_one import SequenceTask

README = Path(__file__).resolve().parent.parent / "README.md"


def test_import_seqjax_does_not_load_the_api():
    code = "import sys, seqjax; print('seqjax.app.api' in sys.modules, 'seqjax.training.loop' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert seqjax.train is api.train and seqjax.load_run is api.load_run


@pytest.mark.slow
def test_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQJAX_TUNING", "0")  # the test process's JAX backend is already up
    exec(compile(code, "README.md", "exec"), {})
    acc, evaluated = capsys.readouterr().out.strip().splitlines()[-1].split()
    summary = json.loads((tmp_path / "runs/api/summary.json").read_text())
    assert float(acc) == summary["best"]["test"]["acc"] == float(evaluated)  # same params, same test split


class ParitySumTask(SequenceTask):
    """A user's task: the parity task reporting one more metric."""

    def summarize(self, sums):
        out = super().summarize(sums)
        out["error"] = 1.0 - out["acc"]
        return out


@pytest.mark.slow
def test_user_task_runs_in_the_loop_and_loads_back(tmp_path):
    summary = api.train(
        "sequences:tiny",
        ["train.epochs=1", "train.progress=off"],
        workdir=tmp_path / "run",
        task=ParitySumTask,
        echo=lambda s: None,
    )
    test = summary["best"]["test"]
    assert test["error"] == pytest.approx(1.0 - test["acc"])
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["task"]
    assert recorded == f"{__name__}:ParitySumTask"
    run = api.load_run(tmp_path / "run")
    assert type(run.task) is ParitySumTask and run.step == summary["best"]["step"]
    x = np.zeros((2, 5, 1), np.float32)
    assert run.model.apply({"params": run.params}, x).shape == (2, 2)
    assert api.evaluate(run, "test")["error"] == pytest.approx(test["error"])


def test_bad_task_and_unimportable_path():
    with pytest.raises(UsageError, match="pass a subclass of seqjax.tasks.base.Task"):
        api.config("sequences:tiny", task=dict)
    from seqjax.tasks import task_class

    with pytest.raises(UsageError, match=r"task='nowhere\.mod:Task': cannot import it"):
        task_class("nowhere.mod:Task")


def test_train_passes_move_aside_and_hooks_to_the_loop(tmp_path, monkeypatch):
    from seqjax.training import loop

    seen = {}
    monkeypatch.setattr(loop, "train", lambda cfg, workdir, data_dir, **kw: seen.update(kw) or {"steps": 0})
    out = api.train("sequences:tiny", workdir=tmp_path / "w", move_aside=True, hooks=[print])
    assert out == {"workdir": str(tmp_path / "w"), "steps": 0}
    assert seen["move_aside"] is True and list(seen["hooks"]) == [print]
