"""seqjax/importpath.py: a module that moved keeps its old import path. Config values that
name code (``model.cell``, ``train.extra_loss``, ``train.hooks``, ``task``) written with an
old path still import, and a run directory started with one resumes under a preset that
names the new module, while a path to other code is still a changed config."""

from __future__ import annotations

import json

import pytest

from seqjax import config as config_lib
from seqjax import importpath, tasks
from seqjax.core import activation_reg, cells
from seqjax.errors import UsageError
from seqjax.training import rundir
from seqjax.training.hooks import import_object


def test_old_paths_resolve_to_the_moved_modules():
    assert importpath.current("seqjax.cells") == "seqjax.core.cells"
    assert importpath.current("seqjax.models.regressor") == "seqjax.models.many_to_one"
    assert importpath.current("seqjax.data.tatoeba") == "seqjax.data.pairs"
    assert importpath.current("seqjax.config") == "seqjax.config"  # did not move
    assert importpath.current("seqjax.cellsx") == "seqjax.cellsx"  # a prefix is no module
    assert importpath.current_path("seqjax._malloc:keep_freed_memory") == (
        "seqjax.runtime.malloc:keep_freed_memory")
    assert importpath.current_path("mycells:MyCell") == "mycells:MyCell"
    assert importpath.current_path("lstm") == "lstm"
    assert importpath.current_paths({"a": ["seqjax.cli:run"], "seqjax.losses:f": 1.5, "n": 3}) == {
        "a": ["seqjax.app.cli:run"], "seqjax.core.losses:f": 1.5, "n": 3}
    # each place that imports a path from a config
    assert type(cells.make_cell("seqjax.cells:GRUCell", 4)) is cells.GRUCell
    assert import_object("seqjax.activation_reg:ar", "train.extra_loss") is activation_reg.ar
    assert tasks.task_class("seqjax.tasks.sequences:SequenceTask") is tasks.task_class("sequences")
    cfg = config_lib.resolve("sequences:tiny", ['train.extra_loss={"seqjax.activation_reg:tar": 1.0}'])
    assert dict(cfg.train.extra_loss) == {"seqjax.activation_reg:tar": 1.0}
    with pytest.raises(UsageError, match="has no 'nope'"):
        import_object("seqjax.activation_reg:nope", "train.extra_loss")


def _recorded(workdir, cfg, old_text: dict[str, str]) -> None:
    """``workdir`` holds a run of ``cfg`` whose config.json names code by old paths."""
    text = config_lib.to_json(cfg)
    for new, old in old_text.items():
        assert new in text
        text = text.replace(new, old)
    workdir.mkdir()
    (workdir / "config.json").write_text(text)
    (workdir / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "loss": 1.0}) + "\n")


def test_a_run_started_with_old_paths_resumes_under_the_new_ones(tmp_path):
    cfg = config_lib.resolve("sequences:tiny", [
        "model.cell=seqjax.core.cells:LSTMCell", 'train.extra_loss={"seqjax.core.activation_reg:ar": 2.0}'])
    old = {"seqjax.core.cells:LSTMCell": "seqjax.cells:LSTMCell",
           "seqjax.core.activation_reg:ar": "seqjax.activation_reg:ar"}
    _recorded(tmp_path / "run", cfg, old)
    said = []
    rd = rundir.RunDir(tmp_path / "run", cfg, echo=said.append).prepare()
    rd.abandon()
    assert rd.changes == {} and said == []

    # another cell by its old path is another model: refused as before
    _recorded(tmp_path / "other", cfg, {"seqjax.core.cells:LSTMCell": "seqjax.cells:GRUCell"})
    with pytest.raises(UsageError, match=r'model\.cell: "seqjax\.core\.cells:GRUCell" → '
                                         r'"seqjax\.core\.cells:LSTMCell"'):
        rundir.RunDir(tmp_path / "other", cfg, echo=said.append).prepare()
