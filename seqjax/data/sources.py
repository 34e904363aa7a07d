"""One data mechanism for every task: rows of named columns read through HF ``datasets``.

``data.source`` (docs/design.md, documented in seqjax/config.py SCHEMA) says where rows come from:

- a built-in corpus (seqjax/data/corpora.py: ``ptb``, ``ptb_char``, ``shakespeare``, ``ag_news``,
  ``tatoeba``): a named preset of this mechanism -- a builder, files relative to the data
  directory, its columns and a few loader options -- not a separate code path;
- a ``datasets`` builder for local files: ``text``, ``csv`` (TSV: ``data.delimiter``),
  ``json`` (JSON lines too), ``parquet``, with ``data.files.{train,valid,test}`` (paths or
  globs) handed to ``load_dataset(builder, data_files=...)``;
- ``disk``: a ``save_to_disk`` directory in ``data.files.train`` (a ``DatasetDict`` with
  ``train``/``validation``/``test``, or one ``Dataset`` used as train);
- ``hub:NAME`` or ``hub:NAME/CONFIG``: ``load_dataset(NAME, CONFIG)`` (needs the network);
- a generated source (:data:`GENERATED`: ``toy``, ``synthetic``), no files;
- ``npz`` (sequence basics): read by seqjax/data/arrays.py, not by this module's row loaders.

:func:`load_splits` returns one ``datasets.Dataset`` (or ``None``) per split; a missing
valid/test split is carved from train by the task (seqjax/data/carving.py: a deterministic,
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

from seqjax.data.corpora import BUILDERS, COLUMNS, CORPORA, HF_SPLIT, LOCAL_KEYS, SPLITS, corpus_name
from seqjax.data.fetch import data_dir as resolve_data_dir
from seqjax.data.fetch import require
from seqjax.data.synthetic import GENERATED, register_generated  # noqa: F401  (re-exported)
from seqjax.errors import DataError, UsageError

log = logging.getLogger("seqjax.data")


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


def truncation_warning(where: str, lengths: np.ndarray, max_len: int, unit: str = "tokens") -> None:
    """One warning line when rows of ``where`` are longer than ``max_len`` (they get truncated)."""
    over = int((np.asarray(lengths) > max_len).sum())
    if over:
        log.warning(
            f"warning: {where}: {over} of {len(lengths)} rows are longer than data.max_len={max_len} "
            f"{unit}; truncated"
        )
