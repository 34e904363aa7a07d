"""Sentence pairs for translation: normalisation, tokenizers, carve-out and encoding.

Pairs come from any source (seqjax/data/sources.py). The built-in ``tatoeba`` corpus reads
manythings.org ``*-eng`` files: one pair a line, ``English<TAB>other language[<TAB>
attribution]`` (the 2018 releases have 2 columns, newer ones 3); source = English, target
= the other language. The files are sorted by length, shortest first, so ``max_pairs``
keeps the shortest pairs (as the TensorFlow NMT tutorial's ``num_examples`` does).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqjax.data import carving, corpora, sources
from seqjax.data.vocab import EOS, PAD, SOS, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

SPECIALS = (PAD, UNK, SOS, EOS)
LEVELS = ("char", "word")

# Word level: a word (letters/digits of any script, inner ' or - kept: "don't", "well-known")
# or one punctuation/symbol character ("¿", "?", ",", ...).
_WORD_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_")
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}»])")
_NO_SPACE_AFTER = re.compile(r"([¿¡(\[{«]) ")


def normalize(text: str, level: str = "char") -> str:
    """Unicode NFC (composed accents: "é" is one character; NFKC is not used because it would
    rewrite characters such as "º" or "½"), strip, collapse whitespace to one space.
    ``level="word"`` also lowercases (accented letters are kept, unlike the TF tutorial's
    ASCII-only preprocessing); punctuation is split off by :func:`tokenize`.
    """
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return text.lower() if level == "word" else text


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise UsageError(f"data.level={level!r}; expected 'char' or 'word'")


def tokenize(text: str, level: str = "char") -> list[str]:
    """``normalize(text, level)`` cut into tokens.

    ``char``: every character (spaces included), case kept.
    ``word``: lowercased words (inner apostrophes/hyphens kept) and single punctuation marks:
    ``"¿Dónde está?"`` -> ``["¿", "dónde", "está", "?"]``.
    """
    _check_level(level)
    return _split(normalize(text), level)


def _split(normalized: str, level: str) -> list[str]:
    """:func:`tokenize` for text that went through ``normalize(text, "char")`` already."""
    return list(normalized) if level == "char" else _WORD_TOKEN.findall(normalized.lower())


def detokenize(tokens: list[str], level: str = "char") -> str:
    """Inverse of :func:`tokenize` up to normalisation: characters are joined; words are joined
    by spaces, with no space before ``. , ! ? ; : % )`` or after ``¿ ¡ (``."""
    _check_level(level)
    if level == "char":
        return "".join(tokens)
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(tokens)))


def encode_source(text: str, vocab: Vocab, level: str = "char") -> np.ndarray:
    """Source text -> ``int32 [len]`` ids (no ``<sos>``/``<eos>``; unknown -> ``<unk>``)."""
    return vocab.encode(tokenize(text, level))


def decode_target(ids, vocab: Vocab, level: str = "char") -> str:
    """Target ids -> text: stops at ``<eos>``, drops ``<pad>``/``<sos>``."""
    return detokenize(vocab.decode(ids, stop_at_eos=True, skip_specials=(PAD, SOS)), level)


@dataclass
class TranslationData:
    """Encoded translation pairs.

    Attributes:
      train, valid, test: lists of ``(src_ids, tgt_ids)``: ``int32 [len]`` source tokens and
        ``int32 [len + 2]`` target ``[<sos>] + tokens + [<eos>]``.
      src_vocab, tgt_vocab: specials ``<pad>``=0, ``<unk>``=1, ``<sos>``=2, ``<eos>``=3, then
        training tokens by frequency.
      valid_pairs, test_pairs: ``(source, reference)`` strings (NFC, whitespace collapsed,
        case kept) of the valid/test examples, in the same order, for BLEU/chrF.
      level, pair: as requested. dropped_long: pairs removed by ``max_len``.
    """

    train: list[tuple[np.ndarray, np.ndarray]]
    valid: list[tuple[np.ndarray, np.ndarray]]
    test: list[tuple[np.ndarray, np.ndarray]]
    src_vocab: Vocab
    tgt_vocab: Vocab
    valid_pairs: list[tuple[str, str]]
    test_pairs: list[tuple[str, str]]
    level: str
    pair: str
    dropped_long: int


def load_translation(
    data: Mapping[str, Any], data_dir: str | os.PathLike | None = None, seed: int = 0
) -> TranslationData:
    """Load, tokenize, filter, split and encode the pairs of ``data.source``.

    Rows come from :mod:`seqjax.data.sources` (``tatoeba``: the pair file of ``data.pair``;
    any builder or generated source with ``data.source_column`` / ``data.target_column``).
    Steps: keep the first ``data.max_pairs`` rows of train (0: all); tokenize at
    ``data.level``; drop pairs whose source or target has more than ``data.max_len`` tokens
    (``<sos>``/``<eos>`` not counted), counted in ``dropped_long``; carve the missing splits.

    The carve-out is by unique source sentence (compared after word-level normalisation,
    i.e. case-insensitively): Tatoeba lists many English sentences several times with
    different translations, and all pairs of one source land in the same split, so no test
    source sentence is seen in training. Sources are shuffled with ``seed``; whole groups go
    to test until it holds at least ``data.test_fraction`` pairs, then to valid until
    ``data.valid_fraction`` (a fraction < 1 of the pairs, or a count), the rest to train.
    Vocabularies come from the training split (``data.src_vocab_size`` /
    ``data.tgt_vocab_size`` = total size, specials included; 0 = all).
    """
    level = data.get("level", "char")
    _check_level(level)
    splits = sources.load_splits(data, data_dir, seed)
    max_pairs, max_len = data.get("max_pairs") or None, data.get("max_len") or None
    with _gc_paused():
        given = [s for s in corpora.SPLITS if splits.rows[s] is not None]
        examples, dropped = {}, 0
        for s in given:
            src, tgt = splits.column(s, "source_column"), splits.column(s, "target_column")
            if s == "train" and max_pairs is not None:
                src, tgt = src[:max_pairs], tgt[:max_pairs]
            examples[s], n_long = _examples(src, tgt, level, max_len, splits.where[s])
            dropped += n_long
            if not examples[s]:
                raise DataError(
                    f"{splits.where[s]}: no pairs left after filtering (data.max_pairs={max_pairs}, "
                    f"data.max_len={max_len}); raise data.max_len or data.max_pairs"
                )
        train = examples["train"]
        missing = [s for s in ("test", "valid") if s not in given]
        sizes = {
            s: carving.count(data.get(f"{s}_fraction", 0.1), len(train), f"{s}_fraction") for s in missing
        }
        keys: dict[str, int] = {}
        groups = [keys.setdefault(ex[2].lower(), len(keys)) for ex in train]
        idx = carving.carve(len(train), sizes, np.random.default_rng(seed), groups)
        for s in missing:
            examples[s] = [train[i] for i in idx[s]]
        examples["train"] = [train[i] for i in idx["train"]]
        return _encode(
            examples,
            str(data.get("pair", "")) if data["source"] == "tatoeba" else str(data["source"]),
            level,
            dropped,
            data.get("src_vocab_size") or None,
            data.get("tgt_vocab_size") or None,
        )


def _examples(
    src: list, tgt: list, level: str, max_len: int | None, where: str
) -> tuple[list[tuple[list[str], list[str], str, str]], int]:
    """``(src_tokens, tgt_tokens, src_text, tgt_text)`` of each pair (texts normalised, case
    kept) within ``max_len``, and the number of pairs dropped as longer."""
    out, dropped = [], 0
    for row, (a, b) in enumerate(zip(src, tgt), start=1):
        a, b = normalize("" if a is None else str(a)), normalize("" if b is None else str(b))
        if not a or not b:
            raise DataError(f"{where}: row {row}: empty {'source' if not a else 'target'} text; fix the row")
        s, t = _split(a, level), _split(b, level)
        if max_len is not None and (len(s) > max_len or len(t) > max_len):
            dropped += 1
            continue
        out.append((s, t, a, b))
    return out, dropped


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic GC: building hundreds of thousands of small lists and arrays (no
    cycles among them) otherwise triggers it over and over, about a third of the load time."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _encode(
    examples: dict[str, list],
    pair: str,
    level: str,
    dropped: int,
    src_vocab_size: int | None,
    tgt_vocab_size: int | None,
) -> TranslationData:
    """Vocabularies from train, then every split encoded."""
    train = examples["train"]
    src_vocab = build_vocab((ex[0] for ex in train), max_size=src_vocab_size, specials=SPECIALS)
    tgt_vocab = build_vocab((ex[1] for ex in train), max_size=tgt_vocab_size, specials=SPECIALS)

    def encode(exs):
        src = src_vocab.encode_many(ex[0] for ex in exs)
        tgt = tgt_vocab.encode_many([SOS, *ex[1], EOS] for ex in exs)
        return list(zip(src, tgt))

    return TranslationData(
        train=encode(train),
        valid=encode(examples["valid"]),
        test=encode(examples["test"]),
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        valid_pairs=[ex[2:] for ex in examples["valid"]],
        test_pairs=[ex[2:] for ex in examples["test"]],
        level=level,
        pair=pair,
        dropped_long=dropped,
    )
