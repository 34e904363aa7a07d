"""Language-modelling text (word and character level), ``batchify`` and BPTT windows.

A corpus is three flat ``int32`` id streams (train/valid/test) plus a :class:`Vocab`.
Truncated BPTT cuts a stream into ``B`` contiguous parallel rows and walks along them in
windows of ``bptt`` steps; row ``b`` of window ``k + 1`` continues row ``b`` of window
``k``, so the model carries its state across windows (Zaremba et al. 2014).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqjax.data import carving, corpora, sources
from seqjax.data.synthetic import TOY_SENTENCES  # noqa: F401  (the toy corpus: data.source=toy)
from seqjax.data.vocab import EOS, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

SPLITS = ("train", "valid", "test")



@dataclass
class LMCorpus:
    """A language-modelling corpus.

    Attributes:
      train, valid, test: flat id streams, ``int32 [n_tokens]``.
      vocab: the :class:`Vocab` (built from the training split).
      level: ``"word"`` or ``"char"`` (what the metrics count: perplexity or bits per char).
      name: ``data.source`` of the corpus.
      unit: ``"words"`` (whitespace tokens, ``<eos>`` per line), ``"chars"`` (every
        character, newline included) or ``"symbols"`` (whitespace-separated characters,
        ``<eos>`` per line: the PTB character files).
      space: how a symbol file writes a space (``"_"`` in PTB chars), else ``""``.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: Vocab
    level: str
    name: str
    unit: str = "chars"
    space: str = ""

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def text_to_tokens(self, text: str) -> list[str]:
        """Turn plain text (e.g. a sampling prompt) into this corpus's tokens.

        Newlines become ``<eos>`` where the vocabulary has it; a symbol corpus writes spaces
        as its ``space`` symbol, like its files.
        """
        lines = text.split("\n")
        eos = [EOS] if EOS in self.vocab else ["\n"]
        out: list[str] = []
        for i, line in enumerate(lines):
            if i:
                out += eos
            if self.unit == "words":
                out += line.split()
            elif self.space:
                out += [self.space if c == " " else c for c in line]
            else:
                out += list(line)
        return out

    def tokens_to_text(self, tokens: list[str]) -> str:
        """Inverse of :meth:`text_to_tokens` (``<eos>`` -> newline)."""
        toks = ["\n" if t == EOS else t for t in tokens]
        if self.unit == "words":
            return " ".join(toks).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")
        text = "".join(toks)
        return text.replace(self.space, " ") if self.space else text


def _line_tokens(text: str) -> list[str]:
    """Whitespace tokens with one ``<eos>`` per newline.

    A final segment after the last newline counts as a line only if it is not blank
    (``ptb.char.*`` files end with ``"\\n "``; that trailing space is not a sentence).
    """
    if text and not text.endswith("\n") and text.rsplit("\n", 1)[-1].strip():
        text += "\n"
    return text.replace("\n", f" {EOS} ").split()


def _tokens(texts: list[str], unit: str) -> list[str]:
    if unit == "chars":
        return list("".join(texts))
    return [t for text in texts for t in _line_tokens(text)]


def corpus_unit(data: Mapping[str, Any]) -> dict:
    """``{"level", "unit", "space"}`` of ``data.source`` without reading it: a built-in
    corpus's own (:data:`seqjax.data.corpora.CORPORA`), else ``data.level``'s."""
    ex = corpora.CORPORA.get(corpora.corpus_name(data), corpora.Corpus("", "", {})).extras
    level = ex.get("level") or data.get("level") or "word"
    if level not in ("word", "char"):
        raise UsageError(f"data.level={level!r}: choose word or char")
    unit = ex.get("unit") or ("words" if level == "word" else "chars")
    return {"level": level, "unit": unit, "space": ex.get("space", "")}


