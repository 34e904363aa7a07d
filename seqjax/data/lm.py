"""Language-modelling corpora (word and character level), ``batchify`` and BPTT windows.

A corpus is three flat ``int32`` id streams (train/valid/test) plus a :class:`Vocab`.
Truncated BPTT cuts a stream into ``B`` contiguous parallel rows and walks along them in
windows of ``bptt`` steps; row ``b`` of window ``k + 1`` continues row ``b`` of window
``k``, so the model carries its state across windows (Zaremba et al. 2014).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqjax.data.fetch import require
from seqjax.data.vocab import EOS, UNK, Vocab, build_vocab
from seqjax.errors import DataError, UsageError

SPLITS = ("train", "valid", "test")

# The built-in toy corpus (written for seqjax): a character model learns to complete these
# sentences from a prefix within a few hundred steps on a CPU.
TOY_SENTENCES = (
    "a small red kite drifts above the quiet harbour.",
    "seven grey cats sleep under the warm bakery window.",
    "the old clock tower rings twice before the morning train.",
    "bright lanterns sway along the narrow river path at dusk.",
)


@dataclass
class LMCorpus:
    """A language-modelling corpus.

    Attributes:
      train, valid, test: flat id streams, ``int32 [n_tokens]``.
      vocab: the :class:`Vocab` (built from the training split).
      level: ``"word"`` or ``"char"``.
      name: the corpus name given to :func:`load_lm_corpus`.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: Vocab
    level: str
    name: str

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def text_to_tokens(self, text: str) -> list[str]:
        """Turn plain text (e.g. a sampling prompt) into this corpus's tokens.

        Newlines become ``<eos>`` where the vocabulary has it. ``ptb_char`` writes spaces as
        ``_`` like its files.
        """
        lines = text.split("\n")
        eos = [EOS] if EOS in self.vocab else ["\n"]
        out: list[str] = []
        for i, line in enumerate(lines):
            if i:
                out += eos
            if self.level == "word":
                out += line.split()
            elif self.name == "ptb_char":
                out += ["_" if c == " " else c for c in line]
            else:
                out += list(line)
        return out

    def tokens_to_text(self, tokens: list[str]) -> str:
        """Inverse of :meth:`text_to_tokens` (``<eos>`` -> newline)."""
        toks = ["\n" if t == EOS else t for t in tokens]
        if self.level == "word":
            return " ".join(toks).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")
        text = "".join(toks)
        return text.replace("_", " ") if self.name == "ptb_char" else text


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); re-download it with "
                        "'seqjax data fetch'") from None


def _line_tokens(text: str) -> list[str]:
    """Whitespace tokens with one ``<eos>`` per newline.

    A final segment after the last newline counts as a line only if it is not blank
    (``ptb.char.*`` files end with ``"\\n "``; that trailing space is not a sentence).
    """
    if text and not text.endswith("\n") and text.rsplit("\n", 1)[-1].strip():
        text += "\n"
    return text.replace("\n", f" {EOS} ").split()


def load_lm_corpus(name: str, data_dir: str | os.PathLike | None = None,
                   max_tokens: int | None = None) -> LMCorpus:
    """Load a language-modelling corpus.

    Names:
      ``ptb``: word level. Tokens are ``line.split() + ["<eos>"]`` per line; the vocabulary
        is the training split's 10,000 types (``<eos>`` id 0, ``<unk>`` id 1 -- ``<unk>``
        is already a token of the files -- then by frequency). No ``<pad>``, so the size
        stays exactly 10,000. Train/valid/test: 929,589 / 73,760 / 82,430 tokens.
      ``ptb_char`` (alias ``ptb-char``): Mikolov's character files. Each whitespace-separated
        symbol is one token (``_`` is the word boundary; ``< u n k >`` stays five symbols, as
        written), plus one ``<eos>`` per line. Vocabulary: ``<eos>`` + the 49 training
        symbols = 50 (valid/test use no other symbol). No ``<unk>``: unknown characters of
        a prompt are dropped by :meth:`Vocab.encode`.
      ``shakespeare``: tinyshakespeare, raw characters (newline included). Split by position:
        first 90% train, next 5% valid, last 5% test (nanoGPT uses 90/10 train/val and no
        test). Vocabulary: the 65 sorted characters, ids 0..64 as in nanoGPT, then
        ``<unk>`` (id 65).
      ``toy``: :data:`TOY_SENTENCES` joined by newlines, character level, train = valid =
        test; vocabulary: sorted characters then ``<unk>``. Needs no files.

    Args:
      data_dir: data directory (see :func:`seqjax.data.fetch.data_dir`).
      max_tokens: keep only the first ``max_tokens`` ids of each split (tiny presets); the
        vocabulary is still built from the whole training split, so ids match full runs.

    Returns:
      :class:`LMCorpus` with ``int32`` streams.
    """
    if name == "ptb-char":
        name = "ptb_char"
    if name in ("ptb", "ptb_char"):
        folder = require("ptb" if name == "ptb" else "ptb-char", data_dir)
        prefix = "ptb" if name == "ptb" else "ptb.char"
        tokens = {s: _line_tokens(_read(folder / f"{prefix}.{s}.txt")) for s in SPLITS}
        vocab = build_vocab(Counter(tokens["train"]), specials=(EOS, UNK) if name == "ptb" else (EOS,))
        streams = {s: vocab.encode(tokens[s]) for s in SPLITS}
        level = "word" if name == "ptb" else "char"
    elif name in ("shakespeare", "toy"):
        if name == "shakespeare":
            text = _read(require("shakespeare", data_dir) / "input.txt")
            n = len(text)
            parts = {"train": text[: int(0.9 * n)], "valid": text[int(0.9 * n): int(0.95 * n)],
                     "test": text[int(0.95 * n):]}
        else:
            text = "\n".join(TOY_SENTENCES) + "\n"
            parts = dict.fromkeys(SPLITS, text)
        vocab = Vocab(sorted(set(parts["train"])) + [UNK])
        streams = {s: vocab.encode(parts[s]) for s in SPLITS}
        level = "char"
    else:
        raise UsageError(f"unknown language-model corpus {name!r}; "
                         "expected ptb, ptb_char, shakespeare or toy")
    if max_tokens is not None:
        streams = {s: a[:max_tokens] for s, a in streams.items()}
    return LMCorpus(**streams, vocab=vocab, level=level, name=name)


def batchify(ids: np.ndarray, batch_size: int, *, pad: bool = False,
             pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
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
      each input in the stream), ``weights``: ``float32 [B, bptt]`` (1 = a real prediction,
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
            "targets": np.ascontiguousarray(self.rows[:, t0 + 1: t1 + 1]),
            "weights": np.ascontiguousarray(self.mask[:, t0:t1]),
        }

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return (self[k] for k in range(len(self)))


def bptt_windows(ids: np.ndarray, batch_size: int, bptt: int, *, cover_all: bool,
                 pad_id: int = 0) -> LMWindows:
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
            raise UsageError(f"a stream of {len(ids)} tokens is too short for batch_size="
                             f"{batch_size} (each row needs 2 tokens)")
        row_data, row_mask = data, np.ones((batch_size, m), dtype=np.float32)
    num_windows = math.ceil(m / bptt)
    width = num_windows * bptt
    rows = np.full((batch_size, width + 1), pad_id, dtype=np.int32)
    rows[:, : m + 1] = row_data
    mask = np.zeros((batch_size, width), dtype=np.float32)
    mask[:, :m] = row_mask
    return LMWindows(rows, mask, bptt)
