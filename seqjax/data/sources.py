"""One data mechanism for every task: rows of named columns read through HF ``datasets``.

``data.source`` (docs/design.md, documented in seqjax/config.py SCHEMA) says where rows come from:

- a built-in corpus (:data:`CORPORA`: ``ptb``, ``ptb_char``, ``shakespeare``, ``ag_news``,
  ``tatoeba``): a named preset of this mechanism -- a builder, files relative to the data
  directory, its columns and a few loader options -- not a separate code path;
- a ``datasets`` builder for local files: ``text``, ``csv`` (TSV: ``data.delimiter``),
  ``json`` (JSON lines too), ``parquet``, with ``data.files.{train,valid,test}`` (paths or
  globs) handed to ``load_dataset(builder, data_files=...)``;
- ``disk``: a ``save_to_disk`` directory in ``data.files.train`` (a ``DatasetDict`` with
  ``train``/``validation``/``test``, or one ``Dataset`` used as train);
- ``hub:NAME`` or ``hub:NAME/CONFIG``: ``load_dataset(NAME, CONFIG)`` (needs the network);
- a generated source (:data:`GENERATED`: ``toy``, ``synthetic``), no files;
- ``npz`` (sequence basics): read by :func:`load_arrays`, not by this module's row loaders.

:func:`load_splits` returns one ``datasets.Dataset`` (or ``None``) per split; a missing
valid/test split is carved from train by the task with :func:`carve` (a deterministic,
seeded choice of rows, or of groups of rows). Every failure a user can fix is one
:class:`~seqjax.errors.DataError` line naming the file, row, key or column.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqjax.data.fetch import data_dir as resolve_data_dir
from seqjax.data.fetch import require
from seqjax.data.synthetic import GENERATED, register_generated  # noqa: F401  (re-exported)
from seqjax.errors import DataError, UsageError

SPLITS = ("train", "valid", "test")
#: local-file builders of ``datasets`` (TSV is ``csv`` with ``data.delimiter``)
BUILDERS = ("text", "csv", "json", "parquet")
#: the split names of ``datasets`` for ours (the Hub and ``save_to_disk`` say ``validation``)
HF_SPLIT = {"train": "train", "valid": "validation", "test": "test"}
LOCAL_KEYS = (
    "--set data.source=csv|json|text|parquet --set data.files.train=PATH "
    "[--set data.files.valid=PATH --set data.files.test=PATH]"
)

log = logging.getLogger("seqjax.data")
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


def _generated(name: str):
    """The generated source ``name`` (``seqjax.data.synthetic.GENERATED``), or None."""
    return GENERATED.get(name)


@dataclasses.dataclass
class Splits:
    """Rows of one data source.

    Attributes:
      rows: split -> ``datasets.Dataset`` (``None``: not given; carve it from train).
      where: split -> what to name in messages (``data.files.valid (path)``, ``hub:x``, ...).
      columns: the column keys in effect (the corpus's, else the config's).
      extras: the corpus's loader options (empty for user files).
      whole_files: each row is one file's whole text (the ``text`` builder, generated text);
        otherwise each row is one line of text.
    """

    rows: dict[str, Any]
    where: dict[str, str]
    columns: dict[str, str]
    extras: dict[str, Any]
    whole_files: bool = False

    def column(self, split: str, key: str) -> list:
        """The values of column ``self.columns[key]`` (comma-separated names: the columns'
        values joined by a space) in ``split``, as Python objects."""
        ds = self.rows[split]
        names = [c.strip() for c in str(self.columns[key]).split(",")]
        missing = [c for c in names if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{self.where[split]}: no column {missing[0]!r} (columns found: "
                f"{', '.join(ds.column_names)}); set data.{key}=NAME"
            )
        table = ds.data  # the Arrow table: column access without per-row formatting
        cols = [table.column(c).to_pylist() for c in names]
        if len(cols) == 1:
            return cols[0]
        return [" ".join("" if v is None else str(v) for v in vals) for vals in zip(*cols)]


# ----------------------------------------------------------------------------- loading


def _hf_cache_dir() -> str | None:
    """HF datasets cache: ``$HF_DATASETS_CACHE`` if set, else a folder in the temp dir (never
    the data directory: it may be a shared, read-only copy)."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return None
    return os.path.join(tempfile.gettempdir(), "seqjax-hf-cache")


