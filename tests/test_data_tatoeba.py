"""Tatoeba: parsing (file:line errors), normalisation, tokenize round trips, disjoint split."""

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from seqjax.data.tatoeba import (decode_target, detokenize, encode_source, load_pairs,
                                 load_translation, normalize, tokenize)
from seqjax.errors import DataError

LINES = ["Go.\tVai.", "Go.\tVá.", "Hi.\tOi.", "Run!\tCorra!", "Who?\tQuem?\tCC-BY 2.0 (France) Attribution",
         "Wow!\tUau!", "Fire!\tFogo!", "Help!\tSocorro!", "Stop!\tPare!", "Wait!\tEspere!",
         "I see.\tEu vejo.", "I try.\tEu tento.", "go.\tVai embora."]


def _write(tmp_path, lines, folder="por-eng", name="por.txt"):
    d = tmp_path / folder
    d.mkdir(exist_ok=True)
    (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d / name


def _shared():
    root = os.environ.get("SEQJAX_DATA")
    if not root or not (Path(root) / "spa-eng" / "spa.txt").is_file():
        pytest.skip("SEQJAX_DATA/spa-eng not available")
    return root


def test_load_pairs_two_and_three_columns(tmp_path):
    path = _write(tmp_path, LINES[:5] + [""])
    assert load_pairs(path) == [("Go.", "Vai."), ("Go.", "Vá."), ("Hi.", "Oi."), ("Run!", "Corra!"),
                                ("Who?", "Quem?")]
    assert len(load_pairs(path, max_pairs=2)) == 2


@pytest.mark.parametrize("bad,what", [("no tab here", "got 1"), ("a\tb\tc\td", "got 4"), ("\tVai.", "empty English")])
def test_malformed_line_names_file_and_line(tmp_path, bad, what):
    path = _write(tmp_path, LINES[:2] + [bad])
    with pytest.raises(DataError, match=f"{path}:3: .*{what}") as err:
        load_pairs(path)
    assert "\n" not in str(err.value)


def test_missing_file_names_fetch_command(tmp_path):
    with pytest.raises(DataError, match=r"por-eng/por\.txt; run 'seqjax data fetch tatoeba-por'"):
        load_translation(tmp_path)


def test_normalize_and_tokenize():
    decomposed = unicodedata.normalize("NFD", "  Você  está\taí? ")
    assert normalize(decomposed) == "Você está aí?"
    assert tokenize(decomposed, "char") == list("Você está aí?")
    assert tokenize("¿Dónde está el baño? I don't know.", "word") == [
        "¿", "dónde", "está", "el", "baño", "?", "i", "don't", "know", "."]
    assert detokenize(tokenize("¿Dónde está? Sim, well-known!", "word"), "word") == "¿dónde está? sim, well-known!"
    assert detokenize(tokenize("Ação é já.", "char"), "char") == "Ação é já."


def test_synthetic_split_and_round_trip(tmp_path):
    _write(tmp_path, LINES)
    d = load_translation(tmp_path, level="char", valid_size=2, test_size=2, seed=1)
    assert len(d.train) + len(d.valid) + len(d.test) == len(LINES)
    assert d.src_vocab.itos[:4] == d.tgt_vocab.itos[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"]
    src, tgt = d.test[0]
    assert src.dtype == tgt.dtype == np.int32
    assert tgt[0] == d.tgt_vocab.sos_id and tgt[-1] == d.tgt_vocab.eos_id
    ref = d.test_pairs[0][1]
    assert decode_target(tgt, d.tgt_vocab, "char") == "".join(c if c in d.tgt_vocab else "<unk>" for c in ref)
    assert encode_source(d.test_pairs[0][0], d.src_vocab, "char").tolist() == [
        d.src_vocab.stoi.get(c, 1) for c in d.test_pairs[0][0]]
    # "Go." (twice) and "go." are one source group: all three pairs in one split
    for split in (d.train, d.valid, d.test):
        n = sum("".join(d.src_vocab.decode(s)).lower() == "go." for s, _ in split)
        assert n in (0, 3)
    short = load_translation(tmp_path, level="word", max_len=2, valid_size=0, test_size=1)
    assert short.dropped_long == 3  # "I see.", "I try." and "Vai embora." have 3 word tokens
    assert all(len(s) <= 2 and len(t) <= 4 for s, t in short.train)


def test_spa_eng_real_split_disjoint_and_deterministic():
    root = _shared()
    d = load_translation(root, pair="spa-eng", level="char", valid_size=2000, test_size=2000, seed=0)
    assert len(d.train) + len(d.valid) + len(d.test) == 118_964
    assert 2000 <= len(d.test) < 2100 and 2000 <= len(d.valid) < 2100
    assert d.test_pairs[0] == ("Be kind.", "Sean gentiles.")
    def sources(split):
        return {"".join(d.src_vocab.decode(s)).lower() for s, _ in split}
    train_src = sources(d.train)
    assert not train_src & sources(d.test) and not train_src & sources(d.valid)
    assert not sources(d.valid) & sources(d.test)
    assert len(d.src_vocab) == 94 and len(d.tgt_vocab) == 114
    for s, t in d.test[:50]:  # round trip of encoded ids against the raw strings
        assert decode_target(t, d.tgt_vocab, "char") in {ref for _, ref in d.test_pairs}
    again = load_translation(root, pair="spa-eng", level="char", max_pairs=5000, seed=0, valid_size=100, test_size=100)
    twice = load_translation(root, pair="spa-eng", level="char", max_pairs=5000, seed=0, valid_size=100, test_size=100)
    assert again.test_pairs == twice.test_pairs and len(again.train) == len(twice.train)
    other = load_translation(root, pair="spa-eng", level="char", max_pairs=5000, seed=1, valid_size=100, test_size=100)
    assert other.test_pairs != again.test_pairs
