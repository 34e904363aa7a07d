"""Fault injection: inference that never writes, partial and corrupt checkpoints, bad labels,
empty splits and the exit codes of bad input (issue 30; the run directory's own faults —
lock, changed config, signals, torn logs — are tested beside seqjax/training/rundir.py).

One small training (``sequences:tiny``) is shared by the module; each test copies it before
damaging it."""
from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from seqjax.app import cli
from seqjax.data import arrays
from seqjax.data.textclass import load_text_classes
from seqjax.errors import DataError

TINY = ["sequences:tiny", "--set", "train.epochs=1", "--set", "train.eval_every=8",
        "--set", "train.progress=off"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished ``sequences:tiny`` run: 16 steps, evaluations and checkpoints at 8 and 16."""
    workdir = tmp_path_factory.mktemp("faults") / "run"
    assert cli.main(["train", *TINY, "--workdir", str(workdir)]) == 0
    return workdir


def _copy(trained: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def _snapshot(root: pathlib.Path) -> dict:
    """Every path under ``root`` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _steps(run: pathlib.Path, kind: str) -> list[int]:
    return sorted(int(p.name) for p in (run / kind).iterdir() if p.name.isdigit())


def test_inference_leaves_the_run_directory_byte_identical(trained, tmp_path, run_cli):
    """eval (best, latest, average) and the API's load_run + evaluate read only: the same
    files, sizes and times afterwards, and a half-written checkpoint (an orbax tmp
    directory, as a training writing at that moment leaves it) is neither read nor cleaned."""
    import seqjax

    run = _copy(trained, tmp_path)
    latest = _steps(run, "checkpoints")[-1]
    partial = run / "checkpoints" / f"{latest + 1}.orbax-checkpoint-tmp-1700000000000000"
    shutil.copytree(run / "checkpoints" / str(latest), partial)
    before = _snapshot(run)
    summary = json.loads((run / "summary.json").read_text())

    code, out, err = run_cli("eval", str(run))
    assert code == 0, err
    result = json.loads(out)
    assert (result["checkpoint"], result["checkpoint_step"]) == ("best", summary["best"]["step"])
    assert err.strip() == f"evaluating the best checkpoint of step {summary['best']['step']} on valid"
    assert result["loss"] == pytest.approx(summary["best"]["valid"]["loss"], rel=1e-6)
    code, out, err = run_cli("eval", str(run), "--checkpoint", "latest", "--split", "test")
    assert code == 0 and json.loads(out)["checkpoint_step"] == latest  # not the half-written one
    assert json.loads(out)["loss"] == pytest.approx(summary["final"]["test"]["loss"], rel=1e-6)
    assert run_cli("eval", str(run), "--checkpoint", "average")[0] == 0
    loaded = seqjax.load_run(run)
    assert loaded.step == summary["best"]["step"] and loaded.kind == "best"
    assert seqjax.evaluate(loaded, "test")["loss"] == pytest.approx(summary["best"]["test"]["loss"], rel=1e-6)

    assert _snapshot(run) == before


# orbax's closed event loop after a failed read (the executable drops it: seqjax/runtime/logs.py)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreadable_checkpoints_fall_back_with_one_line_each(trained, tmp_path, run_cli):
    """Corrupt best params -> the latest checkpoint; a newest checkpoint with a file missing
    (cut short) -> the one before; nothing readable -> exit 3; no checkpoint -> exit 2."""
    run = _copy(trained, tmp_path)
    (best,) = _steps(run, "best")
    for f in (run / "best" / str(best) / "params").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"not a tensorstore chunk")
    older, newest = _steps(run, "checkpoints")
    (run / "checkpoints" / str(newest) / "state" / "_METADATA").unlink()

    code, out, err = run_cli("eval", str(run))
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 3, err  # one line per skipped checkpoint, then which one is scored
    assert lines[0].startswith(f"warning: {run.resolve()}/best/{best} is unreadable (")
    assert lines[0].endswith("using the latest checkpoint")
    assert lines[1].startswith(f"warning: {run.resolve()}/checkpoints/{newest} is unreadable (")
    assert lines[1].endswith(f"using the latest checkpoint of step {older}")
    assert lines[2] == f"evaluating the latest checkpoint of step {older} on valid"
    assert (json.loads(out)["checkpoint"], json.loads(out)["checkpoint_step"]) == ("latest", older)

    shutil.rmtree(run / "checkpoints" / str(older))
    code, _, err = run_cli("eval", str(run))
    assert code == 3 and err.strip().splitlines()[-1] == (
        f"seqjax: error: {run.resolve()}: no checkpoint is readable (see the lines above); "
        "retrain, or restore the run directory from a copy")

    empty = tmp_path / "fresh"
    empty.mkdir()
    shutil.copy(run / "config.json", empty)
    code, _, err = run_cli("eval", str(empty))
    assert code == 2 and "no checkpoint yet; train first" in err
    assert sorted(p.name for p in empty.iterdir()) == ["config.json"]  # no best/, no checkpoints/


