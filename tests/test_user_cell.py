"""A user's cell (tests/mycells.py, the docs/cells.md "Add a cell" example) by import path through
the CLI: train, interrupt and resume, evaluate, and the task's inference command."""
import json

import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.app import cli
from seqjax.training import loop

CELL = "model.cell=mycells:MyCell"


def _run(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.slow
@pytest.mark.parametrize("spec, extra, infer", [
    ("ptb_lm:tiny", [], ["sample", "--prompt", "the", "--length", "5"]),
    ("translate:tiny", ["data.pair=spa-eng"], ["translate", "hello"]),  # the pair in ../shared/data
    ("agnews:tiny", [], ["classify", "stocks fell on wall street"]),
])
def test_user_cell_trains_resumes_evaluates_and_infers(spec, extra, infer, tmp_path, capsys):
    overrides = [CELL, "train.progress=off", "train.log_every=5", *extra]
    straight = tmp_path / "straight"
    _run(capsys, "train", spec, "--workdir", str(straight), *sum((["--set", o] for o in overrides), []))
    summary = json.loads((straight / "summary.json").read_text())
    assert np.isfinite(summary["best"]["valid"]["loss"])

    resumed = tmp_path / "resumed"
    out = loop.train(config_lib.resolve(spec, overrides), resumed, stop_after=3, echo=lambda s: None)
    assert out == {"interrupted_at": 3, "workdir": str(resumed)}
    _run(capsys, "train", spec, "--workdir", str(resumed), *sum((["--set", o] for o in overrides), []))
    again = json.loads((resumed / "summary.json").read_text())
    assert again["steps"] == summary["steps"]
    assert again["best"]["valid"]["loss"] == pytest.approx(summary["best"]["valid"]["loss"], rel=1e-4)

    metrics = json.loads(_run(capsys, "eval", str(resumed)).strip().splitlines()[-1])
    assert metrics["loss"] == pytest.approx(summary["best"]["valid"]["loss"], rel=1e-4)
    assert _run(capsys, infer[0], str(resumed), *infer[1:]).strip()
