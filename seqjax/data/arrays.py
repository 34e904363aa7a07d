"""Sequence basics as arrays (``x [N, T, D]``, ``y [N]``, optional ``lengths [N]``): from
``.npz`` files (``data.source=npz``) or the array columns of any other source, a missing
split carved from train, and the check that integer labels are class ids."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqjax.data.carving import carve, count
from seqjax.data.corpora import SPLITS
from seqjax.data.sources import load_splits
from seqjax.errors import DataError, UsageError


def load_arrays(path: str, key: str) -> dict[str, np.ndarray]:
    """Sequence basics from ``.npz``: ``x`` float ``[N, T, D]``, ``y`` ``[N]`` (int labels or
    float targets) and optional ``lengths`` int ``[N]`` (default: ``T`` for every row)."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        raise DataError(f"data.files.{key}={path}: a directory, not a file; "
                        "give an .npz file with x [N, T, D], y [N]")
    if not os.path.isfile(path):
        raise DataError(f"data.files.{key}={path}: no such file; give an .npz with x [N, T, D], y [N]")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001 -- zip/format errors of a corrupt file
        raise DataError(f"{path}: not an .npz file ({err}); write it with numpy.savez") from None
    return _check_arrays(arrays, path, "arrays")


def _check_arrays(arrays: dict, where: str, kind: str) -> dict[str, np.ndarray]:
    """``x`` ``[N, T, D]`` float32 (``[N, T]`` gets ``D = 1``), ``y`` ``[N]``, ``lengths`` ``[N]``."""
    for name in ("x", "y"):
        if name not in arrays:
            raise DataError(
                f"{where}: no {kind[:-1]} {name!r} ({kind} found: {', '.join(arrays) or 'none'}); "
                "expected x [N, T, D], y [N], optional lengths [N]"
            )
    x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    for name, a in (("x", x), ("y", y)):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise DataError(f"{where}: {kind[:-1]} {name!r} holds {a.dtype} values, not numbers; "
                            "expected float x [N, T, D] and int (classes) or float (targets) y [N]")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or y.shape != (x.shape[0],):
        raise DataError(f"{where}: x {x.shape} and y {y.shape}: expected x [N, T, D] and y [N]")
    if len(y) == 0:
        raise DataError(f"{where}: no rows (N = 0)")
    lengths = np.asarray(arrays["lengths"]) if "lengths" in arrays else np.full(len(y), x.shape[1])
    if lengths.shape != y.shape or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise DataError(
            f"{where}: lengths must be [N] ints in 1..{x.shape[1]} (T), got shape {lengths.shape}"
        )
    return {"x": x.astype(np.float32), "y": y, "lengths": lengths.astype(np.int32)}


def load_sequences(
    data: Mapping[str, Any], data_dir: str | os.PathLike | None = None, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """``{split: {"x", "y", "lengths"}}``: the ``.npz`` files of ``data.files``
    (``data.source=npz``), or the array columns ``x`` (``[T, D]`` or ``[T]`` per row, every
    row of one length), ``y`` and optional ``lengths`` of any other source (e.g. ``disk``,
    ``parquet``). A missing valid/test split is carved from train (seeded rows,
    ``data.valid_fraction`` / ``data.test_fraction``). ``data.max_examples`` caps train."""
    files = data.get("files", {}) or {}
    if data.get("source") == "npz":
        if not files.get("train"):
            raise UsageError(
                "data.source=npz needs data.files.train=PATH.npz (x [N, T, D], y [N], optional lengths)"
            )
        out = {s: load_arrays(files[s], s) for s in SPLITS if files.get(s)}
        where = str(files["train"])
    else:
        splits = load_splits(data, data_dir, seed)
        out = {}
        for s, ds in splits.rows.items():
            if ds is not None:
                cols = {
                    c: ds.data.column(c).to_pylist() for c in ("x", "y", "lengths") if c in ds.column_names
                }
                try:
                    out[s] = _check_arrays(cols, splits.where[s], "columns")
                except ValueError as err:  # ragged rows
                    raise DataError(
                        f"{splits.where[s]}: column x is not one [T, D] array a row ({err})"
                    ) from None
        where = splits.where["train"]
    for s, arrays in out.items():
        named = f"data.files.{s} ({files[s]})" if data.get("source") == "npz" else splits.where[s]
        check_class_ids(arrays["y"], named, data.get("num_classes", 0) or 0)
    missing = [s for s in ("valid", "test") if s not in out]
    n = len(out["train"]["y"])
    sizes = {s: count(data.get(f"{s}_fraction", 0.1), n, f"{s}_fraction") for s in missing}
    idx = carve(n, sizes, np.random.default_rng(seed))
    for s in missing:
        if len(idx[s]) == 0:
            raise DataError(
                f"{where}: data.{s}_fraction={data.get(f'{s}_fraction')} carves an empty "
                f"{s} split from {n} rows; raise it or give data.files.{s}"
            )
    train = out["train"]
    for s in missing:
        out[s] = {k: a[np.sort(idx[s])] for k, a in train.items()}
    keep = np.sort(idx["train"])[: data.get("max_examples") or None]
    out["train"] = {k: a[keep] for k, a in train.items()}
    return out


#: integer labels may leave some classes out, not most: ``max(y) + 1`` classes are built, so
#: a label above this many times the number of distinct labels (plus 8) is refused unless
#: ``data.num_classes`` says how many classes there are
SPARSE_LABELS = 2


def check_class_ids(y: np.ndarray, where: str, num_classes: int = 0) -> None:
    """Integer labels ``y [N]`` must be class ids: ``0..num_classes-1`` when that is given,
    else ``>= 0`` and not far beyond the distinct labels (``0`` and ``100000`` would build a
    100,001-way output). One :class:`DataError` line with the file and row otherwise; float
    labels (regression targets) pass."""
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool) or len(y) == 0:
        return
    y = y.astype(np.int64)
    top, distinct = int(y.max()), len(np.unique(y))
    limit = num_classes or max(top + 1, 1)
    if num_classes == 0 and top + 1 > SPARSE_LABELS * distinct + 8:
        row = int(np.argmax(y))
        raise DataError(
            f"{where}: row {row + 1}: label y={top} is far outside the range of the {distinct} distinct "
            f"labels (classes are 0..max(y): a {top + 1}-way output); relabel them 0..{distinct - 1} "
            f"or set data.num_classes={top + 1}")
    bad = np.flatnonzero((y < 0) | (y >= limit))
    if len(bad):
        raise DataError(f"{where}: row {bad[0] + 1}: label y={y[bad[0]]} is not a class id in "
                        f"0..{limit - 1}; fix the row" + (" or data.num_classes" if num_classes else ""))
