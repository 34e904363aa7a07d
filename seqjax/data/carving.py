"""Carving a missing valid or test split out of train: a deterministic, seeded choice of
rows, or of groups of rows (every translation of one source sentence in one split)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from seqjax.errors import UsageError


def count(size: int | float, total: int, key: str) -> int:
    """``size`` as a number of rows of ``total``: a float in (0, 1) is a fraction (rounded), else a count."""
    n = round(size * total) if isinstance(size, float) and 0 < size < 1 else int(size)
    if n < 0:
        raise UsageError(f"data.{key}={size}: must be >= 0 (a fraction < 1 or a count)")
    return n


def carve(
    n: int, sizes: Mapping[str, int], rng: np.random.Generator, groups: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """Split row indices ``0..n-1`` into train and the missing splits of ``sizes``.

    Rows (or whole groups of rows, ``groups[i]`` = row ``i``'s group id: all rows of a group
    land in one split, e.g. every translation of one source sentence) are taken in the
    order of ``rng.permutation``; the splits of ``sizes`` are filled in the order given,
    each until it holds at least its size, the rest is train. With ``groups=None`` a split
    gets exactly its size. Each split's indices come back sorted when grouped, in the
    permutation's order otherwise.

    Returns:
      ``{"train": int [n_train], <split>: int [n_split], ...}``.
    """
    names = list(sizes)
    if groups is None:
        order = rng.permutation(n)
        out, start = {}, 0
        for s in names:
            out[s] = order[start : start + sizes[s]]
            start += sizes[s]
        out["train"] = order[start:]
    else:
        members: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
        keys = list(members)
        parts: dict[str, list[int]] = {s: [] for s in [*names, "train"]}
        for k in rng.permutation(len(keys)).tolist():
            target = next((s for s in names if len(parts[s]) < sizes[s]), "train")
            parts[target] += members[keys[k]]
        out = {s: np.sort(np.asarray(v, np.int64)) for s, v in parts.items()}
    if len(out["train"]) == 0:
        raise UsageError(
            f"data.valid_fraction / data.test_fraction leave no training rows ({n} rows); "
            "lower them or give data.files.valid / data.files.test"
        )
    return out
