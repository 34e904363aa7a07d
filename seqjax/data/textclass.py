"""AG News topic classification (Zhang, Zhao & LeCun 2015): 4 classes, title + description.

Files (``ag_news/``): ``train.csv``, ``test.csv`` (no header; columns class 1..4, title,
description; every field quoted) and ``classes.txt`` (one class name a line).
The shared offline copy of ``train.csv`` is a 20,000-row subset, sorted by class; the loader
shuffles with the seed before holding out the validation split.
"""

from __future__ import annotations

import csv
import html
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seqjax.data.fetch import require
from seqjax.data.vocab import PAD, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

NUM_CLASSES = 4
_COLUMNS = ["label", "title", "description"]

# Lowercased words: letters/digits (any script), with inner apostrophes kept ("america's",
# "don't"); punctuation and symbols are dropped.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# HTML entities whose "&" became a space in the release: "America #39;s", "costs  #36;5",
# " quot;yes quot;". The space stands for the "&", so it is consumed.
_BROKEN_ENTITY = re.compile(r"\s?(#\d+|quot|amp|lt|gt|nbsp);")
_TAG = re.compile(r"<[^<>]*>")


def clean_text(text: str) -> str:
    """Undo the release's artefacts.

    In order: real HTML entities (``&lt;p&gt;``) are unescaped; broken entities
    (`` #39;`` -> ``'``, `` #36;`` -> ``$``, `` quot;`` -> ``"``; the space before them stood
    for ``&``) are decoded; HTML tags (``<p>``, ``<b>``, ``<font ...>``) are removed;
    ``\\$`` becomes ``$`` and any other backslash (an escaped line break in the original,
    e.g. ``dwindling\\band``) a space; whitespace runs collapse to one space.
    """
    if "&" in text:
        text = html.unescape(text)
    if ";" in text:
        text = _BROKEN_ENTITY.sub(lambda m: html.unescape(f"&{m.group(1)};"), text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "\\" in text:
        text = text.replace("\\$", "$").replace("\\", " ")
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens of ``clean_text(text)``.

    A token is a run of letters/digits (Unicode-aware, so "café" stays whole), with inner
    apostrophes kept (``"America's"`` -> ``"america's"``); punctuation is dropped.
    """
    return _WORD.findall(clean_text(text).lower())


def _words(cleaned: str) -> list[str]:
    """:func:`tokenize` for text that went through :func:`clean_text` already."""
    return _WORD.findall(cleaned.lower())


def encode_texts(texts: list[str], vocab: Vocab) -> list[np.ndarray]:
    """Tokenize and encode each text: a list of ``int32 [len_i]`` arrays (unknown -> ``<unk>``)."""
    return vocab.encode_many(tokenize(t) for t in texts)


class TextSplit(NamedTuple):
    """One split: ``tokens`` is a list of ``int32 [len_i]`` arrays, ``labels`` is ``int32 [n]``
    with values 0..3, ``texts`` the cleaned ``title + " " + description`` strings."""

    tokens: list[np.ndarray]
    labels: np.ndarray
    texts: list[str]


@dataclass
class TextClassData:
    """AG News, encoded.

    Attributes:
      train, valid, test: :class:`TextSplit` (unpacks as ``tokens, labels, texts``).
      vocab: ``<pad>`` = 0, ``<unk>`` = 1, then training words by frequency.
      class_names: from ``classes.txt`` (World, Sports, Business, Sci/Tech).
      skipped: malformed rows skipped (``on_error="skip"``).
    """

    train: TextSplit
    valid: TextSplit
    test: TextSplit
    vocab: Vocab
    class_names: list[str]
    skipped: int


def _bad_rows(path: Path) -> list[tuple[int, str]]:
    """``(line, problem)`` of every malformed row, found with the csv module (exact lines)."""
    bad = []
    line = 1
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            for row in reader:
                problem = None
                if len(row) != 3:
                    problem = f"expected 3 columns (class, title, description), got {len(row)}"
                elif row[0].strip() not in ("1", "2", "3", "4"):
                    problem = f"class {row[0]!r} is not 1..4"
                elif not (_WORD.search(row[1]) or _WORD.search(row[2])):
                    problem = "empty text"
                if problem:
                    bad.append((line, problem))
                line = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"{path}:{line}: unreadable CSV ({err}); fix the file or re-fetch it "
                        "with 'seqjax data fetch ag-news'") from None
    return bad


def _cache_dir() -> str | None:
    """HF datasets cache: ``$HF_DATASETS_CACHE`` if set, else a folder in the temp dir.

    Never the data directory: it may be a shared, read-only copy.
    """
    if os.environ.get("HF_DATASETS_CACHE"):
        return None
    return os.path.join(tempfile.gettempdir(), "seqjax-hf-cache")


def _read_csv(path: Path, on_error: str, cache_dir: str | None) -> tuple[list[str], np.ndarray, int]:
    """Validate ``path`` row by row, then load it with HF ``datasets``' csv builder.

    Returns cleaned texts, labels 0..3 (``int32``) and the number of skipped rows.
    """
    bad = _bad_rows(path)
    if bad and on_error == "raise":
        line, problem = bad[0]
        raise DataError(f"{path}:{line}: {problem}; fix the row or pass --set data.on_error=skip")
    source = path
    if bad:  # on_error == "skip": load a copy without the malformed rows
        bad_lines = {line for line, _ in bad}
        tmp = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="", encoding="utf-8")
        with open(path, newline="", encoding="utf-8") as f, tmp:
            reader, writer = csv.reader(f), csv.writer(tmp, quoting=csv.QUOTE_ALL, lineterminator="\n")
            line = 1
            for row in reader:
                if line not in bad_lines:
                    writer.writerow(row)
                line = reader.line_num + 1
        source = Path(tmp.name)
    import datasets  # lazy: heavy import

    features = datasets.Features({"label": datasets.Value("int32"), "title": datasets.Value("string"),
                                  "description": datasets.Value("string")})
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset("csv", data_files={"rows": str(source)}, column_names=_COLUMNS,
                                   header=None, na_filter=False, features=features,
                                   cache_dir=cache_dir, split="rows")
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
        if source != path:
            os.unlink(source)
    table = ds.data  # the Arrow table: column access without per-row formatting
    texts = [clean_text(f"{t} {d}") for t, d in zip(table.column("title").to_pylist(),
                                                     table.column("description").to_pylist())]
    labels = table.column("label").to_numpy().astype(np.int32) - 1
    return texts, labels, len(bad)


def load_agnews(data_dir: str | os.PathLike | None = None, *, max_examples: int | None = None,
                valid_size: int | float = 2000, seed: int = 0, vocab_size: int | None = 20000,
                min_freq: int = 1, on_error: str = "raise") -> TextClassData:
    """Load AG News, split train/valid, build the vocabulary, encode.

    The training CSV is shuffled with ``seed`` and its first ``valid_size`` rows (a count, or
    a float < 1: a fraction of the rows) become the validation split. The vocabulary is built from
    the remaining training split only (``vocab_size`` = total size, the 2 specials included;
    ``None`` = no cap). ``max_examples`` caps each split (train, valid and test) at that many
    examples, after the shuffle (the test subset is a seeded random one).

    Malformed rows (not 3 columns, class not 1..4, no word in title + description) raise
    :class:`DataError` ``"{file}:{line}: {what}; ..."`` with ``on_error="raise"``; with
    ``on_error="skip"`` they are left out and counted in ``skipped``.
    """
    if on_error not in ("raise", "skip"):
        raise UsageError(f"data.on_error={on_error!r}; expected 'raise' or 'skip'")
    folder = require("ag-news", data_dir)
    class_names = [ln.strip() for ln in (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
                   if ln.strip()]
    if len(class_names) != NUM_CLASSES:
        raise DataError(f"{folder / 'classes.txt'}: expected {NUM_CLASSES} class names, "
                        f"got {len(class_names)}; re-fetch with 'seqjax data fetch ag-news'")
    cache = _cache_dir()
    train_texts, train_labels, skipped_train = _read_csv(folder / "train.csv", on_error, cache)
    test_texts, test_labels, skipped_test = _read_csv(folder / "test.csv", on_error, cache)

    n = len(train_texts)
    n_valid = round(valid_size * n) if isinstance(valid_size, float) and valid_size < 1 else int(valid_size)
    if not 0 <= n_valid < n:
        raise UsageError(f"data.valid_size={valid_size} leaves no training rows ({n} rows)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    test_idx = np.arange(len(test_texts))
    if max_examples is not None:
        train_idx, valid_idx = train_idx[:max_examples], valid_idx[:max_examples]
        if max_examples < len(test_idx):
            test_idx = np.sort(rng.permutation(len(test_idx))[:max_examples])

    train_tok = [_words(train_texts[i]) for i in train_idx]
    vocab = build_vocab(Counter(t for toks in train_tok for t in toks), max_size=vocab_size,
                        min_freq=min_freq, specials=(PAD, UNK))

    def split(texts, labels, idx, toks=None):
        toks = toks if toks is not None else [_words(texts[i]) for i in idx]
        return TextSplit(vocab.encode_many(toks), labels[idx], [texts[i] for i in idx])

    return TextClassData(
        train=split(train_texts, train_labels, train_idx, train_tok),
        valid=split(train_texts, train_labels, valid_idx),
        test=split(test_texts, test_labels, test_idx),
        vocab=vocab, class_names=class_names, skipped=skipped_train + skipped_test,
    )