@pytest.mark.slow
def test_inference_in_a_loop_during_training_changes_nothing(trained, tmp_path, run_cli):
    """``seqjax eval`` over and over while a training writes (and deletes) a checkpoint every
    step: the training finishes with the summary of the undisturbed run (the module's, whose
    cadence differs: checkpoints change no number), and each eval scores a checkpoint or
    finds none yet — never an unreadable one."""
    run = tmp_path / "run"
    env = {**os.environ, "SEQJAX_TUNING": "0"}  # the settings of this process, which trained `trained`
    cmd = [sys.executable, "-m", "seqjax", "train", *TINY, "--set", "train.checkpoint_every=1",
           "--workdir", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scored = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (run / "checkpoints").is_dir():
            code, out, err = run_cli("eval", str(run), "--checkpoint", "latest")
            assert code in (0, 2) and "warning" not in err, err  # 2: no checkpoint written yet
            scored += code == 0
        time.sleep(0.3)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert scored >= 1

    def metrics(path):
        s = json.loads((path / "summary.json").read_text())
        return {(part, split, k): v for part in ("final", "best") for split in ("valid", "test")
                for k, v in s[part][split].items() if k != "tokens_per_s"} | {"step": s["best"]["step"]}

    assert metrics(run) == pytest.approx(metrics(trained), rel=1e-6)


# --------------------------------------------------------------------------- labels


def _csv(path: pathlib.Path, rows: list[str]) -> str:
    path.write_text("text,label\n" + "".join(r + "\n" for r in rows))
    return str(path)


def test_bad_labels_are_one_line_with_file_and_row(tmp_path):
    missing = _csv(tmp_path / "missing.csv", ["the cat sat,a", "a dog ran,b", "no label here,", "big cat,a"])
    with pytest.raises(DataError, match=r"missing\.csv\): row 3: no label in column 'label'; fix the row"):
        load_text_classes({"source": "csv", "files": {"train": missing}})
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"text": "stocks fell", "label": "business"}\n{"text": "team won", "label": "sports"}\n'
                     '{"text": "rates rose", "label": 3}\n')
    with pytest.raises(DataError, match=r"mixed\.jsonl\): row 3: label 3 \(int\) in column 'label' whose "
                                        r"row 1 is 'business' \(str\); write every label as one type"):
        load_text_classes({"source": "json", "files": {"train": str(mixed)}})

    x = np.zeros((40, 3, 1), np.float32)
    y = np.zeros(40, np.int64)
    y[7] = 100000
    far = tmp_path / "far.npz"
    np.savez(far, x=x, y=y)
    with pytest.raises(DataError, match=r"far\.npz\): row 8: label y=100000 is far outside the range of the "
                                        r"2 distinct labels .* or set data\.num_classes=100001"):
        arrays.load_sequences({"source": "npz", "files": {"train": str(far)}})
    out = arrays.load_sequences({"source": "npz", "files": {"train": str(far)}, "num_classes": 100001})
    assert sum(len(s["y"]) for s in out.values()) == 40


