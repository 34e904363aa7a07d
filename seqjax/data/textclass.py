"""Text classification data: texts and labels of any source, cleaned, tokenized, encoded.

The built-in ``ag_news`` corpus (Zhang, Zhao & LeCun 2015; seqjax/data/corpora.py) is one
preset: ``ag_news/train.csv``, ``test.csv`` (no header; class 1..4, title, description) and
``classes.txt`` (one class name a line). The shared offline copy of ``train.csv`` is a
20,000-row subset, sorted by class; the loader shuffles with the seed before holding out
the validation split.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from seqjax.data import carving, corpora, sources
from seqjax.data.vocab import PAD, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

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
    class ids, ``texts`` the cleaned texts."""

    tokens: list[np.ndarray]
    labels: np.ndarray
    texts: list[str]


@dataclass
class TextClassData:
    """A text classification dataset, encoded.

    Attributes:
      train, valid, test: :class:`TextSplit` (unpacks as ``tokens, labels, texts``).
      vocab: ``<pad>`` = 0, ``<unk>`` = 1, then training words by frequency.
      class_names: one name per class id (AG News: World, Sports, Business, Sci/Tech).
      skipped: rows without text left out (``data.on_error=skip``).
    """

    train: TextSplit
    valid: TextSplit
    test: TextSplit
    vocab: Vocab
    class_names: list[str]
    skipped: int


def _label_feature(splits: sources.Splits, split: str):
    """The ``datasets`` feature of the label column in ``split`` (``None`` if unknown)."""
    ds = splits.rows[split]
    features = getattr(ds, "features", None) or {}
    return features.get(str(splits.columns["label_column"]).strip())


def check_labels(splits: sources.Splits, split: str, labels: list) -> None:
    """One :class:`DataError` line, with the file and row, for a label a classifier cannot
    use: a missing one (``None`` or an empty field) or labels of mixed types (``datasets``
    then reads the column as JSON text: ``"business"`` and ``3`` would become two classes)."""
    col, where = splits.columns["label_column"], splits.where[split]
    feature = _label_feature(splits, split)
    if type(feature).__name__ == "Json":
        decoded = [json.loads(v) if isinstance(v, str) else v for v in labels]
        kind = [type(v).__name__ for v in decoded]
        row = next((i for i, k in enumerate(kind) if k != kind[0]), 0)
        raise DataError(
            f"{where}: row {row + 1}: label {decoded[row]!r} ({kind[row]}) in column {col!r} whose row 1 "
            f"is {decoded[0]!r} ({kind[0]}); write every label as one type (all strings or all integers)"
        )
    row = next((i for i, v in enumerate(labels) if v is None or (isinstance(v, str) and not v.strip())), None)
    if row is not None:
        raise DataError(f"{where}: row {row + 1}: no label in column {col!r}; fix the row "
                        "(or pass --set data.on_error=skip to leave such rows out)")


def _names(splits: sources.Splits, labels: list, where: str,
           num_classes: int = 0) -> tuple[list, list[str]]:
    """The classes and their names: a ``ClassLabel`` column's ids and names; else the
    distinct training labels, sorted (``num_classes`` > 0: the integers ``0..num_classes-1``),
    named by the corpus's class-names file or by themselves."""
    feature = _label_feature(splits, "train")
    if type(feature).__name__ == "ClassLabel":
        return list(range(feature.num_classes)), [str(n) for n in feature.names]
    if num_classes:
        bad = next((i for i, v in enumerate(labels)
                    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < num_classes), None)
        if bad is not None:
            raise DataError(f"{where}: row {bad + 1}: label {labels[bad]!r} is not an integer in "
                            f"0..{num_classes - 1} (data.num_classes={num_classes}); fix the row or the key")
        classes = list(range(num_classes))
    else:
        classes = list(splits.extras.get("label_values") or sorted(set(labels)))
    names_file = splits.extras.get("label_names")
    if not names_file:
        return classes, [str(c) for c in classes]
    path = splits.extras["root"] / names_file
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(names) != len(classes):
        raise DataError(
            f"{path} names {len(names)} classes but the train labels are {len(classes)}: "
            f"{', '.join(map(str, classes))}; fix the labels or the file"
        )
    return classes, names


