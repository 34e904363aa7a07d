"""The long-range tasks (seqjax/tasks/longrange.py, experiments/longrange.py): generated data
and baselines, and training with backend=newton against backend=scan."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.tasks import longrange


def test_generated_data_and_baselines():
    rng = np.random.default_rng(0)
    add = longrange.make_adding(rng, 500, 100)
    marks = add["x"][..., 1]
    assert add["x"].shape == (500, 100, 2) and (marks.sum(1) == 2).all()
    assert (marks[:, :50].sum(1) == 1).all() and (marks[:, 50:].sum(1) == 1).all()  # one in each half
    np.testing.assert_allclose(add["y"], (add["x"][..., 0] * marks).sum(1), rtol=1e-6)
    assert abs(np.mean((add["y"] - 1.0) ** 2) - 1 / 6) < 0.03  # the mean predictor scores 1/6

    copy = longrange.make_copy(rng, 4, 30, 10, 8)
    tok, tgt = copy["tokens"], copy["targets"]
    assert tok.shape == tgt.shape == (4, 50)
    assert (tok[:, 39] == 9).all() and (tok[:, 10:39] == 0).all() and (tok[:, 40:] == 0).all()
    assert (tgt[:, -10:] == tok[:, :10]).all() and (tgt[:, :-10] == 0).all()

    sel = longrange.make_selective_copy(rng, 4, 40, 16, 8)
    tok, tgt = sel["tokens"], sel["targets"]
    assert tok.shape == (4, 56) and (tok[:, 40:] == 9).all() and ((tok[:, :40] > 0).sum(1) == 16).all()
    for row, target in zip(tok, tgt):  # the scattered symbols, in order
        assert (row[:40][row[:40] > 0] == target[-16:]).all()

    def task(preset, **kw):
        sets = [f"{k}={v}" for k, v in kw.items()]
        return longrange.LongRangeTask(config_lib.resolve(f"longrange:{preset}", sets))

    assert task("copy", **{"data.length": 100}).baseline == pytest.approx(10 * math.log(8) / 120)
    assert task("selective-copy").baseline == pytest.approx(math.log(8))
    with pytest.raises(UsageError, match="data.problem"):
        task("tiny", **{"data.problem": "sorting"})


@pytest.mark.slow
def test_newton_trains_as_scan(run_cli, tmp_path):
    """paragru on the adding problem at T = 256 for 20 steps: the training losses of
    backend=newton and backend=scan agree to 1e-3 relative (and the valid losses)."""
    losses = {}
    for backend in ("scan", "newton"):
        code, _, err = run_cli("train", "longrange:tiny", "--workdir", str(tmp_path / backend),
                               "--set", "model.cell=paragru", "--set", f"model.backend={backend}",
                               "--set", "data.length=256", "--set", "train.steps=20",
                               "--set", "data.n_eval=32")
        assert code == 0, err
        lines = (tmp_path / backend / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        losses[backend] = [(r["step"], r["split"], r["loss"]) for r in rows
                           if r["split"] in ("train", "valid")]
    assert [r[:2] for r in losses["scan"]] == [r[:2] for r in losses["newton"]] and len(losses["scan"]) >= 5
    np.testing.assert_allclose([r[2] for r in losses["newton"]], [r[2] for r in losses["scan"]], rtol=1e-3)
