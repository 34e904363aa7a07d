"""LM corpora, batchify and BPTT windows: token counts, exact coverage, row continuity."""

import os
from pathlib import Path

import numpy as np
import pytest

from seqjax.data.lm import TOY_SENTENCES, batchify, bptt_windows, load_lm_corpus
from seqjax.errors import DataError


def _shared(sub):
    root = os.environ.get("SEQJAX_DATA")
    if not root or not (Path(root) / sub).is_dir():
        pytest.skip(f"SEQJAX_DATA/{sub} not available")
    return root


def _weighted_targets(windows):
    """Targets with weight 1, in (row, time) order, concatenated over rows."""
    rows = [[] for _ in range(windows.batch_size)]
    for w in windows:
        for b in range(windows.batch_size):
            rows[b] += w["targets"][b][w["weight"][b] > 0].tolist()
    return rows


def test_batchify_truncate_and_pad():
    ids = np.arange(23)
    data, weights = batchify(ids, 4)
    assert data.shape == (4, 5) and data.dtype == np.int32 and weights.dtype == np.float32
    assert data[1].tolist() == [5, 6, 7, 8, 9] and weights.sum() == 20
    data, weights = batchify(ids, 4, pad=True, pad_id=-1)
    assert data.shape == (4, 6)
    assert data[3].tolist() == [18, 19, 20, 21, 22, -1]
    assert data[weights > 0].tolist() == list(range(23))


@pytest.mark.parametrize("n,batch,bptt", [(1000, 7, 13), (101, 4, 5), (20, 8, 3), (37, 1, 36), (5, 10, 2)])
def test_cover_all_counts_every_target_once(n, batch, bptt):
    ids = np.random.default_rng(n).integers(0, 50, n).astype(np.int32)
    windows = bptt_windows(ids, batch, bptt, cover_all=True)
    shapes = {(w["inputs"].shape, w["targets"].shape, w["weight"].shape) for w in windows}
    assert shapes == {((batch, bptt),) * 3}
    flat = sum(_weighted_targets(windows), [])
    assert flat == ids[1:].tolist()  # in order, each exactly once
    assert windows.num_targets == n - 1
    # targets are the inputs shifted by one in the stream
    ids_pos = np.arange(n)
    pos_windows = bptt_windows(ids_pos, batch, bptt, cover_all=True)
    for w in pos_windows:
        ok = w["weight"] > 0
        np.testing.assert_array_equal(w["targets"][ok], w["inputs"][ok] + 1)


def test_rows_continue_across_windows():
    ids = np.arange(1, 200, dtype=np.int32)
    for cover_all in (True, False):
        windows = bptt_windows(ids, 3, 10, cover_all=cover_all)
        for k in range(len(windows) - 1):
            a, b = windows[k], windows[k + 1]
            # the last target of window k is the first input of window k+1, row by row
            np.testing.assert_array_equal(a["targets"][:, -1], b["inputs"][:, 0])
            real = b["weight"][:, 0] > 0
            np.testing.assert_array_equal(b["inputs"][real, 0], a["inputs"][real, -1] + 1)


def test_training_truncation_matches_pytorch():
    # PyTorch word_language_model: batchify -> [N, B]; get_batch(i) for i in range(0, N-1, bptt)
    n, batch, bptt = 10_007, 20, 35
    ids = np.arange(n, dtype=np.int32)
    nb = n // batch
    ref = ids[: nb * batch].reshape(batch, nb).T  # [N, B]
    ref_targets, ref_windows = [], 0
    for i in range(0, nb - 1, bptt):
        seq_len = min(bptt, nb - 1 - i)
        ref_targets.append(ref[i + 1: i + 1 + seq_len])
        ref_windows += 1
    windows = bptt_windows(ids, batch, bptt, cover_all=False)
    assert len(windows) == ref_windows == 15
    assert windows.num_targets == batch * (nb - 1) == sum(t.size for t in ref_targets)
    for w, t in zip(windows, ref_targets):
        got = w["targets"].T  # [bptt, B]
        np.testing.assert_array_equal(got[: len(t)], t)
        assert w["weight"].T[: len(t)].all() and not w["weight"].T[len(t):].any()
    assert windows[-1]["inputs"].shape == (batch, bptt)
    np.testing.assert_array_equal(windows[-1]["targets"], windows[len(windows) - 1]["targets"])
    with pytest.raises(IndexError):
        windows[len(windows)]


