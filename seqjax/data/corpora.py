"""The built-in corpora and the names every source shares: the splits, the local-file
builders of HF ``datasets``, the column keys. A built-in corpus (:data:`CORPORA`) is a preset
of the file mechanism of seqjax/data/sources.py: a builder, files relative to the data
directory, its columns and a few loader options."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

SPLITS = ("train", "valid", "test")
#: local-file builders of ``datasets`` (TSV is ``csv`` with ``data.delimiter``)
BUILDERS = ("text", "csv", "json", "parquet")
#: the split names of ``datasets`` for ours (the Hub and ``save_to_disk`` say ``validation``)
HF_SPLIT = {"train": "train", "valid": "validation", "test": "test"}
LOCAL_KEYS = (
    "--set data.source=csv|json|text|parquet --set data.files.train=PATH "
    "[--set data.files.valid=PATH --set data.files.test=PATH]"
)

#: the column keys and their defaults
COLUMNS = {
    "text_column": "text",
    "label_column": "label",
    "source_column": "source",
    "target_column": "target",
}


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A built-in corpus: a preset of the file mechanism.

    Attributes:
      fetch: its ``seqjax data fetch NAME``.
      builder: the ``datasets`` builder reading its files.
      files: split -> path relative to the data directory.
      columns: the column keys it implies (``text_column``, ``label_column``, ...).
      options: keyword arguments of ``load_dataset`` for its files.
      extras: loader options of its task (e.g. the LM's token unit, a class-names file).
    """

    fetch: str
    builder: str
    files: Mapping[str, str]
    columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_DOCUMENT = {"sample_by": "document"}  # one row per file: the LM keeps a file's exact text
_TATOEBA = {
    "delimiter": "\t",
    "header": None,
    "column_names": ["source", "target"],
    "usecols": [0, 1],
    "quoting": 3,
    "na_filter": False,
}

CORPORA: dict[str, Corpus] = {
    "ptb": Corpus(
        "ptb",
        "text",
        {s: f"ptb/ptb.{s}.txt" for s in SPLITS},
        options=_DOCUMENT,
        extras={"level": "word", "specials": ("<eos>", "<unk>")},
    ),
    "ptb_char": Corpus(
        "ptb-char",
        "text",
        {s: f"ptb_char/ptb.char.{s}.txt" for s in SPLITS},
        options=_DOCUMENT,
        extras={"level": "char", "unit": "symbols", "specials": ("<eos>",), "space": "_"},
    ),
    "shakespeare": Corpus(
        "shakespeare",
        "text",
        {"train": "tinyshakespeare/input.txt"},
        options=_DOCUMENT,
        extras={"level": "char"},
    ),
    "ag_news": Corpus(
        "ag-news",
        "csv",
        {"train": "ag_news/train.csv", "test": "ag_news/test.csv"},
        columns={"text_column": "title,description", "label_column": "label"},
        options={"header": None, "column_names": ["label", "title", "description"], "na_filter": False},
        extras={"label_names": "ag_news/classes.txt", "label_values": (1, 2, 3, 4)},
    ),
    "tatoeba/por-eng": Corpus("tatoeba-por", "csv", {"train": "por-eng/por.txt"}, options=_TATOEBA),
    "tatoeba/spa-eng": Corpus("tatoeba-spa", "csv", {"train": "spa-eng/spa.txt"}, options=_TATOEBA),
}
ALIASES = {"ptb-char": "ptb_char", "ag-news": "ag_news", "agnews": "ag_news"}


def corpus_name(data: Mapping[str, Any]) -> str:
    """The :data:`CORPORA` key of ``data.source`` (``tatoeba`` picks its file by ``data.pair``)."""
    name = ALIASES.get(data["source"], data["source"])
    return f"tatoeba/{data.get('pair', 'por-eng')}" if name == "tatoeba" else name
