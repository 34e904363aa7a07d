"""Token vocabularies: a list of strings and its inverse map.

Special tokens are recognised by name: ``<pad>``, ``<unk>``, ``<sos>``, ``<eos>``.
A vocabulary without one of them has ``None`` as that id (the PTB word vocabulary,
for instance, has ``<unk>`` and ``<eos>`` but no ``<pad>``, so that its size is
exactly the classic 10,000).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat
from pathlib import Path

import numpy as np

from seqjax.errors import DataError, UsageError

PAD, UNK, SOS, EOS = "<pad>", "<unk>", "<sos>", "<eos>"


class Vocab:
    """An ordered list of token strings; a token's id is its position.

    Attributes:
      itos: ``list[str]``, id -> token.
      stoi: ``dict[str, int]``, token -> id.
      pad_id, unk_id, sos_id, eos_id: ids of ``<pad>``, ``<unk>``, ``<sos>``, ``<eos>``,
        or ``None`` where the vocabulary lacks that token.
    """

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = next(t for t in self.itos if self.itos.count(t) > 1)
            raise UsageError(f"vocabulary has the token {dup!r} twice")
        self.pad_id = self.stoi.get(PAD)
        self.unk_id = self.stoi.get(UNK)
        self.sos_id = self.stoi.get(SOS)
        self.eos_id = self.stoi.get(EOS)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.itos[:6])
        return f"Vocab(size={len(self)}, [{head}{', ...' if len(self) > 6 else ''}])"

    def encode(self, tokens: Iterable[str], *, on_unknown: str = "map") -> np.ndarray:
        """Tokens -> ids, ``int32 [len]``. Never raises ``KeyError``.

        ``on_unknown`` says what happens to a token not in the vocabulary:
          ``"map"`` (default): ``<unk>`` where the vocabulary has one, else dropped;
          ``"drop"``: dropped; ``"error"``: :class:`UsageError` naming the token.
        """
        stoi = self.stoi
        if on_unknown == "map" and self.unk_id is not None:
            return np.array(list(map(stoi.get, tokens, repeat(self.unk_id))), dtype=np.int32)
        if on_unknown in ("map", "drop"):
            return np.array([stoi[t] for t in tokens if t in stoi], dtype=np.int32)
        if on_unknown == "error":
            ids = []
            for t in tokens:
                if t not in stoi:
                    raise UsageError(f"token {t!r} is not in the vocabulary ({len(self)} tokens)")
                ids.append(stoi[t])
            return np.asarray(ids, dtype=np.int32)
        raise UsageError(f"on_unknown={on_unknown!r}; expected 'map', 'drop' or 'error'")

    def encode_many(self, token_lists: Iterable[Sequence[str]], *,
                    on_unknown: str = "map") -> list[np.ndarray]:
        """:meth:`encode` each list: a list of ``int32 [len_i]`` arrays. Much faster than a
        loop of ``encode`` calls for many short sequences (one lookup pass, then a split)."""
        token_lists = list(token_lists)
        if on_unknown != "map" or self.unk_id is None:
            return [self.encode(t, on_unknown=on_unknown) for t in token_lists]
        ids = self.encode(chain.from_iterable(token_lists))
        return np.split(ids, np.cumsum([len(t) for t in token_lists])[:-1]) if token_lists else []

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = False,
               skip_specials: Sequence[str] = ()) -> list[str]:
        """Ids -> tokens. ``stop_at_eos``: end before the first ``<eos>``.

        ``skip_specials``: token names left out of the result (e.g. ``("<pad>", "<sos>")``).
        """
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if stop_at_eos and i == self.eos_id:
                break
            tok = self.itos[i]
            if tok not in skip_specials:
                out.append(tok)
        return out

    def to_json(self) -> dict:
        """A JSON-serialisable dict ``{"itos": [...]}`` (embed it in other JSON files)."""
        return {"itos": list(self.itos)}

    @classmethod
    def from_json(cls, obj: dict | str) -> Vocab:
        """Inverse of :meth:`to_json`; accepts the dict or its JSON text."""
        if isinstance(obj, str):
            obj = json.loads(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("itos"), list):
            raise DataError("vocabulary JSON must be an object with a list 'itos'")
        return cls(obj["itos"])

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (UTF-8) to ``path``."""
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"missing vocabulary file {path}; was the run directory written by "
                            "'seqjax train'?") from None
        try:
            return cls.from_json(text)
        except (json.JSONDecodeError, DataError) as err:
            raise DataError(f"{path}: not a seqjax vocabulary ({err})") from None


def build_vocab(tokens: Mapping[str, int] | Iterable[Iterable[str]], max_size: int | None = None,
                min_freq: int = 1, specials: Sequence[str] = (PAD, UNK)) -> Vocab:
    """Build a vocabulary from token counts or from token lists.

    Order (deterministic): ``specials`` first, in the given order, then the other tokens by
    frequency, descending, ties alphabetical. Tokens rarer than ``min_freq`` are left out.
    ``max_size`` caps the total size, specials included. A special that also occurs in the
    data (e.g. ``<unk>`` in PTB) keeps its special position and is not counted twice.

    Args:
      tokens: a ``Counter``/mapping token -> count, or an iterable of token lists.
    """
    if isinstance(tokens, Mapping):
        counts = tokens
    else:
        counts = Counter()
        for seq in tokens:
            counts.update(seq)
    if max_size is not None and max_size < len(specials):
        raise UsageError(f"max_size={max_size} is smaller than the {len(specials)} special tokens")
    special_set = set(specials)
    rest = sorted((t for t, c in counts.items() if c >= min_freq and t not in special_set),
                  key=lambda t: (-counts[t], t))
    if max_size is not None:
        rest = rest[: max_size - len(specials)]
    return Vocab(list(specials) + rest)
