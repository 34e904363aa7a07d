"""`seqjax sweep`: grid expansion, skip/resume on rerun, failures recorded, aggregation numbers."""

import csv
import json
import statistics

import pytest

from seqjax.app import sweep
from seqjax.app.cli import main
from seqjax.errors import UsageError


def _summary(acc_valid, acc_test, loss_valid=0.5, loss_test=0.6, wall_s=10.0, tok=1000.0):
    return {
        "experiment": "sequences:tiny",
        "steps": 32,
        "wall_s": wall_s,
        "train_tokens_per_s": tok,
        "main_metric": "acc",
        "best": {
            "step": 16,
            "valid": {"loss": loss_valid, "acc": acc_valid, "tokens_per_s": 1.0},
            "test": {"loss": loss_test, "acc": acc_test, "acc_heldout": acc_test - 0.1, "tokens_per_s": 1.0},
        },
    }


def _fake_train(calls, fail=()):
    """A stand-in for loop.train: writes a summary whose numbers depend on cell and seed."""

    def train(cfg, workdir, data_dir=None, echo=print):
        calls.append(workdir.name)
        if workdir.name in fail:
            raise RuntimeError(f"boom in {workdir.name}\nsecond line")
        acc = {"rnn": 0.5, "lstm": 0.8, "gru": 0.9}[cfg.model.cell] + 0.01 * cfg.seed
        s = _summary(acc, acc - 0.05)
        (workdir / "summary.json").write_text(json.dumps(s))
        return s

    return train


def test_expand_grid_product_times_seeds():
    runs = sweep.expand_grid(["model.cell=rnn,lstm,gru", "model.hidden=16,[8,4]"], 2)
    assert len(runs) == 3 * 2 * 2
    assert len({r.name for r in runs}) == 12
    # seed-major: every point for seed 0 first
    assert [r.seed for r in runs] == [0] * 6 + [1] * 6
    assert runs[0].name == "model.cell=rnn,model.hidden=16,seed=0"
    assert runs[1].name == "model.cell=rnn,model.hidden=8_4,seed=0"
    assert runs[11].name == "model.cell=gru,model.hidden=8_4,seed=1"
    assert runs[1].values == {"model.cell": "rnn", "model.hidden": [8, 4]}
    assert runs[11].overrides == ["model.cell=gru", "model.hidden=[8,4]", "seed=1"]
    assert runs[5].point_name == "model.cell=gru,model.hidden=8_4"
    for r in runs:
        assert "/" not in r.name and " " not in r.name
        assert sweep.parse_run_name(r.name) == ([(k, sweep.safe_value(v)) for k, v in r.point], r.seed)
    # numbers parse as numbers
    (r,) = sweep.expand_grid(["optim.lr=3e-3"], 1)
    assert r.values == {"optim.lr": 0.003} and r.name == "optim.lr=3e-3,seed=0"


def test_expand_grid_seeds_from_config_and_grid():
    runs = sweep.expand_grid(["model.cell=rnn,gru"], 3, config="sequences:tiny", overrides=["seed=5"])
    assert [r.seed for r in runs] == [5, 5, 6, 6, 7, 7]
    runs = sweep.expand_grid(["seed=3,9", "model.cell=gru"], 1)
    assert [r.name for r in runs] == ["model.cell=gru,seed=3", "model.cell=gru,seed=9"]
    assert [r.name for r in sweep.expand_grid([], 2)] == ["seed=0", "seed=1"]
    with pytest.raises(UsageError, match="both give the seeds"):
        sweep.expand_grid(["seed=1,2"], 2)


