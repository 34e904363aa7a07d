"""Data directory resolution, require/check messages, fetch with a mocked network."""

import hashlib
import io
import os
import tarfile
import urllib.error
from pathlib import Path

import pytest

from seqjax.data import fetch as fetch_mod
from seqjax.data.fetch import DATASETS, Dataset, check, data_dir, fetch, require, sha256_file
from seqjax.errors import DataError, UsageError


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQJAX_DATA", str(tmp_path / "env"))
    assert data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("SEQJAX_DATA")
    assert data_dir() == Path("data")


def test_registry_layout():
    assert set(DATASETS) == {"ptb", "ptb-char", "shakespeare", "ag-news", "tatoeba-por", "tatoeba-spa"}
    files = {f for d in DATASETS.values() for f in d.files}
    assert {
        "ptb/ptb.train.txt",
        "ptb_char/ptb.char.test.txt",
        "ag_news/train.csv",
        "ag_news/test.csv",
        "por-eng/por.txt",
        "spa-eng/spa.txt",
        "tinyshakespeare/input.txt",
    } <= files
    for d in DATASETS.values():
        assert d.url or set(d.urls) == set(d.files)
        assert not d.members or set(d.members) == set(d.files)


def test_require_names_path_and_fetch_command(tmp_path):
    with pytest.raises(DataError) as err:
        require("ag-news", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "ag_news" / "train.csv") in msg
    assert "seqjax data fetch ag-news" in msg and "SEQJAX_DATA" in msg and "\n" not in msg
    with pytest.raises(UsageError, match="unknown dataset 'mnist'"):
        require("mnist", tmp_path)


def test_check_lists_present_sets(tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("hi")
    monkeypatch.setenv("SEQJAX_DATA", str(tmp_path))
    status = {name: (present, path) for name, present, path in check()}
    assert status["shakespeare"] == (True, tmp_path / "tinyshakespeare")
    assert not status["ptb"][0] and len(status) == len(DATASETS)
    assert require("shakespeare") == tmp_path / "tinyshakespeare"


def test_check_shared_data():
    root = os.environ.get("SEQJAX_DATA")
    if not root or not Path(root, "ptb").is_dir():
        pytest.skip("SEQJAX_DATA not available")
    present = {name for name, ok, _ in check(root) if ok}
    assert {"ptb", "ptb-char", "shakespeare", "ag-news", "tatoeba-spa"} <= present
    assert sha256_file(Path(root, "ptb", "ptb.valid.txt")) == DATASETS["ptb"].files["ptb/ptb.valid.txt"]


def test_fetch_without_network_fails_in_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        fetch("shakespeare", tmp_path)
    msg = str(err.value)
    assert "cannot download" in msg and "no network" in msg and "\n" not in msg
    assert not (tmp_path / "tinyshakespeare" / "input.txt").exists()


def _tgz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_extracts_and_verifies(tmp_path, monkeypatch):
    train, valid = b"a b c\n", b"a b\n"
    blob = _tgz(
        {"./simple-examples/data/ptb.train.txt": train, "./simple-examples/data/ptb.valid.txt": valid}
    )
    calls = []

    def serve(request, timeout):
        calls.append(request.full_url)
        return io.BytesIO(blob)

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", serve)
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    fake = Dataset(
        "ptb",
        {"ptb/ptb.train.txt": sha(train), "ptb/ptb.valid.txt": sha(valid)},
        url="http://example.invalid/simple-examples.tgz",
        members={
            "ptb/ptb.train.txt": "./simple-examples/data/ptb.train.txt",
            "ptb/ptb.valid.txt": "./simple-examples/data/ptb.valid.txt",
        },
    )
    monkeypatch.setitem(DATASETS, "ptb", fake)
    assert fetch("ptb", tmp_path) == tmp_path / "ptb"
    assert (tmp_path / "ptb" / "ptb.train.txt").read_bytes() == train
    assert calls == [fake.url]
    fetch("ptb", tmp_path)  # everything present with the right checksum: no download
    assert len(calls) == 1

    bad = Dataset(
        "ptb",
        {"ptb/ptb.train.txt": "0" * 64},
        url=fake.url,
        members={"ptb/ptb.train.txt": "./simple-examples/data/ptb.train.txt"},
    )
    monkeypatch.setitem(DATASETS, "ptb", bad)
    with pytest.raises(DataError, match="checksum mismatch for ptb/ptb.train.txt"):
        fetch("ptb", tmp_path / "other")
    assert not (tmp_path / "other" / "ptb").exists()


def test_data_check_reports_checksum_status(tmp_path, capsys):
    import hashlib

    from seqjax.app import cli
    from seqjax.data import fetch as fetch_mod

    (tmp_path / "spa-eng").mkdir()
    (tmp_path / "spa-eng" / "spa.txt").write_text("Go.\tVe.\n")
    (tmp_path / "por-eng").mkdir()
    (tmp_path / "por-eng" / "por.txt").write_text("Go.\tVai.\n")
    fetch_mod.record_checksum(
        tmp_path / "por-eng" / "por.txt", hashlib.sha256(b"Go.\tVai.\n").hexdigest(), "u"
    )
    assert cli.main(["data", "check", "--data-dir", str(tmp_path)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert lines["tatoeba-por"].endswith(f"present  {tmp_path}/por-eng  sha256 ok")
    assert lines["tatoeba-spa"].endswith(f"present  {tmp_path}/spa-eng  sha256 changed spa-eng/spa.txt")
    assert lines["ptb"] == f"ptb            missing  {tmp_path}/ptb"
