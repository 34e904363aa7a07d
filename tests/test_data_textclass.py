"""Text classification data: the AG News preset (counts, labels, class names, cleaning), rows with
errors (file and row), skip counting, labels outside train's."""

import os
from pathlib import Path

import numpy as np
import pytest

from seqjax.data.textclass import clean_text, encode_texts, load_text_classes, tokenize
from seqjax.errors import DataError

CLASSES = "World\nSports\nBusiness\nSci/Tech\n"


def _shared():
    root = os.environ.get("SEQJAX_DATA")
    if not root or not (Path(root) / "ag_news" / "train.csv").is_file():
        pytest.skip("SEQJAX_DATA/ag_news not available")
    return root


def load_agnews(root, **kw):
    data = {"source": "ag_news", "valid_fraction": 2000, "vocab_size": 20000, "min_freq": 1, **kw}
    return load_text_classes(data, root, kw.pop("seed", 0))


def _write(tmp_path, train_rows, test_rows=('"3","Stocks","Shares rose."',)):
    folder = tmp_path / "ag_news"
    folder.mkdir()
    (folder / "train.csv").write_text("\n".join(train_rows) + "\n")
    (folder / "test.csv").write_text("\n".join(test_rows) + "\n")
    (folder / "classes.txt").write_text(CLASSES)
    return tmp_path


GOOD = [
    '"1","Peace talks","Leaders met on Monday."',
    '"2","Cup final","A late goal won it."',
    '"3","Oil prices","Crude hit  #36;50 a barrel."',
    '"4","New chip","Faster\\cheaper."',
]


def test_clean_and_tokenize():
    raw = "America #39;s top  #36;5 \\$50 dwindling\\band &lt;p&gt;Hi&lt;/p&gt; quot;yes quot;"
    assert clean_text(raw) == 'America\'s top $5 $50 dwindling band Hi "yes"'
    assert tokenize(raw) == ["america's", "top", "5", "50", "dwindling", "band", "hi", "yes"]
    assert tokenize("Café, e-mail!") == ["café", "e", "mail"]


def test_synthetic_load_and_vocab(tmp_path):
    root = _write(tmp_path, GOOD * 3)
    d = load_agnews(root, valid_fraction=4, vocab_size=0)
    assert len(d.train.tokens) == 8 and len(d.valid.tokens) == 4 and len(d.test.tokens) == 1
    assert d.vocab.itos[:2] == ["<pad>", "<unk>"]
    assert sorted(np.concatenate([d.train.labels, d.valid.labels]).tolist()) == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
        3,
        3,
        3,
    ]
    assert d.test.labels.tolist() == [2] and d.skipped == 0
    assert d.test.texts == ["Stocks Shares rose."]
    (ids,) = encode_texts(["peace zebra"], d.vocab)
    assert ids.tolist() == [d.vocab.stoi["peace"], d.vocab.unk_id]


@pytest.mark.parametrize(
    "row,what",
    [
        ('"5","Bad","label"', "row 3: label 5 is not one of the 4 labels of this corpus (1, 2, 3, 4)"),
        ('"2","",""', "row 3: empty text"),
    ],
)
def test_bad_row_names_file_and_row(tmp_path, row, what):
    root = _write(tmp_path, GOOD[:2] + [row] + GOOD[2:])
    with pytest.raises(DataError) as err:
        load_agnews(root, valid_fraction=1)
    msg = str(err.value)
    assert msg.startswith(f"{root / 'ag_news' / 'train.csv'}: {what}") and "\n" not in msg


def test_skip_rows_without_text_and_unreadable_lines(tmp_path):
    root = _write(tmp_path, GOOD[:2] + ['"2","",""', '"1","a","b","extra"'] + GOOD[2:])
    with pytest.raises(
        DataError, match=r"train\.csv\): cannot read it as csv \(.*Expected 3 fields in line 4, saw 4"
    ):
        load_agnews(root, valid_fraction=1)
    d = load_agnews(root, valid_fraction=1, on_error="skip")
    assert d.skipped == 1 and len(d.train.tokens) + len(d.valid.tokens) == 4


def test_row_number_counts_quoted_newlines(tmp_path):
    root = _write(tmp_path, ['"1","Two\nline title","text"', '"9","x","y"'])
    with pytest.raises(DataError, match=r"train\.csv: row 2: label 9"):
        load_agnews(root, valid_fraction=0)


def test_real_counts_labels_classes():
    d = load_agnews(_shared())
    assert (len(d.train.tokens), len(d.valid.tokens), len(d.test.tokens)) == (18_000, 2_000, 7_600)
    assert d.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert np.bincount(d.test.labels).tolist() == [1_900] * 4
    all_labels = np.concatenate([d.train.labels, d.valid.labels])
    assert np.bincount(all_labels).tolist() == [5_000] * 4  # the subset's 5,000 a class
    assert 0 < np.bincount(d.valid.labels).min()  # shuffled before the hold-out
    assert len(d.vocab) == 20_000 and d.skipped == 0
    assert all(t.dtype == np.int32 and len(t) > 0 for t in d.train.tokens[:100])
    again = load_agnews(_shared(), max_examples=50)
    assert again.valid.labels.tolist() == d.valid.labels[:50].tolist()
    assert len(again.test.tokens) == 50
