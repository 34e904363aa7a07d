"""docs/data.md's "Your own data" commands, run as written on tiny generated files in a scratch directory."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from seqjax.app import cli

README = Path(__file__).resolve().parent.parent / "docs" / "data.md"
WORDS = {
    "sunny": "bright warm wonderful sunny day light",
    "gloomy": "dull grey cold rain dark afternoon",
    "calm": "quiet still soft slow gentle evening",
}
PAIRS = [
    ("the cat", "le chat"),
    ("the dog", "le chien"),
    ("a cat", "un chat"),
    ("a dog", "un chien"),
    ("the red cat", "le chat rouge"),
    ("a big dog", "un grand chien"),
    ("the sun", "le soleil"),
    ("a house", "une maison"),
    ("the house", "la maison"),
    ("a red house", "une maison rouge"),
]


def _commands() -> list[list[str]]:
    """The ``seqjax ...`` lines of the bash blocks of docs/data.md's "## Your own data" section."""
    section = README.read_text(encoding="utf-8").split("## Your own data", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [shlex.split(line)[1:] for b in blocks for line in b.splitlines() if line.startswith("seqjax ")]


def _run(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, (argv, err)
    return out


def _write_data(root: Path) -> None:
    rng = np.random.default_rng(0)
    text = root / "text"
    text.mkdir()
    lines = [
        "the quiet harbour sleeps under the moon.",
        "the old clock rings twice at dawn.",
        "the river path is narrow and bright.",
    ]
    for split, n in (("train", 60), ("valid", 8), ("test", 8)):
        (text / f"{split}.txt").write_text("\n".join(lines[i % 3] for i in range(n)) + "\n", encoding="utf-8")
    rows = ["id,review,mood"]
    for i in range(90):
        mood = list(WORDS)[i % 3]
        words = rng.choice(WORDS[mood].split(), size=5)
        rows.append(f'{i},"{" ".join(words)}",{mood}')
    (root / "reviews.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    pairs = [PAIRS[i % len(PAIRS)] for i in range(120)]
    (root / "pairs.jsonl").write_text(
        "".join(json.dumps({"en": a, "fr": b}) + "\n" for a, b in pairs), encoding="utf-8"
    )
    (root / "pairs.tsv").write_text("en\tfr\n" + "".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    lengths = rng.integers(1, 7, size=160)
    x = np.where(np.arange(6)[None, :] < lengths[:, None], rng.choice([-1.0, 1.0], size=(160, 6)), 0.0)
    np.savez(
        root / "seq.npz",
        x=x[..., None].astype(np.float32),
        y=(x.sum(1) > 0).astype(np.int64),
        lengths=lengths,
    )


@pytest.mark.slow
def test_readme_own_data_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_data(tmp_path)
    commands = _commands()
    assert [c[0] for c in commands] == [
        "train",
        "sample",
        "train",
        "classify",
        "train",
        "translate",
        "train",
        "translate",
        "train",
        "eval",
    ]
    outputs = [_run(argv, capsys) for argv in commands]

    sampled = outputs[1].rstrip("\n")
    assert sampled.startswith("the ") and len(sampled) == len("the ") + 40

    assert json.loads((tmp_path / "runs/clf/classes.json").read_text()) == sorted(WORDS)
    labels = [line.split("\t")[0] for line in outputs[3].strip().split("\n")]
    assert len(labels) == 2 and set(labels) <= set(WORDS)

    for out in (outputs[5], outputs[7]):
        assert len(out.strip().split("\n")) == 1
    summary = json.loads((tmp_path / "runs/mt/summary.json").read_text())
    greedy = summary["translation"]["test"]["greedy"]
    assert greedy["sentences"] == 12 and 0.0 <= greedy["exact_match"] <= 1.0  # 10% of the 120 pairs

    metrics = json.loads(outputs[9])
    assert metrics["split"] == "test" and 0.0 <= metrics["acc"] <= 1.0
    # 160 rows: 16 carved as valid and 16 as test (data.valid_fraction = data.test_fraction = 0.1)
    assert metrics["loss"] > 0
