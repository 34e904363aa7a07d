"""Seq2Seq: attention masked on source padding, teacher forcing equals a per-step loop,
padding invariance, bridges."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.models.seq2seq import Seq2Seq

SRC_V, TGT_V = 23, 29


def _batch(seed=0, b=4, s=7, t=6):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    src = jax.random.randint(k1, (b, s), 4, SRC_V)
    lengths = jnp.array([7, 2, 5, 1][:b])
    src = jnp.where(jnp.arange(s)[None] < lengths[:, None], src, 0)
    tgt = jax.random.randint(k2, (b, t), 4, TGT_V)
    return src, lengths, tgt


def _init(model, seed=0):
    src, lengths, tgt = _batch(seed)
    return jax.jit(model.init)(jax.random.PRNGKey(seed), src, lengths, tgt)["params"]


def _shapes(model):
    src, lengths, tgt = _batch(0)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), src, lengths, tgt)["params"]


CONFIGS = [
    dict(cell="lstm", attention="none", layers=1, embed=0),  # the seed: one-hot, state handed over
    dict(cell="gru", attention="bahdanau", layers=2, embed=8),
    dict(cell="lstm", attention="bahdanau", layers=1, embed=8, bidirectional=True),
    dict(cell="gru", attention="none", layers=1, embed=8, bidirectional=True),
]


@pytest.mark.slow
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_teacher_forced_loss_equals_per_step_loop(kw):
    model = Seq2Seq(SRC_V, TGT_V, hidden=12, attention_units=10, **kw)
    params = _init(model)
    src, lengths, tgt = _batch(1)
    tgt_in, labels = tgt[:, :-1], tgt[:, 1:]
    label_mask = np.ones(labels.shape, bool)
    label_mask[1, 3:] = False  # a padded target row
    logits, attn = model.apply({"params": params}, src, lengths, tgt_in)
    per = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    loss = float((per * label_mask).sum() / label_mask.sum())

    # explicit loop: encode once, then decode_step at every position with the gold token
    memory, carries = model.apply({"params": params}, src, lengths, method=Seq2Seq.encode)
    step = jax.jit(lambda m, c, tok: model.apply({"params": params}, m, c, tok, method=Seq2Seq.decode_step))
    total, steps_attn = 0.0, []
    for t in range(tgt_in.shape[1]):
        lg, carries, a = step(memory, carries, tgt_in[:, t])
        lp = jax.nn.log_softmax(lg)
        total += float(-(jnp.take_along_axis(lp, labels[:, t:t + 1], 1)[:, 0] * label_mask[:, t]).sum())
        steps_attn.append(a)
    np.testing.assert_allclose(loss, total / label_mask.sum(), rtol=1e-5)
    np.testing.assert_allclose(attn, jnp.stack(steps_attn, 1), atol=1e-6)
    assert np.isfinite(loss) and loss > 1.0  # near log(29) = 3.37 at init

    # the training path (targets given: fused read-out, any chunk, or plain) gives the same sums
    w = jnp.asarray(label_mask, jnp.float32)
    correct = float(((jnp.argmax(logits, -1) == labels) * label_mask).sum())
    for chunk in (0, 5, -1):
        (nll, corr), _ = model.clone(head_chunk=chunk).apply(
            {"params": params}, src, lengths, tgt_in, targets=labels, weights=w)
        np.testing.assert_allclose(float(nll), total, rtol=1e-5)
        assert float(corr) == correct


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_attention_zero_on_source_padding(cell):
    model = Seq2Seq(SRC_V, TGT_V, cell=cell, hidden=12, embed=8, attention="bahdanau")
    params = _init(model)
    src, lengths, tgt = _batch(2)
    # garbage (not pad ids) in the padding must not matter either
    src = jnp.where(jnp.arange(7)[None] < lengths[:, None], src, 11)
    _, attn = model.apply({"params": params}, src, lengths, tgt)  # [B, T, S]
    pad = np.arange(7)[None, None, :] >= np.asarray(lengths)[:, None, None]
    assert float(np.abs(np.where(pad, attn, 0.0)).max()) == 0.0
    np.testing.assert_allclose(np.asarray(attn).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(attn)[3, :, 0], 1.0, rtol=1e-6)  # length-1 row
    assert float(np.asarray(attn)[0].std()) > 1e-3  # not uniform: it depends on the query


@pytest.mark.slow
@pytest.mark.parametrize("kw", CONFIGS[1:3], ids=["gru-att-2l", "bilstm-att"])
def test_padding_invariance(kw):
    """A row's logits are the same alone (unpadded) as in a padded batch."""
    model = Seq2Seq(SRC_V, TGT_V, hidden=12, **kw)
    params = _init(model)
    src, lengths, tgt = _batch(3)
    apply = jax.jit(lambda s, l, t: model.apply({"params": params}, s, l, t))
    logits, attn = apply(src, lengths, tgt)
    for row in range(4):
        n = int(lengths[row])
        lg1, at1 = apply(src[row:row + 1, :n], lengths[row:row + 1], tgt[row:row + 1])
        np.testing.assert_allclose(lg1[0], logits[row], rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(at1[0], attn[row, :, :n], atol=1e-6)


def test_bridge_and_seed_parameter_layout():
    seed = Seq2Seq(SRC_V, TGT_V, cell="lstm", hidden=16, embed=0)
    p = _shapes(seed)
    assert "bridge_h_0" not in p  # the seed hands (h, c) over unchanged
    assert p["encoder"]["layer_0"]["cell"]["ih"]["kernel"].shape == (SRC_V, 64)  # one-hot inputs
    assert p["decoder"]["cells_0"]["ih"]["kernel"].shape == (TGT_V, 64)
    assert p["decoder"]["readout"]["kernel"].shape == (16, TGT_V)
    bi = Seq2Seq(SRC_V, TGT_V, cell="lstm", hidden=16, embed=8, bidirectional=True, attention="bahdanau",
                 attention_units=10)
    p = _shapes(bi)
    assert p["bridge_h_0"]["kernel"].shape == (32, 16) and p["bridge_c_0"]["kernel"].shape == (32, 16)
    assert p["decoder"]["attn"]["key"]["kernel"].shape == (32, 10)
    assert p["decoder"]["context_in"]["kernel"].shape == (32, 64)
    assert p["decoder"]["readout"]["kernel"].shape == (16 + 32, TGT_V)  # [h; context]


def test_dropout_changes_training_only():
    model = Seq2Seq(SRC_V, TGT_V, cell="gru", hidden=12, embed=8, attention="bahdanau", dropout=0.5)
    params = _init(model)
    src, lengths, tgt = _batch(4)
    apply = jax.jit(lambda det, rng: model.apply({"params": params}, src, lengths, tgt, deterministic=det,
                                                 rngs={"dropout": rng}), static_argnums=0)
    a, _ = apply(True, jax.random.PRNGKey(0))
    b, _ = apply(True, jax.random.PRNGKey(1))
    c, _ = apply(False, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 1e-3
