"""Where datasets live, what they contain, and how to download them (checksummed).

Data directory (docs/design.md): ``--data-dir``, else ``$SEQJAX_DATA``, else ``./data``.
Each dataset occupies one folder of it; :data:`DATASETS` lists the files and their sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from seqjax.errors import DataError, UsageError

ENV_VAR = "SEQJAX_DATA"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit``, else ``$SEQJAX_DATA``, else ``./data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("data")


@dataclass(frozen=True)
class Dataset:
    """One registry entry.

    Attributes:
      name: registry name (``seqjax data fetch NAME``).
      files: path relative to the data directory -> sha256 of the file (``None`` where no
        stable checksum is known, e.g. a source that is re-released).
      url: where :func:`fetch` downloads from: the file itself, or an archive.
      members: for archives, relative path -> member name inside the archive. Empty when
        ``url`` is the single file itself.
      urls: per-file URLs when the dataset is several plain files (``url`` unused then).
      note: one line for ``data/README.md`` and ``seqjax data check``.
    """

    name: str
    files: dict[str, str | None]
    url: str = ""
    members: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def folder(self) -> str:
        return next(iter(self.files)).split("/")[0]


_PTB_TGZ = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
_AG_RAW = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "ptb",
            {
                "ptb/ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                "ptb/ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                "ptb/ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            },
            url=_PTB_TGZ,
            members={
                f"ptb/ptb.{s}.txt": f"./simple-examples/data/ptb.{s}.txt" for s in ("train", "valid", "test")
            },
            note="Penn Treebank, Mikolov's word-level LM split (simple-examples.tgz)",
        ),
        Dataset(
            "ptb-char",
            {
                f"ptb_char/ptb.char.{split}.txt": sha
                for split, sha in (
                    ("train", "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9"),
                    ("valid", "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8"),
                    ("test", "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe"),
                )
            },
            url=_PTB_TGZ,
            members={
                f"ptb_char/ptb.char.{s}.txt": f"./simple-examples/data/ptb.char.{s}.txt"
                for s in ("train", "valid", "test")
            },
            note="Penn Treebank, character level (same simple-examples.tgz)",
        ),
        Dataset(
            "shakespeare",
            {"tinyshakespeare/input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
            urls={
                "tinyshakespeare/input.txt": "https://raw.githubusercontent.com/karpathy/char-rnn/"
                "master/data/tinyshakespeare/input.txt"
            },
            note="Tiny Shakespeare (karpathy/char-rnn), 1,115,394 characters",
        ),
        Dataset(
            "ag-news",
            {
                # Full classic train.csv (120,000 rows); torchtext checks md5
                # b1a00f826fdfbd249f79597b59e1dc12. No sha256 is pinned here (the shared offline
                # copy is a 20,000-row subset): fetch records the one of what it downloaded.
                "ag_news/train.csv": None,
                "ag_news/test.csv": "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699",
                "ag_news/classes.txt": "612dbfa932f07a6ed837295a7d5746ce7412e7bb4bc32ba919fdb3cda3a1b9b5",
            },
            urls={f"ag_news/{f}": _AG_RAW + f for f in ("train.csv", "test.csv", "classes.txt")},
            note="AG News classic CSVs (Zhang et al. 2015) as in mhjabreel/CharCnn_Keras",
        ),
        Dataset(
            "tatoeba-por",
            # manythings.org re-releases its files: no stable checksum; fetch records what it got.
            {"por-eng/por.txt": None},
            url="https://www.manythings.org/anki/por-eng.zip",
            members={"por-eng/por.txt": "por.txt"},
            note="Tatoeba English-Portuguese pairs (manythings.org por-eng.zip)",
        ),
        Dataset(
            "tatoeba-spa",
            {"spa-eng/spa.txt": "6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c"},
            # The 2018-05 release (118,964 pairs) that the TensorFlow NMT-with-attention tutorial uses;
            # manythings.org/anki/spa-eng.zip now serves a newer, larger, 3-column release.
            url="https://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
            members={"spa-eng/spa.txt": "spa-eng/spa.txt"},
            note="Tatoeba English-Spanish pairs, 2018-05 release (TensorFlow tutorial copy)",
        ),
    ]
}


def _spec(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def require(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name`` under the data directory ``root`` (resolved with
    :func:`data_dir`), after checking that all its files are present.

    Raises :class:`DataError` naming the first missing file and the fetch command.
    """
    spec = _spec(name)
    root = data_dir(root)
    for rel in spec.files:
        if not (root / rel).is_file():
            present = [n for n, ok, _ in check(root) if ok]
            raise DataError(
                f"{name}: missing {root / rel}; run 'seqjax data fetch {name}' or pass --data-dir / "
                f"set {ENV_VAR} (present in {root}: {', '.join(present) or 'none'})"
            )
    return root / spec.folder