@contextlib.contextmanager
def _quiet():
    """``datasets`` without progress bars or info logs for the duration of a load."""
    import datasets

    bars_were_off = datasets.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors become our one line
    try:
        yield datasets
    finally:
        datasets.logging.set_verbosity(verbosity)
        if not bars_were_off:
            datasets.enable_progress_bars()


def _expand(key: str, pattern: str) -> list[str]:
    """Files of ``data.files.<split>`` (comma-separated paths or globs), each checked to exist."""
    out = []
    for part in (p.strip() for p in str(pattern).split(",")):
        found = (
            sorted(glob.glob(os.path.expanduser(part)))
            if glob.has_magic(part)
            else [os.path.expanduser(part)]
        )
        if not found or not all(os.path.isfile(f) for f in found):
            bad = next((f for f in found if not os.path.isfile(f)), part)
            if os.path.isdir(bad):
                raise DataError(f"data.files.{key}={pattern}: {bad} is a directory, not a file; give its "
                                f"files (a glob such as {os.path.join(bad, '*.csv')}) or, for a save_to_disk "
                                "directory, data.source=disk")
            raise DataError(f"data.files.{key}={pattern}: no such file {bad}; check the path (globs allowed)")
        for f in found:
            if os.path.getsize(f) == 0:
                raise DataError(f"data.files.{key}: {f} is empty; it needs at least one row")
        out += found
    return out


def absolute_files(cfg) -> None:
    """Make ``cfg.data.files.*`` absolute (``~`` expanded; globs and comma-separated lists
    kept), so the run's ``config.json`` names its data from any working directory: every
    inference command then works wherever it runs. The paths as given stay in the command
    line the run directory records."""
    files = cfg.data.get("files") if "data" in cfg else None
    if not files:
        return
    for key in list(files.keys()):
        value = files[key]
        if isinstance(value, str) and value.strip():
            parts = [os.path.abspath(os.path.expanduser(x.strip())) for x in value.split(",") if x.strip()]
            with cfg.unlocked() if hasattr(cfg, "unlocked") else contextlib.nullcontext():
                files[key] = ",".join(parts)


def _bad_bytes(files: Sequence[str]) -> str | None:
    """``"FILE:ROW"`` of the first byte sequence that is not UTF-8 in ``files``, else ``None``."""
    for f in files:
        raw = Path(f).read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            row = raw.count(b"\n", 0, err.start) + 1
            return f"{f}:{row} (byte {err.start})"
    return None


def _cause(err: BaseException, kind: type) -> BaseException | None:
    while err is not None:
        if isinstance(err, kind):
            return err
        err = err.__cause__ or err.__context__
    return None