@pytest.mark.parametrize(
    "grid,match",
    [
        (["model.cel=rnn,gru"], r"--grid model.cel: unknown config key; closest: model.cell"),
        (["model.cell=rnn,foo"], r"model.cell='foo': choose one of"),
        (["model.hidden=16,abc"], r"--grid point model.hidden=abc: model.hidden='abc'"),
        (["model.layers=1,two"], r"--grid model.layers=two: expected int"),
        (["model.cell"], r"expected key=v1,v2"),
        (["model.cell=rnn,,gru"], r"empty value"),
        (["model.cell=rnn,rnn"], r"appears twice"),
        (["model.cell=rnn", "model.cell=gru"], r"given twice"),
    ],
)
def test_bad_grid_is_a_usage_error(grid, match):
    with pytest.raises(UsageError, match=match):
        sweep.expand_grid(grid, 1, config="sequences:tiny")


def test_cli_bad_grid_key_exits_2_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(
        [
            "sweep",
            "sequences:tiny",
            "--grid",
            "model.cell=rnn,gru",
            "--grid",
            "model.hiden=8",
            "--sweep-dir",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [err[0]] and "--grid model.hiden: unknown config key; closest: model.hidden" in err[0]
    assert not out.exists()


def test_rerun_skips_done_runs_and_records_failures(tmp_path):
    runs = sweep.expand_grid(["model.cell=rnn,gru"], 2, config="sequences:tiny")
    calls = []
    res = sweep.run_sweep(
        "sequences:tiny",
        [],
        runs,
        tmp_path,
        train_fn=_fake_train(calls, fail={"model.cell=gru,seed=1"}),
        echo=lambda s: None,
    )
    assert calls == [
        "model.cell=rnn,seed=0",
        "model.cell=gru,seed=0",
        "model.cell=rnn,seed=1",
        "model.cell=gru,seed=1",
    ]
    assert [r["status"] for r in res] == ["done", "done", "done", "failed"]
    assert (
        tmp_path / "model.cell=gru,seed=1" / "FAILED"
    ).read_text() == "RuntimeError: boom in model.cell=gru,seed=1\n"
    assert "Traceback" in (tmp_path / "model.cell=gru,seed=1" / "traceback.txt").read_text()

    table = sweep.aggregate(tmp_path, plot=False)
    gru = table["points"][1]
    assert gru["point"] == {"model.cell": "gru"} and gru["n"] == 1 and gru["failed"] == 1
    assert gru["valid_acc_mean"] == pytest.approx(0.9) and gru["valid_acc_std"] is None
    md = (tmp_path / "results.md").read_text()
    assert "| gru | 0.9000 | 0.8500 |" in md and "| 1 | 1 |" in md
    assert "- `model.cell=gru,seed=1`: RuntimeError: boom in model.cell=gru,seed=1" in md
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]

    # the same command again: finished runs are skipped, the failed one is retried (and now works)
    calls.clear()
    res = sweep.run_sweep(
        "sequences:tiny", [], runs, tmp_path, train_fn=_fake_train(calls), echo=lambda s: None
    )
    assert calls == ["model.cell=gru,seed=1"]
    assert [r["status"] for r in res] == ["skipped", "skipped", "skipped", "done"]
    assert not (tmp_path / "model.cell=gru,seed=1" / "FAILED").exists()
    assert sweep.aggregate(tmp_path, plot=False)["points"][1]["n"] == 2


def test_rerun_with_another_config_is_refused(tmp_path):
    (run,) = sweep.expand_grid(["model.cell=gru"], 1)
    d = tmp_path / run.name
    d.mkdir()
    from seqjax import config as config_lib

    (d / "config.json").write_text(
        config_lib.to_json(config_lib.resolve("sequences:tiny", ["model.cell=gru", "model.hidden=99"]))
    )
    calls = []
    with pytest.raises(UsageError, match=r"different config \(model.hidden: 99 there, 16 now\)"):
        sweep.run_sweep(
            "sequences:tiny", [], [run], tmp_path, train_fn=_fake_train(calls), echo=lambda s: None
        )
    assert calls == []


def test_aggregate_matches_hand_computation(tmp_path):
    # 3 seeds of lstm, 1 of gru, 1 failed gru, 1 unfinished gru
    accs = {0: (0.70, 0.60, 0.40, 12.0), 1: (0.80, 0.65, 0.50, 14.0), 2: (0.95, 0.71, 0.45, 19.0)}
    for seed, (va, ta, vl, wall) in accs.items():
        d = tmp_path / f"model.cell=lstm,seed={seed}"
        d.mkdir()
        (d / "summary.json").write_text(
            json.dumps(_summary(va, ta, loss_valid=vl, wall_s=wall, tok=100.0 * (seed + 1)))
        )
    d = tmp_path / "model.cell=gru,seed=0"
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(_summary(0.5, 0.4, wall_s=3.0)))
    (tmp_path / "model.cell=gru,seed=1").mkdir()
    (tmp_path / "model.cell=gru,seed=1" / "FAILED").write_text("TrainingError: non-finite loss\n")
    (tmp_path / "model.cell=gru,seed=2").mkdir()  # unfinished
    (tmp_path / "not a run").mkdir()

    table = sweep.aggregate(tmp_path)
    assert table["metric"] == "acc"
    gru, lstm = table["points"]  # no sweep.json: directory order (sorted)
    va = [0.70, 0.80, 0.95]
    # hand computation: mean 0.8166..., sample std sqrt(((-.1167)^2 + (-.0167)^2 + .1333^2) / 2)
    assert lstm["valid_acc_mean"] == pytest.approx(sum(va) / 3)
    assert lstm["valid_acc_std"] == pytest.approx(0.125830573921179)
    assert lstm["valid_acc_std"] == pytest.approx(statistics.stdev(va))
    assert lstm["test_acc_std"] == pytest.approx(0.055075705472861)
    assert lstm["valid_loss_mean"] == pytest.approx(0.45) and lstm["valid_loss_std"] == pytest.approx(0.05)
    assert lstm["wall_s_mean"] == pytest.approx(15.0) and lstm["tokens_per_s_mean"] == pytest.approx(200.0)
    assert (lstm["n"], lstm["failed"], lstm["unfinished"]) == (3, 0, 0)
    assert (gru["n"], gru["failed"], gru["unfinished"]) == (1, 1, 1) and gru["valid_acc_std"] is None

    md = (tmp_path / "results.md").read_text()
    assert "| model.cell | valid acc | test acc | valid loss | test loss | train time (s) |" in md
    assert (
        "| lstm | 0.8167 ± 0.1258 | 0.6533 ± 0.0551 | 0.4500 ± 0.0500 | 0.6000 ± 0.0000 "
        "| 15.0 ± 3.6 | 200 | 3 | 0 |"
        in md
    )
    assert "| gru | 0.5000 | 0.4000 | 0.5000 | 0.6000 | 3.0 | 1000 | 1 (+1 unfinished) | 1 |" in md

    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 6
    assert rows[0].keys() >= {
        "run",
        "model.cell",
        "seed",
        "status",
        "valid_acc",
        "test_acc_heldout",
        "wall_s",
        "error",
    }
    lstm2 = next(r for r in rows if r["run"] == "model.cell=lstm,seed=2")
    assert float(lstm2["valid_acc"]) == 0.95 and float(lstm2["test_acc_heldout"]) == pytest.approx(0.61)
    png = (tmp_path / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    phys = png.index(b"pHYs") + 4  # pixels per metre, x then y: 200 dpi
    assert int.from_bytes(png[phys:phys + 4], "big") == round(200 / 0.0254)
    assert (tmp_path / "results.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in (tmp_path / "results.svg").read_text()

    # --metric picks another metric
    t2 = sweep.aggregate(tmp_path, "acc_heldout", plot=False)
    assert t2["points"][1]["test_acc_heldout_mean"] == pytest.approx((0.50 + 0.55 + 0.61) / 3)
    assert t2["points"][1]["valid_acc_heldout_mean"] is None
    with pytest.raises(
        UsageError, match="--metric bleu: not in the runs' summaries; available: acc, acc_heldout"
    ):
        sweep.aggregate(tmp_path, "bleu", plot=False)


def test_real_sweep_resumes_unfinished_run(tmp_path):
    """End to end with the engine: a run killed half way is resumed by the rerun, then aggregated."""
    from seqjax import config as config_lib
    from seqjax.training import loop

    overrides = ["data.n_train=128", "train.epochs=2"]  # 4 steps per epoch, 8 in all
    (run,) = sweep.expand_grid(["model.cell=gru"], 1, config="sequences:tiny", overrides=overrides)
    cfg = config_lib.resolve("sequences:tiny", overrides + run.overrides)
    out = loop.train(cfg, tmp_path / run.name, stop_after=5, echo=lambda s: None)
    assert out == {"interrupted_at": 5, "workdir": str(tmp_path / run.name)}

    lines = []
    res = sweep.run_sweep("sequences:tiny", overrides, [run], tmp_path, echo=lines.append)
    assert [r["status"] for r in res] == ["done"]
    assert any(l.startswith(f"resuming {tmp_path / run.name} from step 5") for l in lines)
    s = json.loads((tmp_path / run.name / "summary.json").read_text())
    assert s["steps"] == 8 and s["main_metric"] == "acc"
    steps = [
        json.loads(l)["step"]
        for l in open(tmp_path / run.name / "metrics.jsonl")
        if json.loads(l)["split"] == "train"
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # no step logged twice
    (p,) = sweep.aggregate(tmp_path, plot=False)["points"]
    assert p["point"] == {"model.cell": "gru"} and p["n"] == 1
    assert p["test_acc_mean"] == pytest.approx(s["best"]["test"]["acc"])


def _point(cell, hidden, vals):
    entry = {"point": {"model.cell": cell, "model.hidden": hidden}, "n": len(vals)}
    for split in ("valid", "test"):
        entry[f"{split}_acc"] = vals
        entry[f"{split}_acc_mean"], entry[f"{split}_acc_std"] = statistics.mean(vals), statistics.stdev(vals)
    return entry


def test_plot_second_axis_is_a_series_with_a_legend(tmp_path):
    """Two grid axes: the first on x (long values wrapped), the second one series per value
    with a legend; every seed a point, the mean an error bar; PNG, PDF and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    cells, hidden = ["rnn", "mypackage.cells:VeryLongCellName"], ["16", "64"]
    points = [_point(c, h, [0.1 * i + 0.2, 0.1 * i + 0.3, 0.1 * i + 0.4])
              for i, (c, h) in enumerate((c, h) for c in cells for h in hidden)]
    table = {"metric": "acc", "keys": ["model.cell", "model.hidden"], "points": points, "experiment": "x:y"}
    seen = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, path, **kw):
        ax = fig.axes[0]
        seen["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["legend"] = [t.get_text() for t in fig.legends[0].get_texts()]
        seen["title"] = fig.legends[0].get_title().get_text()
        seen["seed_dots"] = sum(len(c.get_offsets()) for c in ax.collections if c.get_offsets().ndim == 2
                                and len(c.get_offsets()) == 3)
        return real_savefig(fig, path, **kw)

    plt.Figure.savefig = spy
    try:
        written = sweep.plot_table(table, tmp_path / "results.png")
    finally:
        plt.Figure.savefig = real_savefig
    assert [p.name for p in written] == ["results.png", "results.pdf", "results.svg"]
    assert seen["ticks"] == ["rnn", "mypackage.cells:\nVeryLongCellName"]
    assert seen["legend"] == ["16", "64"] and seen["title"] == "model.hidden"
    assert seen["seed_dots"] == 3 * len(points)


def test_plot_without_matplotlib_names_no_picture(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    table = {"metric": "acc", "keys": ["model.cell"], "points": [_point("gru", "8", [0.5, 0.6])],
             "experiment": "x:y"}
    assert sweep.plot_table(table, tmp_path / "results.png") == []
    assert "matplotlib not installed; no plot" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
