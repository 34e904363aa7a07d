"""Vocab: construction order, encode/decode, unknown handling, JSON round trips."""

from collections import Counter

import numpy as np
import pytest

from seqjax.data.vocab import Vocab, build_vocab
from seqjax.errors import DataError, UsageError


def test_build_order_specials_then_frequency_then_alpha():
    v = build_vocab([["b", "a", "c", "a"], ["c", "d", "a"]], specials=("<pad>", "<unk>"))
    # a:3, c:2, b:1, d:1 (tie -> alphabetical)
    assert v.itos == ["<pad>", "<unk>", "a", "c", "b", "d"]
    assert (v.pad_id, v.unk_id, v.eos_id, v.sos_id) == (0, 1, None, None)
    assert build_vocab(Counter({"x": 2, "<unk>": 5, "y": 2}), specials=("<unk>",)).itos == ["<unk>", "x", "y"]


def test_max_size_counts_specials_and_min_freq():
    counts = Counter({"a": 5, "b": 4, "c": 3, "d": 1})
    assert len(build_vocab(counts, max_size=4)) == 4
    assert build_vocab(counts, max_size=4).itos[2:] == ["a", "b"]
    assert build_vocab(counts, min_freq=3).itos[2:] == ["a", "b", "c"]
    with pytest.raises(UsageError):
        build_vocab(counts, max_size=1)


def test_encode_decode_round_trip_and_unknown():
    v = build_vocab([["the", "cat", "sat", "<eos>"]], specials=("<pad>", "<unk>", "<eos>"))
    ids = v.encode(["the", "cat", "sat"])
    assert ids.dtype == np.int32
    assert v.decode(ids) == ["the", "cat", "sat"]
    assert v.encode(["the", "dog"]).tolist() == [v.stoi["the"], v.unk_id]
    assert v.encode(["the", "dog"], on_unknown="drop").tolist() == [v.stoi["the"]]
    with pytest.raises(UsageError, match="'dog'"):
        v.encode(["dog"], on_unknown="error")
    assert v.decode([v.stoi["cat"], v.eos_id, v.stoi["sat"]], stop_at_eos=True) == ["cat"]
    assert v.decode([0, v.stoi["cat"], 0], skip_specials=("<pad>",)) == ["cat"]


def test_no_unk_drops_unknown():
    v = Vocab(["a", "b"])
    assert v.unk_id is None and v.pad_id is None
    assert v.encode(list("abcab")).tolist() == [0, 1, 0, 1]
    assert v.encode([]).shape == (0,)


def test_json_and_file_round_trip(tmp_path):
    v = build_vocab([["ação", "é", "x"]], specials=("<pad>", "<unk>", "<sos>", "<eos>"))
    assert Vocab.from_json(v.to_json()) == v
    path = tmp_path / "vocab.json"
    v.save(path)
    w = Vocab.load(path)
    assert w == v and w.stoi == v.stoi and (w.sos_id, w.eos_id) == (2, 3)
    with pytest.raises(DataError, match="missing vocabulary file"):
        Vocab.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="bad.json"):
        Vocab.load(tmp_path / "bad.json")


def test_duplicate_token_rejected():
    with pytest.raises(UsageError):
        Vocab(["a", "a"])