def test_toy_corpus():
    c = load_lm_corpus({"source": "toy", "level": "char"})
    assert c.level == "char" and 3 <= len(TOY_SENTENCES) <= 6
    text = "\n".join(TOY_SENTENCES) + "\n"
    assert len(c.train) == len(text)
    assert "".join(c.vocab.decode(c.train)) == text
    np.testing.assert_array_equal(c.train, c.test)
    assert c.vocab.itos[-1] == "<unk>" and c.vocab.unk_id == len(c.vocab) - 1


def test_missing_corpus_names_path_and_fetch(tmp_path):
    with pytest.raises(DataError, match=r"ptb\.train\.txt; run 'seqjax data fetch ptb'"):
        load_lm_corpus({"source": "ptb"}, tmp_path)


def test_ptb_counts_and_vocab():
    root = _shared("ptb")
    c = load_lm_corpus({"source": "ptb"}, root)
    assert len(c.vocab) == 10_000 and c.level == "word"
    assert (len(c.train), len(c.valid), len(c.test)) == (929_589, 73_760, 82_430)
    assert c.train.dtype == np.int32 and c.train.max() == 9_999
    assert c.vocab.itos[:2] == ["<eos>", "<unk>"] and c.vocab.pad_id is None
    assert (c.train == c.vocab.eos_id).sum() == 42_068
    assert c.vocab.decode(c.valid[:4]) == ["consumers", "may", "want", "to"]
    small = load_lm_corpus({"source": "ptb", "max_tokens": 100}, root)
    assert len(small.train) == 100 and len(small.vocab) == 10_000


def test_ptb_char_counts():
    root = _shared("ptb_char")
    c = load_lm_corpus({"source": "ptb_char"}, root)
    assert len(c.vocab) == 50 and c.vocab.unk_id is None
    # PROVENANCE: whitespace tokens + one <eos> a line
    assert (len(c.train), len(c.valid), len(c.test)) == (4_975_414 + 42_068, 389_672 + 3_370, 438_662 + 3_761)
    assert c.tokens_to_text(c.vocab.decode(c.valid[:16])) == "consumers may wa"
    assert c.vocab.decode(c.vocab.encode(c.text_to_tokens("a b\nc"))) == ["a", "_", "b", "<eos>", "c"]


def test_shakespeare_split():
    root = _shared("tinyshakespeare")
    c = load_lm_corpus({"source": "shakespeare", "valid_fraction": 0.05, "test_fraction": 0.05}, root)
    assert len(c.vocab) == 66 and c.vocab.itos[-1] == "<unk>"
    assert (len(c.train), len(c.valid), len(c.test)) == (1_003_854, 55_770, 55_770)
    assert "".join(c.vocab.decode(c.train[:14])) == "First Citizen:"


def test_shakespeare_nanogpt_split():
    """char_lm's split is nanoGPT's: train the first 90 %, valid the last 10 %, test = valid."""
    root = _shared("tinyshakespeare")
    c = load_lm_corpus({"source": "shakespeare", "valid_fraction": 0.1, "test_fraction": 0}, root)
    n = 1_003_854 + 2 * 55_770
    assert len(c.valid) == round(0.1 * n) and len(c.train) == n - len(c.valid)
    np.testing.assert_array_equal(c.test, c.valid)
    text = (Path(root) / "tinyshakespeare" / "input.txt").read_text()
    assert "".join(c.vocab.decode(c.valid[:200])) == text[len(c.train) : len(c.train) + 200]