def load_lm_corpus(
    data: Mapping[str, Any], data_dir: str | os.PathLike | None = None, seed: int = 0
) -> LMCorpus:
    """Load the language-modelling text of ``data.source`` (:mod:`seqjax.data.sources`).

    The text is ``data.text_column`` of every row, in order; rows of the ``text`` builder
    are whole files, other rows are one line each. ``data.level``: ``word`` (whitespace
    tokens plus one ``<eos>`` per line; vocabulary ``<eos>``, ``<unk>``, then the training
    types by frequency) or ``char`` (every character; vocabulary the sorted training
    characters, then ``<unk>``). The built-in corpora fix their own:

      ``ptb``: words; ``<unk>`` is already a token of the files; 10,000 types, no
        ``<pad>``. Train/valid/test: 929,589 / 73,760 / 82,430 tokens.
      ``ptb_char``: Mikolov's character files: each whitespace-separated symbol is a token
        (``_`` is the word boundary, ``< u n k >`` stays five symbols), plus ``<eos>`` per
        line; vocabulary ``<eos>`` + the 49 training symbols = 50, no ``<unk>``.
      ``shakespeare``: raw characters, one file: valid and test carved from its tail.
      ``toy``: ``seqjax.data.synthetic.TOY_SENTENCES`` (generated, no files), train = valid = test.

    A missing valid/test split is carved from the end of the train stream, contiguous:
    train | valid | test, of ``data.valid_fraction`` / ``data.test_fraction`` of its
    tokens (a fraction < 1, or a count); ``data.test_fraction=0`` makes test the valid
    split. ``data.max_tokens`` keeps only the first that many ids of each split (tiny
    presets); the vocabulary is still built from the whole training split, so ids match
    full runs.
    """
    splits = sources.load_splits(data, data_dir, seed)
    ex = splits.extras
    unit_of = corpus_unit(data)
    level, unit = unit_of["level"], unit_of["unit"]

    def texts(split):
        col = splits.column(split, "text_column")
        return [v or "" for v in col] if splits.whole_files else [f"{v or ''}\n" for v in col]

    tokens = {s: _tokens(texts(s), unit) for s in SPLITS if splits.rows[s] is not None}
    if not tokens["train"]:
        raise DataError(f"{splits.where['train']}: no tokens in column {splits.columns['text_column']!r}")
    missing = [s for s in ("valid", "test") if s not in tokens]
    if missing:
        n = len(tokens["train"])
        sizes = {s: carving.count(data.get(f"{s}_fraction", 0.1), n, f"{s}_fraction") for s in missing}
        # data.test_fraction=0 with no test file: no test split of its own, the test report
        # scores valid (nanoGPT's 90/10 split of tinyshakespeare has no test split)
        test_is_valid = "test" in missing and "valid" in missing and sizes["test"] == 0
        end = n
        for s in reversed(missing):  # test is the very tail, valid just before it
            if s == "test" and test_is_valid:
                continue
            tokens[s], end = tokens["train"][end - sizes[s] : end], end - sizes[s]
        if test_is_valid:
            tokens["test"] = tokens["valid"]
        if end <= 0:
            raise UsageError(
                f"data.valid_fraction / data.test_fraction leave no training tokens ({n} tokens)"
            )
        tokens["train"] = tokens["train"][:end]
    for s in missing:
        if not tokens[s]:
            raise DataError(
                f"{splits.where['train']}: data.{s}_fraction={data.get(f'{s}_fraction')} carves an "
                f"empty {s} split; raise it or give data.files.{s}"
            )
    if unit == "chars":
        vocab = Vocab(sorted(set(tokens["train"])) + [UNK])
    else:
        vocab = build_vocab(Counter(tokens["train"]), specials=tuple(ex.get("specials", (EOS, UNK))))
    streams = {s: vocab.encode(tokens[s]) for s in SPLITS}
    max_tokens = data.get("max_tokens") or None
    if max_tokens is not None:
        streams = {s: a[:max_tokens] for s, a in streams.items()}
    return LMCorpus(
        **streams, vocab=vocab, level=level, name=str(data["source"]), unit=unit, space=ex.get("space", "")
    )


