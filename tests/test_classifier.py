"""TextClassifier: padding invariance with masking, pooling against NumPy, empty rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.models.classifier import TextClassifier, pool


def _pad(seqs, length):
    tokens = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
    return tokens, np.array([len(s) for s in seqs], np.int32)


SEQS = [[5, 3, 9, 2], [7], [4, 4, 8, 1, 6, 2, 3], []]  # the last one is an empty text


@pytest.mark.parametrize("cell,bidirectional,layers,pooling", [
    ("rnn", False, 1, "last"),
    ("lstm", True, 1, "last"),
    ("gru", False, 2, "max"),
])
def test_masked_logits_do_not_depend_on_padding(cell, bidirectional, layers, pooling):
    model = TextClassifier(vocab_size=10, num_classes=4, embed_dim=6, cell=cell, hidden=(5,) * layers,
                           bidirectional=bidirectional, pooling=pooling)
    short, lengths = _pad(SEQS, 7)
    long, lengths2 = _pad(SEQS, 19)
    params = model.init(jax.random.PRNGKey(0), short, lengths)["params"]
    apply = jax.jit(model.apply)
    a = apply({"params": params}, short, lengths)
    b = apply({"params": params}, long, lengths2)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # and a row alone, unpadded, gives the same logits as in the padded batch
    t, n = _pad(SEQS[2:3], len(SEQS[2]))
    np.testing.assert_allclose(apply({"params": params}, t, n)[0], a[2], atol=1e-5, rtol=0)
    # the empty text pools to zeros: its logits are the output bias
    np.testing.assert_allclose(a[3], params["out"]["bias"], atol=1e-6)


def test_unmasked_model_reads_the_padding():
    model = TextClassifier(vocab_size=10, num_classes=4, embed_dim=6, cell="rnn", hidden=(5,))
    short, _ = _pad(SEQS, 7)
    long, _ = _pad(SEQS, 19)
    params = model.init(jax.random.PRNGKey(0), short)["params"]
    a, b = model.apply({"params": params}, short), model.apply({"params": params}, long)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4  # more padding read, other logits


def _np_pool(out, lengths, how, bidirectional):
    rows = []
    for o, n in zip(out, lengths):
        if how == "last":
            h = o.shape[-1] // 2
            rows.append(np.concatenate([o[max(n - 1, 0), :h], o[0, h:]]) if bidirectional
                        else o[max(n - 1, 0)])
        elif n == 0:
            rows.append(np.zeros(o.shape[-1]))
        else:
            rows.append(o[:n].mean(0) if how == "mean" else o[:n].max(0))
    return np.stack(rows)


@pytest.mark.parametrize("how", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pool_against_numpy(how, bidirectional):
    rng = np.random.default_rng(0)
    out = rng.normal(size=(4, 6, 8)).astype(np.float32) - 3.0  # all negative-ish: max must ignore padding
    lengths = np.array([6, 1, 3, 0], np.int32)
    got = pool(jnp.asarray(out), jnp.asarray(lengths), how, bidirectional)
    np.testing.assert_allclose(got, _np_pool(out, lengths, how, bidirectional), atol=1e-6)
    # no lengths: every row is full length (the last time step for "last")
    full = np.full(4, 6, np.int32)
    np.testing.assert_allclose(pool(jnp.asarray(out), None, how, bidirectional),
                               _np_pool(out, full, how, bidirectional), atol=1e-6)


def test_dropout_only_in_training():
    model = TextClassifier(vocab_size=10, num_classes=4, embed_dim=6, cell="rnn", hidden=(5,),
                           dropout=0.5, embed_dropout=0.5, pooling="mean")
    tokens, lengths = _pad(SEQS, 8)
    params = model.init(jax.random.PRNGKey(0), tokens, lengths)["params"]
    det = model.apply({"params": params}, tokens, lengths)
    np.testing.assert_array_equal(det, model.apply({"params": params}, tokens, lengths))
    drop = model.apply({"params": params}, tokens, lengths, deterministic=False,
                       rngs={"dropout": jax.random.PRNGKey(1)})
    assert np.abs(np.asarray(drop) - np.asarray(det))[:3].max() > 1e-4
