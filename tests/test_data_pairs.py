"""Translation pairs: the Tatoeba preset, rows with errors, normalisation, tokenize round
trips, the grouped (disjoint) carve-out."""

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from seqjax.data.pairs import (
    decode_target,
    detokenize,
    encode_source,
    load_translation,
    normalize,
    tokenize,
)
from seqjax.errors import DataError

LINES = [
    "Go.\tVai.",
    "Go.\tVá.",
    "Hi.\tOi.",
    "Run!\tCorra!",
    "Who?\tQuem?\tCC-BY 2.0 (France) Attribution",
    "Wow!\tUau!",
    "Fire!\tFogo!",
    "Help!\tSocorro!",
    "Stop!\tPare!",
    "Wait!\tEspere!",
    "I see.\tEu vejo.",
    "I try.\tEu tento.",
    "go.\tVai embora.",
]


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


def _cfg(**kw):
    return {
        "source": "tatoeba",
        "pair": "por-eng",
        "level": "char",
        "max_len": 0,
        "max_pairs": 0,
        "valid_fraction": 2000,
        "test_fraction": 2000,
        **kw,
    }


def test_two_and_three_columns_blank_lines(tmp_path):
    _write(tmp_path, LINES[:5] + [""])
    d = load_translation(_cfg(valid_fraction=0, test_fraction=1), tmp_path)
    pairs = sorted(
        d.test_pairs
        + [("".join(d.src_vocab.decode(s)), "".join(d.tgt_vocab.decode(t[1:-1]))) for s, t in d.train]
    )
    assert pairs == [("Go.", "Vai."), ("Go.", "Vá."), ("Hi.", "Oi."), ("Run!", "Corra!"), ("Who?", "Quem?")]
    assert len(load_translation(_cfg(max_pairs=2, valid_fraction=0, test_fraction=0), tmp_path).train) == 2


def test_empty_field_names_file_and_row(tmp_path):
    path = _write(tmp_path, LINES[:2] + ["\tVai."])
    with pytest.raises(DataError, match=f"{path}: row 3: empty source text") as err:
        load_translation(_cfg(), tmp_path)
    assert "\n" not in str(err.value)


def test_missing_file_names_fetch_command_and_present_pair(tmp_path):
    with pytest.raises(DataError, match=r"por-eng/por\.txt; run 'seqjax data fetch tatoeba-por'.*present in"):
        load_translation(_cfg(), tmp_path)
    _write(tmp_path, LINES, folder="spa-eng", name="spa.txt")
    with pytest.raises(
        DataError, match=r"tatoeba-spa\); or train on a present pair: --set data.pair=spa-eng$"
    ):
        load_translation(_cfg(), tmp_path)


def test_normalize_and_tokenize():
    decomposed = unicodedata.normalize("NFD", "  Você  está\taí? ")
    assert normalize(decomposed) == "Você está aí?"
    assert tokenize(decomposed, "char") == list("Você está aí?")
    assert tokenize("¿Dónde está el baño? I don't know.", "word") == [
        "¿",
        "dónde",
        "está",
        "el",
        "baño",
        "?",
        "i",
        "don't",
        "know",
        ".",
    ]
    assert (
        detokenize(tokenize("¿Dónde está? Sim, well-known!", "word"), "word")
        == "¿dónde está? sim, well-known!"
    )
    assert detokenize(tokenize("Ação é já.", "char"), "char") == "Ação é já."


def test_synthetic_split_and_round_trip(tmp_path):
    _write(tmp_path, LINES)
    d = load_translation(_cfg(valid_fraction=2, test_fraction=2), tmp_path, seed=1)
    assert len(d.train) + len(d.valid) + len(d.test) == len(LINES)
    assert d.src_vocab.itos[:4] == d.tgt_vocab.itos[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"]
    src, tgt = d.test[0]
    assert src.dtype == tgt.dtype == np.int32
    assert tgt[0] == d.tgt_vocab.sos_id and tgt[-1] == d.tgt_vocab.eos_id
    ref = d.test_pairs[0][1]
    assert decode_target(tgt, d.tgt_vocab, "char") == "".join(c if c in d.tgt_vocab else "<unk>" for c in ref)
    assert encode_source(d.test_pairs[0][0], d.src_vocab, "char").tolist() == [
        d.src_vocab.stoi.get(c, 1) for c in d.test_pairs[0][0]
    ]
    # "Go." (twice) and "go." are one source group: all three pairs in one split
    for split in (d.train, d.valid, d.test):
        n = sum("".join(d.src_vocab.decode(s)).lower() == "go." for s, _ in split)
        assert n in (0, 3)
    short = load_translation(_cfg(level="word", max_len=2, valid_fraction=0, test_fraction=1), tmp_path)
    assert short.dropped_long == 3  # "I see.", "I try." and "Vai embora." have 3 word tokens
    assert all(len(s) <= 2 and len(t) <= 4 for s, t in short.train)


def test_spa_eng_real_split_disjoint_and_deterministic():
    root = _shared()
    d = load_translation(_cfg(pair="spa-eng"), root, seed=0)
    assert len(d.train) + len(d.valid) + len(d.test) == 118_964
    assert 2000 <= len(d.test) < 2100 and 2000 <= len(d.valid) < 2100
    assert d.test_pairs[0] == ("Be kind.", "Sean gentiles.")

    def sources(split):
        return {"".join(d.src_vocab.decode(s)).lower() for s, _ in split}

    train_src = sources(d.train)
    assert not train_src & sources(d.test) and not train_src & sources(d.valid)
    assert not sources(d.valid) & sources(d.test)
    assert len(d.src_vocab) == 94 and len(d.tgt_vocab) == 114
    for _, t in d.test[:50]:  # round trip of encoded ids against the raw strings
        assert decode_target(t, d.tgt_vocab, "char") in {ref for _, ref in d.test_pairs}
    again = load_translation(
        _cfg(pair="spa-eng", max_pairs=5000, valid_fraction=100, test_fraction=100), root, seed=0
    )
    twice = load_translation(
        _cfg(pair="spa-eng", max_pairs=5000, valid_fraction=100, test_fraction=100), root, seed=0
    )
    assert again.test_pairs == twice.test_pairs and len(again.train) == len(twice.train)
    other = load_translation(
        _cfg(pair="spa-eng", max_pairs=5000, valid_fraction=100, test_fraction=100), root, seed=1
    )
    assert other.test_pairs != again.test_pairs