def load_text_classes(
    data: Mapping[str, Any], data_dir: str | os.PathLike | None = None, seed: int = 0
) -> TextClassData:
    """Load texts and labels of ``data.source`` (:mod:`seqjax.data.sources`), split, build the
    vocabulary, encode.

    A text is ``data.text_column`` (``a,b``: columns joined by a space) cleaned by
    :func:`clean_text`; its label is ``data.label_column``, any values: the classes are the
    distinct training labels, sorted (a corpus may fix them: AG News 1..4 -> ids 0..3, named
    by ``classes.txt``).
    A missing valid/test split is carved from train with a generator seeded by ``seed``
    (``data.valid_fraction``, ``data.test_fraction``: a fraction < 1 or a count of rows).
    The vocabulary comes from the remaining training split (``data.vocab_size`` = total size,
    the 2 specials included, 0: no cap; ``data.min_freq``). ``data.max_examples`` caps each
    split, after the shuffle (a test file's subset is a seeded random one).

    A row without a word raises :class:`DataError` ``"{file}: row {n}: ..."`` with
    ``data.on_error=raise``; ``skip`` leaves it out (counted in ``skipped``). A valid/test
    label that train does not have raises :class:`DataError` naming it and the classes.
    """
    on_error = data.get("on_error", "raise")
    if on_error not in ("raise", "skip"):
        raise UsageError(f"data.on_error={on_error!r}; expected 'raise' or 'skip'")
    splits = sources.load_splits(data, data_dir, seed)
    given = [s for s in corpora.SPLITS if splits.rows[s] is not None]
    texts, labels, skipped = {}, {}, 0
    for s in given:
        raw = splits.column(s, "text_column")
        lab = splits.column(s, "label_column")
        cleaned = [clean_text("" if t is None else str(t)) for t in raw]
        keep = [i for i, t in enumerate(cleaned) if _WORD.search(t)]
        if len(keep) < len(cleaned):
            if on_error == "raise":
                row = next(i for i in range(len(cleaned)) if not _WORD.search(cleaned[i])) + 1
                raise DataError(
                    f"{splits.where[s]}: row {row}: empty text (no word in column "
                    f"{splits.columns['text_column']!r}); fix the row or pass --set data.on_error=skip"
                )
            skipped += len(cleaned) - len(keep)
            if not keep:
                raise DataError(f"{splits.where[s]}: no rows left after skipping the rows without text")
        texts[s], labels[s] = [cleaned[i] for i in keep], [lab[i] for i in keep]
    for s in given:
        if on_error == "skip":  # rows without a label are left out like rows without text
            keep = [i for i, v in enumerate(labels[s]) if v is not None and str(v).strip()]
            skipped += len(labels[s]) - len(keep)
            texts[s], labels[s] = [texts[s][i] for i in keep], [labels[s][i] for i in keep]
        check_labels(splits, s, labels[s])
    classes, class_names = _names(splits, labels["train"], splits.where["train"],
                                  int(data.get("num_classes", 0) or 0))
    index = {c: i for i, c in enumerate(classes)}
    for s in given:
        unknown = next((i for i, v in enumerate(labels[s]) if v not in index), None)
        if unknown is not None:
            shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
            seen = "of this corpus" if splits.extras.get("label_values") else "in train"
            raise DataError(
                f"{splits.where[s]}: row {unknown + 1}: label {labels[s][unknown]!r} is not one of the "
                f"{len(classes)} labels {seen} ({shown}); fix the row or add it to train"
            )
    ids = {s: np.array([index[v] for v in labels[s]], np.int32) for s in given}

    rng = np.random.default_rng(seed)
    n = len(texts["train"])
    missing = [s for s in ("valid", "test") if s not in given]
    sizes = {s: carving.count(data.get(f"{s}_fraction", 0.1), n, f"{s}_fraction") for s in missing}
    idx = carving.carve(n, sizes, rng)
    source_of = {s: ("train" if s in missing else s) for s in corpora.SPLITS}
    for s in given[1:]:
        idx[s] = np.arange(len(texts[s]))
    cap = data.get("max_examples") or None
    if cap is not None:
        for s in ("train", "valid"):
            idx[s] = idx[s][:cap]
        if "test" in given and cap < len(idx["test"]):
            idx["test"] = np.sort(rng.permutation(len(idx["test"]))[:cap])
        elif "test" in missing:
            idx["test"] = idx["test"][:cap]
    for s in missing:
        if len(idx[s]) == 0:
            raise DataError(
                f"{splits.where['train']}: data.{s}_fraction={data.get(f'{s}_fraction')} carves an "
                f"empty {s} split; raise it or give data.files.{s}"
            )

    train_tok = [_words(texts["train"][i]) for i in idx["train"]]
    vocab = build_vocab(
        Counter(t for toks in train_tok for t in toks),
        max_size=data.get("vocab_size") or None,
        min_freq=data.get("min_freq", 1),
        specials=(PAD, UNK),
    )

    def split(s, toks=None):
        src = source_of[s]
        toks = toks if toks is not None else [_words(texts[src][i]) for i in idx[s]]
        return TextSplit(vocab.encode_many(toks), ids[src][idx[s]], [texts[src][i] for i in idx[s]])

    return TextClassData(
        train=split("train", train_tok),
        valid=split("valid"),
        test=split("test"),
        vocab=vocab,
        class_names=class_names,
        skipped=skipped,
    )