def _load_files(builder: str, files: list[str], options: Mapping[str, Any], what: str):
    """The rows of ``files``: ``load_dataset(builder, data_files=files, split="train", **options)``
    (``datasets`` caches the result), with one-line errors."""
    with _quiet() as datasets:
        try:
            return datasets.load_dataset(
                builder, data_files=files, split="train", cache_dir=_hf_cache_dir(), **options
            )
        except Exception as err:  # noqa: BLE001 -- the builders raise many kinds; one line each
            all_files = files
            if _cause(err, UnicodeDecodeError) is not None:
                where = _bad_bytes(all_files) or ", ".join(all_files)
                raise DataError(
                    f"{where}: not UTF-8 text; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                ) from None
            while err.__cause__ is not None:  # the builder's own error, not the wrapper's
                err = err.__cause__
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if "corresponds to no data" in first:  # `datasets` on files without a row (a header only)
                raise DataError(f"{what} ({', '.join(all_files)}): no rows (a header only?); "
                                "it needs at least one row") from None
            raise DataError(
                f"{what} ({', '.join(all_files)}): cannot read it as {builder} ({first[:200]}); "
                "check data.source and the file format"
            ) from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host answers a TCP connection within ``timeout`` seconds (without
    it, ``datasets`` retries every request with back-off: half a minute of retry lines)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """``datasets`` and ``huggingface_hub`` in offline mode (cached datasets only) while
    ``offline``; ``HF_HUB_OFFLINE=1`` sets it for the whole process."""
    import datasets
    from huggingface_hub import constants

    before = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    if offline:
        datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = before


def _load_hub(name: str) -> dict[str, Any]:
    """``NAME``, ``NAME/CONFIG``, ``OWNER/NAME`` or ``OWNER/NAME/CONFIG``: one slash is first
    tried as a repository id, then as ``NAME/CONFIG``. Without a connection to the Hub only
    a copy in the ``datasets`` cache loads (offline mode: one quick line otherwise)."""
    if name.count("/") >= 2:
        attempts = [tuple(name.rsplit("/", 1))]
    elif "/" in name:
        attempts = [(name, None), tuple(name.split("/"))]
    else:
        attempts = [(name, None)]
    first_error = None
    import datasets

    offline = datasets.config.HF_HUB_OFFLINE or not _hub_reachable()
    with _quiet() as datasets, _hub_offline(offline):
        for repo, config in attempts:
            try:
                dd = datasets.load_dataset(repo, config or None, cache_dir=_hf_cache_dir())
                return {s: dd[h] if h in dd else None for s, h in HF_SPLIT.items()}
            except Exception as err:  # noqa: BLE001 -- offline, unknown name, gated: one line
                first_error = first_error or (str(err).strip().splitlines() or [type(err).__name__])[0]
    if offline:
        raise DataError(f"data.source=hub:{name}: the Hugging Face Hub cannot be reached (offline) and no "
                        "copy is in the datasets cache; go online once, or train on local files: "
                        f"{LOCAL_KEYS}")
    raise DataError(
        f"data.source=hub:{name}: cannot load it from the Hugging Face Hub ({first_error[:160]}); "
        f"offline, train on local files instead: {LOCAL_KEYS}"
    )


def _load_disk(path: str) -> dict[str, Any]:
    if not path or not os.path.isdir(path):
        raise DataError(
            f"data.source=disk: data.files.train={path!r} is not a directory written by "
            "Dataset.save_to_disk; set data.files.train=DIR"
        )
    with _quiet() as datasets:
        try:
            obj = datasets.load_from_disk(path)
        except Exception as err:  # noqa: BLE001
            raise DataError(
                f"{path}: not a save_to_disk directory ({err}); set data.files.train=DIR"
            ) from None
    if isinstance(obj, datasets.DatasetDict):
        return {s: obj[h] if h in obj else obj.get(s) for s, h in HF_SPLIT.items()}
    return {"train": obj, "valid": None, "test": None}


def load_splits(data: Mapping[str, Any], data_dir: str | os.PathLike | None = None, seed: int = 0) -> Splits:
    """The rows of ``data.source`` per split (``None`` where a split is not given).

    ``data`` is the ``data`` block of a config (``source``, ``files``, the column keys,
    ``delimiter``, ``pair``). Raises :class:`DataError` for a missing, empty, unreadable or
    non-UTF-8 file, a missing built-in corpus, a Hub name without network, or a train split
    without rows.
    """
    source = str(data["source"])
    columns = {k: data.get(k) or v for k, v in COLUMNS.items()}
    extras: dict[str, Any] = {}
    files_cfg = data.get("files", {}) or {}
    whole = source == "text" or _generated(source) is not None
    if source.startswith("hub:"):
        rows = _load_hub(source[4:])
        where = {s: f"hub:{source[4:]} ({HF_SPLIT[s]})" for s in SPLITS}
    elif source == "disk":
        rows = _load_disk(str(files_cfg.get("train", "")))
        where = {s: f"{files_cfg.get('train')} ({HF_SPLIT[s]})" for s in SPLITS}
    elif _generated(source) is not None:
        rows = {s: None for s in SPLITS} | GENERATED[source](data, seed)
        where = {s: f"data.source={source} ({s})" for s in SPLITS}
    elif source in BUILDERS:
        given = {s: str(files_cfg.get(s) or "") for s in SPLITS}
        if not given["train"]:
            raise UsageError(
                f"data.source={source} needs data.files.train=PATH (and optionally "
                "data.files.valid / data.files.test)"
            )
        files = {s: _expand(s, p) for s, p in given.items() if p}
        options: dict[str, Any] = {}
        if source == "csv" and data.get("delimiter"):
            options["delimiter"] = "\t" if data["delimiter"] in ("\t", "\\t", "tab") else data["delimiter"]
            if options["delimiter"] == "\t":
                options["quoting"] = 3  # TSV: quotes are text (csv.QUOTE_NONE)
        if source == "csv":
            options["keep_default_na"] = False  # "NA", "null", "None" are words, not missing values
            if data.get("on_error") == "skip":
                options["on_bad_lines"] = "skip"
        if source == "text":
            options["sample_by"] = "document"  # a row per file: line breaks are the LM's <eos>
        rows = {
            s: _load_files(source, files[s], options, f"data.files.{s}") if s in files else None
            for s in SPLITS
        }
        where = {
            s: f"data.files.{s} ({', '.join(files[s])})" if s in files else f"data.files.{s}" for s in SPLITS
        }
    else:
        name = corpus_name(data)
        if name not in CORPORA:
            known = [*CORPORA, *GENERATED, *BUILDERS, "disk", "hub:NAME[/CONFIG]", "npz"]
            raise UsageError(
                f"data.source={source!r}: choose a built-in corpus, a builder or a source: "
                f"{', '.join(k for k in known if not k.startswith('tatoeba/'))}, tatoeba"
            )
        corpus = CORPORA[name]
        root = resolve_data_dir(data_dir)
        try:
            require(corpus.fetch, root)
        except DataError as err:
            others = [
                k.split("/")[1]
                for k, c in CORPORA.items()
                if k.startswith("tatoeba/")
                and k != name
                and all((root / rel).is_file() for rel in c.files.values())
            ]
            if name.startswith("tatoeba/") and others:
                raise DataError(f"{err}; or train on a present pair: --set data.pair={others[0]}") from None
            raise
        options = dict(corpus.options)
        if corpus.builder == "csv" and data.get("on_error") == "skip":
            options["on_bad_lines"] = "skip"
        rows = {
            s: _load_files(corpus.builder, [str(root / corpus.files[s])], options, f"data.source={source}")
            if s in corpus.files
            else None
            for s in SPLITS
        }
        where = {s: str(root / corpus.files[s]) if s in corpus.files else f"{source} ({s})" for s in SPLITS}
        columns.update(corpus.columns)
        extras = {**corpus.extras, "root": root}
        whole = corpus.options.get("sample_by") == "document"
    if rows.get("train") is None:
        raise DataError(f"{where['train']}: no train split; set data.files.train=PATH")
    for s, ds in rows.items():
        if ds is not None and len(ds) == 0:
            raise DataError(f"{where[s]}: no rows; it needs at least one")
    return Splits(rows, where, columns, extras, whole)


# ----------------------------------------------------------------------------- carve-out


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


# ----------------------------------------------------------------------------- arrays


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


def truncation_warning(where: str, lengths: np.ndarray, max_len: int, unit: str = "tokens") -> None:
    """One warning line when rows of ``where`` are longer than ``max_len`` (they get truncated)."""
    over = int((np.asarray(lengths) > max_len).sum())
    if over:
        log.warning(
            f"warning: {where}: {over} of {len(lengths)} rows are longer than data.max_len={max_len} "
            f"{unit}; truncated"
        )
