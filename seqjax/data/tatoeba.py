"""Tatoeba sentence pairs (manythings.org ``*-eng`` files) for English -> X translation.

File format: one pair a line, ``English<TAB>other language[<TAB>attribution]`` (the 2018
releases have 2 columns, newer ones 3). Source = English, target = the other language.
The files are sorted by length, shortest first, so ``max_pairs`` keeps the shortest pairs
(as the TensorFlow NMT tutorial's ``num_examples`` does).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqjax.data.fetch import require
from seqjax.data.vocab import EOS, PAD, SOS, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

SPECIALS = (PAD, UNK, SOS, EOS)
PAIRS = {"por-eng": ("tatoeba-por", "por.txt"), "spa-eng": ("tatoeba-spa", "spa.txt")}
LEVELS = ("char", "word")

# Word level: a word (letters/digits of any script, inner ' or - kept: "don't", "well-known")
# or one punctuation/symbol character ("¿", "?", ",", ...).
_WORD_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_")
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}»])")
_NO_SPACE_AFTER = re.compile(r"([¿¡(\[{«]) ")


def load_pairs(path: str | os.PathLike, *, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """Read ``(english, other)`` pairs from a 2- or 3-column TSV (the third column is ignored).

    Blank lines are skipped. A line with another number of columns or an empty field raises
    :class:`DataError` ``"{file}:{line}: ..."``. ``max_pairs`` keeps the first pairs only.
    """
    path = Path(path)
    pairs = []
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                cols = line.split("\t")
                if len(cols) not in (2, 3):
                    raise DataError(f"{path}:{lineno}: expected 2 or 3 tab-separated columns "
                                    f"(English, translation[, attribution]), got {len(cols)}; fix the line")
                src, tgt = cols[0].strip(), cols[1].strip()
                if not src or not tgt:
                    raise DataError(f"{path}:{lineno}: empty {'English' if not src else 'translation'} "
                                    "field; fix the line")
                pairs.append((src, tgt))
                if max_pairs is not None and len(pairs) >= max_pairs:
                    break
    except FileNotFoundError:
        fetch_name = next((n for n, f in PAIRS.values() if f == path.name), "tatoeba-por")
        raise DataError(f"missing {path}; run 'seqjax data fetch {fetch_name}' or pass --data-dir "
                        "/ set SEQJAX_DATA") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); re-download it") from None
    return pairs


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


def _count(size: int | float, total: int, key: str) -> int:
    n = round(size * total) if isinstance(size, float) and size < 1 else int(size)
    if n < 0:
        raise UsageError(f"data.{key}={size} must be >= 0")
    return n


def load_translation(data_dir: str | os.PathLike | None = None, *, pair: str = "por-eng",
                     level: str = "char", max_pairs: int | None = None, max_len: int | None = None,
                     valid_size: int | float = 2000, test_size: int | float = 2000, seed: int = 0,
                     src_vocab_size: int | None = None,
                     tgt_vocab_size: int | None = None) -> TranslationData:
    """Load, tokenize, filter, split and encode a Tatoeba pair file.

    Steps: read the first ``max_pairs`` pairs (``por-eng/por.txt`` or ``spa-eng/spa.txt``);
    tokenize at ``level``; drop pairs whose source or target has more than ``max_len``
    tokens (``<sos>``/``<eos>`` not counted) and count them in ``dropped_long``; split.

    The split is by unique source sentence (compared after word-level normalisation, i.e.
    case-insensitively): Tatoeba lists many English sentences several times with different
    translations, and all pairs of one source land in the same split, so no test source
    sentence is seen in training. Sources are shuffled with ``seed``; whole groups go to
    test until it holds at least ``test_size`` pairs, then to valid until ``valid_size``
    (a count of pairs, or a float < 1: a fraction of the pairs), the rest to train. Vocabularies come
    from the training split (``*_vocab_size`` = total size, specials included; ``None`` = all).
    """
    _check_level(level)
    if pair not in PAIRS:
        raise UsageError(f"data.pair={pair!r}; expected one of {', '.join(PAIRS)}")
    name, filename = PAIRS[pair]
    raw = load_pairs(require(name, data_dir) / filename, max_pairs=max_pairs)
    with _gc_paused():
        return _build(raw, pair, level, max_len, valid_size, test_size, seed,
                      src_vocab_size, tgt_vocab_size, max_pairs)


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


def _build(raw: list[tuple[str, str]], pair: str, level: str, max_len: int | None,
           valid_size: int | float, test_size: int | float, seed: int,
           src_vocab_size: int | None, tgt_vocab_size: int | None,
           max_pairs: int | None) -> TranslationData:
    """The body of :func:`load_translation` after reading the file."""
    examples = []  # (src_tokens, tgt_tokens, src_text, tgt_text), texts normalised, case kept
    dropped = 0
    for src, tgt in raw:
        src, tgt = normalize(src), normalize(tgt)
        s, t = _split(src, level), _split(tgt, level)
        if max_len is not None and (len(s) > max_len or len(t) > max_len):
            dropped += 1
            continue
        examples.append((s, t, src, tgt))
    if not examples:
        raise DataError(f"{pair}: no pairs left (max_pairs={max_pairs}, max_len={max_len}); "
                        "raise data.max_len or data.max_pairs")

    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex[2].lower(), []).append(i)
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_test = _count(test_size, len(examples), "test_size")
    n_valid = _count(valid_size, len(examples), "valid_size")
    test_idx, valid_idx, train_idx = [], [], []
    for k in order.tolist():
        members = groups[keys[k]]
        if len(test_idx) < n_test:
            test_idx += members
        elif len(valid_idx) < n_valid:
            valid_idx += members
        else:
            train_idx += members
    if not train_idx:
        raise UsageError(f"{pair}: valid_size={valid_size} and test_size={test_size} leave no "
                         f"training pairs ({len(examples)} pairs)")
    for idx in (test_idx, valid_idx, train_idx):
        idx.sort()

    src_vocab = build_vocab((examples[i][0] for i in train_idx), max_size=src_vocab_size, specials=SPECIALS)
    tgt_vocab = build_vocab((examples[i][1] for i in train_idx), max_size=tgt_vocab_size, specials=SPECIALS)

    def encode(idx):
        src = src_vocab.encode_many(examples[i][0] for i in idx)
        tgt = tgt_vocab.encode_many([SOS, *examples[i][1], EOS] for i in idx)
        return list(zip(src, tgt))

    return TranslationData(
        train=encode(train_idx), valid=encode(valid_idx), test=encode(test_idx),
        src_vocab=src_vocab, tgt_vocab=tgt_vocab,
        valid_pairs=[examples[i][2:] for i in valid_idx],
        test_pairs=[examples[i][2:] for i in test_idx],
        level=level, pair=pair, dropped_long=dropped,
    )
