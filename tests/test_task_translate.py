"""TranslateTask end to end on a small synthetic Tatoeba file: training with the one loop,
BLEU/chrF report, `seqjax translate` (unknown characters, truncation, stdin, heatmap)."""
import io
import json
import sys

import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.app.cli import main
from seqjax.tasks.translate import EXAMPLE_SENTENCES, TranslateTask

WORDS = {"cat": "gato", "dog": "perro", "house": "casa", "car": "coche", "book": "libro", "tree": "árbol"}
VERBS = {"see": "veo", "want": "quiero", "have": "tengo"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "spa-eng").mkdir()
    lines = [f"I {v} the {n}.\t{vs} el {ns}.\tCC-BY" for v, vs in VERBS.items() for n, ns in WORDS.items()]
    lines += [f"{n.title()}!\t¡{ns.title()}!" for n, ns in WORDS.items()]
    (root / "spa-eng" / "spa.txt").write_text("\n".join(sorted(lines, key=len) * 8) + "\n", encoding="utf-8")
    return str(root)


def _cfg(*overrides):
    return config_lib.resolve("translate:tiny", ["data.pair=spa-eng", "data.valid_fraction=8",
                                                 "data.test_fraction=8", "data.max_pairs=0",
                                                 "data.max_len=20", *overrides])


def test_batches_cover_every_pair_once(data_dir):
    task = TranslateTask(_cfg("data.buckets=[10]", "data.batch_size=16"), data_dir)
    n = len(task.splits["train"])
    seen, shapes = [], set()
    for batch in task.train_batches(epoch=0):
        shapes.add(batch["src"].shape + batch["tgt"].shape)
        real = batch["weight"] > 0
        seen += [tuple(r) for r in batch["src"][real]]
        # decoder input starts with <sos>; labels of real rows end with <eos> then padding
        assert np.all(batch["tgt"][real, 0] == task.tgt_vocab.sos_id)
        assert np.all(batch["tgt"][~real] == 0)
    assert len(seen) == n
    assert shapes <= {(16, 10, 16, 11), (16, 21, 16, 22)}
    assert task.steps_per_epoch() == len(list(task.train_batches(epoch=1)))


@pytest.mark.slow
def test_train_report_and_translate_cli(data_dir, tmp_path, capsys, monkeypatch):
    from seqjax.training.loop import train

    workdir = tmp_path / "run"
    cfg = _cfg("train.steps=12", "train.eval_every=4", "train.progress=off", "decode.batch_size=8")
    summary = train(cfg, workdir, data_dir, echo=lambda s: None)
    report = summary["translation"]
    for name in ("greedy", "beam3"):
        r = report["test"][name]
        assert 0.0 <= r["bleu"] <= 100.0 and 0.0 <= r["chrf"] <= 100.0
        assert (r["sentences"] == len(TranslateTask(cfg, data_dir).splits["test"])
                and r["decode_ms_per_sentence"] > 0)
        # the file lists every pair 8 times: one distinct source per 8 test pairs
        assert r["sources"] * 8 == r["sentences"] and 0.0 <= r["bleu_multiref"] <= 100.0
    assert set(report["samples"]["greedy"]) == set(EXAMPLE_SENTENCES)
    assert summary["final"]["valid"]["loss"] < np.log(40)  # it learned something in 12 steps
    last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["split"] == "test" and "bleu" in last and "chrf" in last
    assert (workdir / "src_vocab.json").is_file() and (workdir / "tgt_vocab.json").is_file()
    capsys.readouterr()

    # unknown characters (not in the synthetic data: ☃, ü, digits), an over-long line, an empty one
    png = tmp_path / "att.png"
    texts = ["hair ☃ üñí 42", "I see the cat. " * 5, ""]
    rc = main(["translate", str(workdir), *texts, "--beam", "3", "--plot-attention", str(png)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len(out.splitlines()) == 3
    assert "truncated to data.max_len=20" in err and "input 2 has 74" in err and "input 1" not in err
    assert png.is_file() and png.stat().st_size > 1000

    # stdin, greedy: same outputs as the text arguments with --beam 1
    rc = main(["translate", str(workdir), *texts[:2]])
    want = capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts[:2]) + "\n"))
    assert main(["translate", str(workdir)]) == 0
    assert capsys.readouterr().out == want and rc == 0
    # options before the texts, and the averaged checkpoint (best + kept) also translates
    assert main(["translate", str(workdir), "--beam", "1", "--checkpoint", "latest", *texts[:2]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["translate", str(workdir), "--checkpoint", "average", *texts[:2]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    with pytest.raises(SystemExit) as exit_:  # argparse's own exit, as for any bad option
        main(["translate", str(workdir), "x", "--no-such-flag"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err

    assert main(["translate", str(workdir), "x", "--beam", "0"]) == 2

    # the presets report the averaged checkpoints (train.final_params=average); `seqjax eval
    # --split test --checkpoint average` re-scores them: the same BLEU as the final report
    assert (summary["average"]["steps"] == sorted(summary["average"]["steps"])
            and len(summary["average"]["steps"]) >= 2)
    assert last["bleu"] == report["test"]["beam3"]["bleu"]
    assert main(["eval", str(workdir), "--split", "test", "--checkpoint", "average",
                 "--data-dir", data_dir]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["averaged_steps"] == summary["average"]["steps"]
    assert ev["translation"]["beam3"]["bleu"] == report["test"]["beam3"]["bleu"]
    assert ev["translation"]["greedy"]["bleu_multiref"] == report["test"]["greedy"]["bleu_multiref"]
    np.testing.assert_allclose(ev["loss"], summary["average"]["test"]["loss"], rtol=1e-5)
    assert main(["translate", str(tmp_path), "x"]) == 2  # not a run directory
