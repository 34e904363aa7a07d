"""Generated seq2seq problems on digit strings (``data.source=synthetic``): no files.

``data.problem``: ``copy`` (``"3141" -> "3141"``), ``reverse`` (``"3141" -> "1413"``) or
``addition`` (``"314+27" -> "341"``). Operands have ``data.min_digits..data.digits`` digits;
``data.n_train`` training and ``data.n_eval`` valid and test rows each, drawn from a
generator seeded with ``seed``. Rows are ``source``/``target`` strings, read by the
translate task at character level like any other pair file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqjax.data import sources
from seqjax.errors import UsageError

PROBLEMS = ("copy", "reverse", "addition")


def _digits(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[str]:
    lengths = rng.integers(lo, hi + 1, size=n)
    return ["".join(map(str, rng.integers(0, 10, size=k))) for k in lengths]


def make_pairs(
    problem: str, n: int, min_digits: int, digits: int, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """``n`` (source, target) strings of ``problem``; addition operands carry no leading zeros."""
    if problem not in PROBLEMS:
        raise UsageError(f"data.problem={problem!r}: choose one of {', '.join(PROBLEMS)}")
    if not 1 <= min_digits <= digits:
        raise UsageError(
            f"data.min_digits={min_digits}, data.digits={digits}: need 1 <= min_digits <= digits"
        )
    if problem == "addition":
        a, b = (_digits(rng, n, min_digits, digits) for _ in range(2))
        a, b = [str(int(x)) for x in a], [str(int(x)) for x in b]
        return [f"{x}+{y}" for x, y in zip(a, b)], [str(int(x) + int(y)) for x, y in zip(a, b)]
    src = _digits(rng, n, min_digits, digits)
    return src, (src if problem == "copy" else [s[::-1] for s in src])


@sources.register_generated("synthetic")
def synthetic_rows(data: Mapping[str, Any], seed: int) -> dict:
    """``{split: Dataset(source, target)}`` of ``data.problem``."""
    import datasets

    rng = np.random.default_rng([seed, 16])
    sizes = {"train": int(data["n_train"]), "valid": int(data["n_eval"]), "test": int(data["n_eval"])}
    out = {}
    for split, n in sizes.items():
        src, tgt = make_pairs(data["problem"], n, int(data["min_digits"]), int(data["digits"]), rng)
        out[split] = datasets.Dataset.from_dict({"source": src, "target": tgt})
    return out