def batchify(
    ids: np.ndarray, batch_size: int, *, pad: bool = False, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split a stream into ``batch_size`` contiguous parallel rows.

    Row ``b`` is ``ids[b * N:(b + 1) * N]``. ``pad=False`` drops the last
    ``len(ids) % batch_size`` tokens (``N = len // B``, as Zaremba's reader and PyTorch's
    word_language_model do); ``pad=True`` uses ``N = ceil(len / B)`` and fills the tail of
    the last row(s) with ``pad_id`` so every token is kept.

    Returns:
      ``data``: ``int32 [B, N]``; ``weights``: ``float32 [B, N]``, 1 for real tokens, 0 for padding.
    """
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    n = math.ceil(len(ids) / batch_size) if pad else len(ids) // batch_size
    if n == 0:
        raise UsageError(f"a stream of {len(ids)} tokens is too short for batch_size={batch_size}")
    total = batch_size * n
    data = np.full(total, pad_id, dtype=np.int32)
    weights = np.zeros(total, dtype=np.float32)
    kept = min(total, len(ids))
    data[:kept] = ids[:kept]
    weights[:kept] = 1.0
    return data.reshape(batch_size, n), weights.reshape(batch_size, n)


class LMWindows:
    """Truncated-BPTT windows over a stream; a sequence (``len``, ``w[k]``, iteration).

    Window ``k`` is a dict of numpy arrays, all windows of the same shape:
      ``inputs``: ``int32 [B, bptt]``, ``targets``: ``int32 [B, bptt]`` (the next token of
      each input in the stream), ``weight``: ``float32 [B, bptt]`` (1 = a real prediction,
      0 = padding in the last window or the tail of the last rows).

    Attributes:
      rows: ``int32 [B, num_windows * bptt + 1]``, the parallel streams (padded).
      mask: ``float32 [B, num_windows * bptt]``, weight of target position ``t`` of each row.
      num_targets: number of weighted predictions over all windows.
    """

    def __init__(self, rows: np.ndarray, mask: np.ndarray, bptt: int):
        self.rows, self.mask, self.bptt = rows, mask, bptt
        self.batch_size = rows.shape[0]
        self.num_targets = int(mask.sum())

    def __len__(self) -> int:
        return self.mask.shape[1] // self.bptt

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"window {k} out of range ({len(self)} windows)")
        k %= len(self)
        t0, t1 = k * self.bptt, (k + 1) * self.bptt
        return {
            "inputs": np.ascontiguousarray(self.rows[:, t0:t1]),
            "targets": np.ascontiguousarray(self.rows[:, t0 + 1 : t1 + 1]),
            "weight": np.ascontiguousarray(self.mask[:, t0:t1]),
        }

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return (self[k] for k in range(len(self)))


def bptt_windows(
    ids: np.ndarray, batch_size: int, bptt: int, *, cover_all: bool, pad_id: int = 0
) -> LMWindows:
    """Cut a stream into ``B`` parallel rows and those into windows of ``bptt`` steps.

    ``cover_all=False`` (training): ``batchify`` with truncation -- ``N = len // B`` tokens a
      row, ``N - 1`` predictions a row, ``B * (N - 1)`` in all, exactly the targets of
      PyTorch's word_language_model. The last window, shorter in PyTorch, is padded with
      weight 0 here so every window has one shape.
    ``cover_all=True`` (evaluation): every prediction of the stream (targets ``ids[1:]``,
      ``len(ids) - 1`` of them) is counted exactly once with weight 1. Row ``b`` predicts
      targets ``b * M + 1 .. (b + 1) * M`` with ``M = ceil((len - 1) / B)``; rows overlap
      by one token (the last target of row ``b`` is the first input of row ``b + 1``) and
      the tail of the last row(s) is padding with weight 0.

    Either way row ``b`` of window ``k + 1`` continues row ``b`` of window ``k``.
    Padding positions hold ``pad_id`` (any valid id; they have weight 0).

    Returns:
      :class:`LMWindows` of ``ceil(M / bptt)`` windows (``M`` predictions a row).
    """
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    if batch_size < 1 or bptt < 1:
        raise UsageError(f"batch_size and bptt must be >= 1, got {batch_size} and {bptt}")
    if cover_all:
        preds = len(ids) - 1
        if preds < 1:
            raise UsageError(f"a stream of {len(ids)} tokens has nothing to predict")
        m = math.ceil(preds / batch_size)
        starts = np.arange(batch_size)[:, None] * m
        positions = starts + np.arange(m + 1)[None, :]  # stream index of each row entry
        valid = positions < len(ids)
        row_data = np.where(valid, ids[np.minimum(positions, len(ids) - 1)], pad_id)
        row_mask = valid[:, 1:].astype(np.float32)
    else:
        data, _ = batchify(ids, batch_size)
        m = data.shape[1] - 1
        if m < 1:
            raise UsageError(
                f"a stream of {len(ids)} tokens is too short for batch_size="
                f"{batch_size} (each row needs 2 tokens)"
            )
        row_data, row_mask = data, np.ones((batch_size, m), dtype=np.float32)
    num_windows = math.ceil(m / bptt)
    width = num_windows * bptt
    rows = np.full((batch_size, width + 1), pad_id, dtype=np.int32)
    rows[:, : m + 1] = row_data
    mask = np.zeros((batch_size, width), dtype=np.float32)
    mask[:, :m] = row_mask
    return LMWindows(rows, mask, bptt)