def test_classlabel_names_are_kept(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    texts = ["good movie", "bad film", "great plot", "awful acting"] * 5
    datasets.Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0] * 5}, features=features).save_to_disk(
        tmp_path / "ds")
    data = load_text_classes({"source": "disk", "files": {"train": str(tmp_path / "ds")},
                              "valid_fraction": 4, "test_fraction": 4})
    assert data.class_names == ["negative", "positive"]
    names = [data.class_names[i] for i in data.train.labels]
    assert all((n == "positive") == t.startswith(("good", "great")) for n, t in zip(names, data.train.texts))


# --------------------------------------------------------------------------- empty splits and exit codes


@pytest.mark.parametrize("args, line", [
    (["translate:tiny", "--set", "data.pair=spa-eng", "--set", "data.test_fraction=0"],
     "data.source=tatoeba: the test split has no examples; give data.files.test, raise data.test_fraction"),
    (["translate:tiny", "--set", "data.pair=spa-eng", "--set", "data.valid_fraction=0"],
     "data.source=tatoeba: the valid split has no examples"),
    (["sequences:tiny", "--set", "data.n_eval=0"], "sequences: the valid split has no examples"),
])
def test_empty_split_is_refused_before_training(args, line, tmp_path, run_cli):
    root = pathlib.Path(os.environ.get("SEQJAX_DATA", "data"))
    if "translate:tiny" in args and not (root / "spa-eng").is_dir():
        pytest.skip("spa-eng not under SEQJAX_DATA")
    code, _, err = run_cli("train", *args, "--workdir", str(tmp_path / "run"))
    assert code == 3 and line in err.strip().splitlines()[-1], err
    assert not (tmp_path / "run" / "checkpoints").exists()


def _write_module(tmp_path, monkeypatch, name, text):
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize("cell, message", [
    ("faultcells:NotACell", "is the class faultcells.NotACell, not a cell; give a flax.linen.RNNCellBase"),
    ("faultcells:NoFeatures", "has no 'features' field"),
    ("brokencells:Cell", "importing brokencells fails (")
])
def test_bad_cell_class_exits_2(cell, message, tmp_path, monkeypatch, run_cli):
    _write_module(tmp_path, monkeypatch, "faultcells",
                  "import flax.linen as nn\nclass NotACell:\n    pass\n"
                  "class NoFeatures(nn.RNNCellBase):\n    size: int = 3\n")
    _write_module(tmp_path, monkeypatch, "brokencells", "def cell(:\n    pass\n")
    code, _, err = run_cli("train", "sequences:tiny", "--workdir", str(tmp_path / "run"),
                           "--set", f"model.cell={cell}")
    assert code == 2 and message in err and len(err.strip().splitlines()) <= 2, err


def test_bad_data_files_exit_3(tmp_path, run_cli):
    header_only = _csv(tmp_path / "header.csv", [])
    np.savez(tmp_path / "strings.npz", x=np.array([["a"] * 4] * 8), y=np.zeros(8, np.int64))
    cases = [
        (["agnews:tiny", "--set", "data.source=csv", "--set", f"data.files.train={header_only}"],
         f"data.files.train ({header_only}): no rows (a header only?); it needs at least one row"),
        (["agnews:tiny", "--set", "data.source=csv", "--set", f"data.files.train={tmp_path}"],
         f"data.files.train={tmp_path}: {tmp_path} is a directory, not a file"),
        (["sequences:tiny", "--set", "data.source=npz", "--set", f"data.files.train={tmp_path}/strings.npz"],
         "strings.npz: array 'x' holds <U1 values, not numbers"),
    ]
    for args, line in cases:
        code, _, err = run_cli("train", *args, "--workdir", str(tmp_path / "run"))
        assert code == 3 and line in err.strip().splitlines()[-1], err


def test_closed_stdout_pipe_is_quiet(monkeypatch, capsys):
    """`seqjax experiments | head -3`: the reader went away; exit 0 without a traceback."""
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["experiments"]) == 0
    assert capsys.readouterr().err == ""