def check(root: str | os.PathLike | None = None) -> list[tuple[str, bool, Path]]:
    """``(name, present, folder)`` for every registered dataset (presence of all its files)."""
    root = data_dir(root)
    return [
        (name, all((root / rel).is_file() for rel in spec.files), root / spec.folder)
        for name, spec in DATASETS.items()
    ]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, name: str, timeout: float = 60.0) -> bytes:
    # manythings.org refuses urllib's default User-Agent.
    request = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0 (seqjax data fetch)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"{name}: cannot download {url} ({reason}); no network? download it by hand "
            f"and place the files as data/README.md describes"
        ) from None


def _extract(blob: bytes, url: str, members: dict[str, str], name: str) -> dict[str, bytes]:
    """Member bytes for each relative path, from a .zip or .tgz archive."""
    out = {}
    try:
        if url.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                for rel, member in members.items():
                    out[rel] = zf.read(member)
        else:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
                names = {m.lstrip("./"): m for m in tf.getnames()}
                for rel, member in members.items():
                    f = tf.extractfile(names[member.lstrip("./")])
                    out[rel] = f.read()
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise DataError(
            f"{name}: {url} is not the expected archive ({err}); "
            "download it by hand as data/README.md describes"
        ) from None
    return out


def fetch(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download dataset ``name`` into the data directory and verify every file's sha256.

    Files already present with the right checksum are kept. Files are written atomically
    (temporary file + rename), so an interrupted fetch leaves nothing half-written.
    Returns the dataset folder. Raises :class:`DataError` (one line) when there is no
    network or a checksum does not match.
    """
    spec = _spec(name)
    root = data_dir(root)
    wanted = {
        rel: h
        for rel, h in spec.files.items()
        if not ((root / rel).is_file() and (h is None or sha256_file(root / rel) == h))
    }
    if not wanted:
        return root / spec.folder
    if spec.urls:
        contents = {rel: _download(spec.urls[rel], name) for rel in wanted}
    else:
        blob = _download(spec.url, name)
        contents = _extract(blob, spec.url, {rel: spec.members[rel] for rel in wanted}, name)
    for rel, data in contents.items():
        expected = spec.files[rel]
        got = hashlib.sha256(data).hexdigest()
        if expected is not None and got != expected:
            raise DataError(
                f"{name}: checksum mismatch for {rel} (sha256 {got}, expected "
                f"{expected}); the source changed or the download is corrupt"
            )
    for rel, data in contents.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            tmp.write(data)
        shutil.move(tmp.name, dest)
        if spec.files[rel] is None:  # unversioned source: record what was fetched, next to it
            record_checksum(dest, hashlib.sha256(data).hexdigest(), spec.urls.get(rel) or spec.url)
    return root / spec.folder


def record_checksum(path: Path, sha256: str, url: str) -> Path:
    """Write ``<file>.sha256`` (``sha256sum`` format plus the source URL in a comment) for a
    file whose source publishes no stable checksum; :func:`verify` checks against it later."""
    out = path.with_name(path.name + ".sha256")
    out.write_text(f"# fetched from {url}\n{sha256}  {path.name}\n", encoding="utf-8")
    return out


def verify(name: str, root: str | os.PathLike | None = None) -> dict[str, str]:
    """``{relative path: "ok" | "changed" | "unpinned"}`` of dataset ``name``'s present files:
    checked against the pinned sha256, else against the ``.sha256`` recorded at fetch time."""
    spec, root = _spec(name), data_dir(root)
    out = {}
    for rel, expected in spec.files.items():
        path = root / rel
        if not path.is_file():
            continue
        record = path.with_name(path.name + ".sha256")
        if expected is None and record.is_file():
            lines = [
                ln for ln in record.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")
            ]
            expected = lines[0].split()[0] if lines else None
        out[rel] = "unpinned" if expected is None else ("ok" if sha256_file(path) == expected else "changed")
    return out
