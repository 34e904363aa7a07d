"""ClassifyTask and the CLI: bucketed batches, resumable order, malformed CSV, train + classify."""

import contextlib
import io
import json

import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.app import cli
from seqjax.errors import UsageError
from seqjax.tasks.classify import ClassifyTask, boundaries
from seqjax.training.inference import load_run

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
WORDS = [["war", "peace", "leaders", "talks", "election"], ["cup", "goal", "team", "match", "coach"],
         ["stocks", "oil", "shares", "profit", "bank"], ["chip", "software", "space", "internet", "nasa"]]
COMMON = ["the", "a", "on", "monday", "said", "new", "of"]


def _row(rng, label):
    n = int(rng.integers(2, 30))  # lengths on both sides of tiny's 16-token bucket
    words = [WORDS[label][i] if rng.random() < 0.7 else COMMON[i % len(COMMON)]
             for i in rng.integers(0, 5, size=n)]
    return f'"{label + 1}","{words[0].title()}","{" ".join(words[1:])}."'


def _data_dir(tmp_path, n_train=320, n_test=40, bad_line=None):
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "ag_news"
    folder.mkdir(parents=True)
    train = [_row(rng, i % 4) for i in range(n_train)]
    if bad_line:
        train[bad_line - 1] = '"7","Bad class","row"'
    (folder / "train.csv").write_text("\n".join(train) + "\n")
    (folder / "test.csv").write_text("\n".join(_row(rng, i % 4) for i in range(n_test)) + "\n")
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return tmp_path / "data"


def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return _data_dir(tmp_path_factory.mktemp("agnews"))


def test_boundaries():
    cfg = config_lib.resolve("agnews:tiny", ["data.max_len=64", "data.buckets=[16,32,100]"])
    assert boundaries(cfg) == (16, 32, 64)
    cfg = config_lib.resolve("agnews:tiny", ["data.buckets=[]"])
    assert boundaries(cfg) == (cfg.data.max_len,)
    with pytest.raises(UsageError, match="data.buckets"):
        boundaries(config_lib.resolve("agnews:tiny", ["data.buckets=[32,16]"]))


def test_batches_cover_every_example_once_in_few_shapes(data_dir):
    cfg = config_lib.resolve("agnews:tiny", ["data.batch_size=8", "data.eval_batch_size=16"])
    task = ClassifyTask(cfg, str(data_dir))
    for split, batches in [("train", list(task.train_batches(epoch=1))),
                           ("valid", list(task.eval_batches("valid"))),
                           ("test", list(task.eval_batches("test")))]:
        s = task.splits[split]
        assert {b["tokens"].shape[1] for b in batches} <= set(task.bounds) == {16, 32}
        rows = sorted((tuple(b["tokens"][i, : b["lengths"][i]].tolist()), int(b["labels"][i]))
                      for b in batches for i in np.flatnonzero(b["weight"]))
        want = sorted((tuple(t[: cfg.data.max_len].tolist()), int(y)) for t, y in zip(s.tokens, s.labels))
        assert rows == want  # every example exactly once, with its label
        for b in batches:  # the smallest boundary that holds the batch's longest row
            assert b["lengths"].max() <= b["tokens"].shape[1]
            assert (b["tokens"][~(np.arange(b["tokens"].shape[1]) < b["lengths"][:, None])] == 0).all()
    assert len(list(task.train_batches(epoch=0))) == task.steps_per_epoch()


def test_train_batches_resume_and_depend_on_epoch(data_dir):
    task = ClassifyTask(config_lib.resolve("agnews:tiny", ["data.batch_size=8"]), str(data_dir))
    full = list(task.train_batches(epoch=2))
    tail = list(task.train_batches(epoch=2, start=5))
    assert len(tail) == len(full) - 5
    for a, b in zip(full[5:], tail):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    other = list(task.train_batches(epoch=3))
    assert any(a["tokens"].shape != b["tokens"].shape or (a["tokens"] != b["tokens"]).any()
               for a, b in zip(full, other))


def test_train_step_changes_params(data_dir):
    from seqjax.training.loop import make_engine

    engine = make_engine(config_lib.resolve("agnews:tiny", ["model.cell=rnn"]), str(data_dir))
    state = engine.init_state()
    before = jax.tree.map(np.array, state.params)
    batch = next(iter(engine.task.train_batches(0)))
    state = engine.train_step(state, batch)
    after = jax.tree.map(np.array, state.params)
    changed = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), before, after)
    assert all(v > 0 for v in jax.tree.leaves(changed)), changed
    emb_b, emb_a = before["embed"]["embedding"], after["embed"]["embedding"]
    seen = np.unique(batch["tokens"][batch["weight"] > 0])
    unseen = np.setdiff1d(np.arange(len(emb_b)), np.append(seen, 0))
    assert np.abs(emb_a[seen[seen > 0]] - emb_b[seen[seen > 0]]).min() > 0  # their rows moved
    # Adam moves only rows with a gradient on the first step
    np.testing.assert_array_equal(emb_a[unseen], emb_b[unseen])


def test_malformed_csv_row_is_one_line_exit_3(tmp_path):
    bad = _data_dir(tmp_path, bad_line=3)
    rc, out, err = _main(["train", "agnews:tiny", "--data-dir", str(bad), "--workdir", str(tmp_path / "run")])
    assert rc == 3
    lines = err.strip().splitlines()
    assert lines[-1] == (f"seqjax: error: {bad / 'ag_news' / 'train.csv'}: row 3: label 7 is not one of "
                         "the 4 labels of this corpus (1, 2, 3, 4); fix the row or add it to train")
    assert "Traceback" not in err and out == ""


@pytest.mark.slow
def test_train_then_classify(data_dir, tmp_path, monkeypatch):
    work = tmp_path / "run"
    rc, out, err = _main(["train", "agnews:tiny", "--data-dir", str(data_dir), "--workdir", str(work),
                          "--set", "train.progress=off"])
    assert rc == 0, err
    summary = json.loads((work / "summary.json").read_text())
    assert summary["best"]["test"]["acc"] > 0.8  # 4 classes of distinct words: far above chance
    assert json.loads((work / "classes.json").read_text()) == CLASSES

    # classify loads the run alone: no dataset anywhere
    monkeypatch.setenv("SEQJAX_DATA", str(tmp_path / "nowhere"))
    texts = ["Stocks and oil shares rose, bank profit up", "", "zzqx qqqy wxyz", "The team won the cup match"]
    rc, out, err = _main(["classify", str(work), *texts])
    assert rc == 0, err
    lines = out.strip("\n").split("\n")
    assert len(lines) == len(texts)
    for line in lines:
        label, prob = line.split("\t")
        assert label in CLASSES and 0.25 <= float(prob) <= 1.0
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
    rc, out_stdin, _ = _main(["classify", str(work)])
    assert rc == 0 and out_stdin == out

    # the probabilities are the ones evaluation scored: same test loss and accuracy
    run = load_run(work, task="classify")
    task, params = run.task, run.params
    test = ClassifyTask(task.cfg, str(data_dir)).splits["test"]
    labels, probs = task.predict(params, test.texts)
    nll = -np.log(probs[np.arange(len(labels)), test.labels]).mean()
    assert nll == pytest.approx(summary["best"]["test"]["loss"], rel=1e-5)
    assert np.mean(labels == test.labels) == pytest.approx(summary["best"]["test"]["acc"], abs=1e-9)
