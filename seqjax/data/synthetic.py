"""Generated data sources (no files): their registry and the built-in ones.

A generated source is a function ``fn(data, seed) -> {split: datasets.Dataset}`` registered
under a ``data.source`` name with :func:`register_generated` (:data:`GENERATED`);
``seqjax.data.sources.load_splits`` calls it. This module is the registry's base: it imports
no other data module, so a module that defines a source can import both.

``toy`` (:func:`toy_rows`): :data:`TOY_SENTENCES` as one text document, for the language model.

``synthetic`` (:func:`synthetic_rows`): seq2seq problems on digit strings.
``data.problem``: ``copy`` (``"3141" -> "3141"``), ``reverse`` (``"3141" -> "1413"``) or
``addition`` (``"314+27" -> "341"``). Operands have ``data.min_digits..data.digits`` digits;
``data.n_train`` training and ``data.n_eval`` valid and test rows each, drawn from a
generator seeded with ``seed``. Rows are ``source``/``target`` strings, read by the
translate task at character level like any other pair file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from seqjax.errors import UsageError

SPLITS = ("train", "valid", "test")
PROBLEMS = ("copy", "reverse", "addition")

#: generated sources: ``data.source`` name -> ``fn(data, seed) -> {split: datasets.Dataset}``
GENERATED: dict[str, Callable[[Mapping[str, Any], int], dict]] = {}


def register_generated(name: str):
    """Decorator: register a generated source under ``data.source=name``."""

    def add(fn):
        GENERATED[name] = fn
        return fn

    return add


# The built-in toy corpus (written for seqjax): a character model learns to complete these
# sentences from a prefix within a few hundred steps on a CPU.
TOY_SENTENCES = (
    "a small red kite drifts above the quiet harbour.",
    "seven grey cats sleep under the warm bakery window.",
    "the old clock tower rings twice before the morning train.",
    "bright lanterns sway along the narrow river path at dusk.",
)


@register_generated("toy")
def toy_rows(data, seed: int) -> dict:
    """:data:`TOY_SENTENCES` as one document, the same text in train, valid and test."""
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["\n".join(TOY_SENTENCES) + "\n"]})
    return dict.fromkeys(SPLITS, ds)


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


@register_generated("synthetic")
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
