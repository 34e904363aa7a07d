"""AWD-LSTM's pieces, each a plug-in: weight-drop (seqjax/core/weight_drop.py), embedding dropout
(seqjax/core/embedding_dropout.py), AR/TAR (seqjax/core/activation_reg.py), variable BPTT
(seqjax/data/vbptt.py and its learning-rate extension) and NT-ASGD
(seqjax/training/extensions/ntasgd.py)."""
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.core import activation_reg, embedding_dropout
from seqjax.core import weight_drop as wd
from seqjax.core.cells import make_cell
from seqjax.core.layers import Recurrent
from seqjax.data import vbptt
from seqjax.training import hooks as hooks_lib
from seqjax.training import loop
from seqjax.training.checkpoint import restore_params
from seqjax.training.extensions import ntasgd
from seqjax.training.extensions.variable_bptt import VariableBPTT

P = 0.5
X = jax.random.normal(jax.random.key(0), (3, 5, 4))  # [B, T, in]


def _recording(monkeypatch):
    """Record every mask weight-drop draws (one list entry per mask)."""
    seen = []
    real = wd.mask

    def mask(rng, shape, rate):
        m = real(rng, shape, rate)
        seen.append(m)
        return m

    monkeypatch.setattr(wd, "mask", mask)
    return seen


@pytest.mark.parametrize("cell, backend", [("rnn", "scan"), ("flax_lstm", "scan")])  # fused, generic path
def test_weight_drop_one_mask_per_batch_new_each_batch(cell, backend, monkeypatch):
    seen = _recording(monkeypatch)
    layer = Recurrent(make_cell(cell, 6), backend=backend, weight_drop=P)
    plain = Recurrent(make_cell(cell, 6), backend=backend)
    v = layer.init(jax.random.key(1), X)
    y_eval, _ = layer.apply(v, X)
    np.testing.assert_array_equal(y_eval, plain.apply(v, X)[0])  # off at eval
    assert seen == []
    masked = []
    for key in (2, 3):
        y, _ = layer.apply(v, X, deterministic=False, rngs={"dropout": jax.random.key(key)})
        # the same output as a plain layer whose recurrent kernels are masked once: one mask
        # for every row and every step of the batch
        cell_params = dict(v["params"]["cell"])
        names = wd.recurrent_names(None, cell_params)
        assert len(seen) == len(names) and names and all(n.startswith("h") for n in names)
        for name, m in zip(names, seen):
            k = cell_params[name]["kernel"]
            assert m.shape == k.shape and set(np.unique(m)) <= {0.0, 1 / (1 - P)}
            assert 0.3 < float((m == 0).mean()) < 0.7
            cell_params[name] = {**cell_params[name], "kernel": k * m}
        by_hand = plain.apply({"params": {"cell": cell_params}}, X)[0]
        np.testing.assert_allclose(y, by_hand, rtol=1e-5, atol=1e-6)
        assert not np.allclose(y, y_eval)
        masked.append([np.asarray(m) for m in seen])
        seen.clear()
    assert all(not np.array_equal(a, b) for a, b in zip(*masked))  # a new mask for a new batch


@pytest.mark.parametrize("backend", ["scan", "flax_scan"])
def test_weight_drop_gradients_match_a_hand_written_masked_step(backend, monkeypatch):
    seen = _recording(monkeypatch)
    layer = Recurrent(make_cell("rnn", 6), backend=backend, weight_drop=P)
    v = layer.init(jax.random.key(1), X)
    r = jax.random.normal(jax.random.key(7), (3, 5, 6))
    rngs = {"dropout": jax.random.key(4)}

    def loss(params):
        y, _ = layer.apply({"params": params}, X, deterministic=False, rngs=rngs)
        return jnp.sum(y * r)

    grads = jax.grad(loss)(v["params"])
    (m,) = seen

    def by_hand(p):  # h_t = tanh(x_t W_ih + b_ih + h_{t-1} (W_hh * M) + b_hh)
        h, out = jnp.zeros((3, 6)), []
        w_hh = p["hh"]["kernel"] * m
        for t in range(X.shape[1]):
            h = jnp.tanh(X[:, t] @ p["ih"]["kernel"] + p["ih"]["bias"] + h @ w_hh + p["hh"]["bias"])
            out.append(h)
        return jnp.sum(jnp.stack(out, 1) * r)

    expected = jax.grad(by_hand)(v["params"]["cell"])
    np.testing.assert_allclose(loss(v["params"]), by_hand(v["params"]["cell"]), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads["cell"]), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # dropped entries of W_hh get no gradient
    assert np.all(np.asarray(grads["cell"]["hh"]["kernel"])[np.asarray(m) == 0] == 0)


def test_embedding_dropout_drops_whole_rows_and_rescales():
    table = jax.random.normal(jax.random.key(0), (2000, 8))
    tokens = jnp.tile(jnp.arange(2000)[None], (2, 1))  # every word twice (two rows)
    x = np.asarray(embedding_dropout.embed(table, tokens, 0.3, jax.random.key(1)))
    dropped = np.all(x[0] == 0, axis=-1)
    np.testing.assert_array_equal(x[0], x[1])  # a word is dropped at all of its occurrences
    assert 0.25 < dropped.mean() < 0.35
    np.testing.assert_allclose(x[0][~dropped], np.asarray(table)[~dropped] / 0.7, rtol=1e-6)
    assert not np.any(np.asarray(table)[dropped] == 0)


def test_ar_and_tar_equal_hand_computations():
    rng = np.random.default_rng(0)
    h, hd = rng.normal(size=(2, 4, 3)).astype(np.float32), rng.normal(size=(2, 4, 3)).astype(np.float32)
    outputs = {"outputs": jnp.asarray(h), "dropped_outputs": jnp.asarray(hd)}
    ar_hand = sum(hd[b, t, k] ** 2 for b in range(2) for t in range(4) for k in range(3)) / 24
    tar_hand = sum((h[b, t + 1, k] - h[b, t, k]) ** 2
                   for b in range(2) for t in range(3) for k in range(3)) / 18
    assert float(activation_reg.ar(None, None, outputs, None, True)) == pytest.approx(ar_hand, rel=1e-5)
    assert float(activation_reg.tar(None, None, outputs, None, True)) == pytest.approx(tar_hand, rel=1e-5)
    # flax's sown tuples and a capture list are read too; nothing outside training
    as_sown = [{"outputs": (outputs["outputs"],), "dropped_outputs": (outputs["dropped_outputs"],)}]
    assert float(activation_reg.tar(None, None, as_sown, None, True)) == pytest.approx(tar_hand, rel=1e-5)
    assert float(activation_reg.ar(None, None, outputs, None, False)) == 0.0


def test_variable_bptt_windows_and_lr_scale():
    ids = np.arange(4 * 400 + 3, dtype=np.int32)
    a, b = (vbptt.epoch_windows(ids, 4, 20, seed=0, epoch=e) for e in (0, 1))
    again = vbptt.epoch_windows(ids, 4, 20, seed=0, epoch=0)
    assert len(a) == len(b) == vbptt.windows_per_epoch(400, 20)  # the same steps every epoch
    np.testing.assert_array_equal(a.lengths, again.lengths)  # a resumed run sees the same windows
    assert not np.array_equal(a.lengths, b.lengths[: len(a)])
    assert a.lengths.min() >= vbptt.MIN_LEN and 14 < np.median(a.lengths) < 26
    for k in range(len(a) - 1):  # row b of window k+1 continues row b of window k
        w, nxt = a[k], a[k + 1]
        np.testing.assert_array_equal(w["targets"], w["inputs"] + 1)
        if w["inputs"][0, -1] + 1 < 399:  # (the walk wraps at the end of the rows)
            np.testing.assert_array_equal(nxt["inputs"][:, 0], w["inputs"][:, -1] + 1)
    rounded = vbptt.epoch_windows(ids, 4, 20, seed=0, epoch=0, multiple=5)
    assert set(rounded.lengths % 5) == {0}
    # the extension scales the (clipped) gradient by seq_len / bptt
    cfg = config_lib.resolve("ptb_lm:tiny", ["data.bptt=20", "data.variable_bptt=1", "optim.clip_norm=1.0"])
    ext = VariableBPTT(cfg, None)
    grads = {"w": jnp.full((4,), 2.0)}  # norm 4: clipped to 1
    fn = ext.wrap_grad(lambda p, batch, c, r: ((0.0, None), grads))
    _, g = fn(None, {"inputs": np.zeros((2, 10), np.int32)}, None, None)
    np.testing.assert_allclose(g["w"], np.full(4, 2.0 * 0.25 * 0.5), rtol=1e-6)


# ---------------------------------------------------------------------------- NT-ASGD


def awd_rule(losses, n):
    """AWD-LSTM's main.py, literally: the index of the evaluation that switches, or None."""
    logs = []
    for i, v in enumerate(losses):
        if len(logs) > n and v > min(logs[:-n]):
            return i
        logs.append(v)
    return None


@pytest.mark.parametrize("losses, n, switch", [
    ([5, 4, 4.5, 4.6, 4.7, 3], 2, 4),   # 4.7 > min(5, 4)
    ([5, 4, 3, 2, 1, 0.5], 2, None),    # always improving
    ([5, 6, 7, 8, 9], 5, None),         # never more than n logs
    ([3, 2, 9, 1, 2.5, 2.1], 1, 2),     # n = 1: worse than all but the last
    ([5, 4, 4.1, 4.2, 3.9, 4.0, 4.05, 4.3], 3, 6),  # 4.05 > min(5, 4, 4.1)
])
def test_ntasgd_trigger_on_scripted_validation(losses, n, switch):
    assert awd_rule(losses, n) == switch
    state = {"switch_step": np.int32(-1), "count": np.int32(0), "recent": np.full(n, np.inf, np.float32),
             "best_old": np.float32(np.inf), "evals": np.int32(0)}
    for i, v in enumerate(losses):
        state = ntasgd.observe(state, v, n, step=10 * (i + 1))
    assert int(state["switch_step"]) == (-1 if switch is None else 10 * (switch + 1))


# a real run with a scripted validation loss: evaluations at steps 1..8, the switch at step 5
SCRIPT = {1: 5.0, 2: 4.0, 3: 4.5, 4: 4.6, 5: 4.7, 6: 4.8, 7: 4.9, 8: 5.0}
O = ["train.progress=off", "train.steps=8", "train.eval_every=1", "train.ntasgd=2", "optim.lr=0.05"]


def tiny():
    return config_lib.resolve("sequences:tiny", O)


def scripted(info):
    info.metrics["loss"] = SCRIPT[info.step]


def run(workdir, record=None, stop_after=None):
    hooks = [hooks_lib.Hook(scripted, on="eval", order=hooks_lib.USER - 1)]
    if record is not None:
        hooks.append(hooks_lib.Hook(lambda info: record.append(jax.device_get(info.state.params))))
    return loop.train(tiny(), workdir, echo=lambda s: None, hooks=hooks, stop_after=stop_after)


def restore(workdir, which):
    like = jax.eval_shape(loop.make_engine(tiny()).task.init_params, jax.random.PRNGKey(0))
    return jax.device_get(restore_params(workdir, like, which)[0])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    seen = []
    workdir = tmp_path_factory.mktemp("ntasgd")
    run(workdir, seen)
    return workdir, seen


def test_ntasgd_averages_the_iterates_since_the_switch(straight):
    workdir, seen = straight  # seen[k]: params after step k + 1
    assert awd_rule([SCRIPT[s] for s in sorted(SCRIPT)], 2) == 4  # the 5th evaluation switches
    mean = jax.tree.map(lambda *p: np.mean(np.stack(p), 0), *seen[5:8])  # after steps 6, 7, 8
    avg, latest = restore(workdir, "asgd"), restore(workdir, "latest")
    for a, b, p in zip(jax.tree.leaves(mean), jax.tree.leaves(avg), jax.tree.leaves(latest)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(b, p)
    # evaluation scored the average: the last valid row is its loss
    engine = loop.make_engine(tiny())
    valid = engine.evaluate(loop.mesh_lib.replicate(avg, engine.mesh), "valid")
    rows = [json.loads(ln) for ln in (workdir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["split"] == "valid"][-1]
    assert last["step"] == 8 and last["loss"] == pytest.approx(valid["loss"], abs=2e-6)


def test_ntasgd_resumes_exactly_across_the_switch(straight, tmp_path):
    workdir, _ = straight
    assert run(tmp_path, stop_after=3)["interrupted_at"] == 3  # before the switch (step 5)
    assert run(tmp_path, stop_after=3)["interrupted_at"] == 6  # after it
    run(tmp_path)
    for which in ("asgd", "latest"):
        for a, b in zip(jax.tree.leaves(restore(workdir, which)), jax.tree.leaves(restore(tmp_path, which))):
            np.testing.assert_array_equal(a, b)


def test_ntasgd_brings_its_trigger_once():
    engine = loop.make_engine(config_lib.resolve("sequences:tiny", ["train.ntasgd=5"]))
    (ext,) = [e for e in engine.extensions if e.name == "ntasgd"]
    assert ext.hooks() == [ntasgd.trigger]
    listed = config_lib.resolve("sequences:tiny", ["train.ntasgd=5", f"train.hooks=['{ntasgd.HOOK_PATH}']"])
    assert ntasgd.NTASGD(listed, None).hooks() == []  # listed in train.hooks: the loop adds it from there
    # the trigger without the extension's state (train.ntasgd=0) does nothing
    state = types.SimpleNamespace(ext={})
    info = types.SimpleNamespace(state=state)
    ntasgd.trigger.fn(info)
    assert info.state is state


def test_awd_presets_resolve_and_their_run_config_reads_back():
    for preset in ("awd", "awd-small", "awd-wt2"):
        cfg = config_lib.resolve(f"ptb_lm:{preset}")
        assert cfg.train.extra_loss == {"seqjax.core.activation_reg:ar": 2.0,
                                        "seqjax.core.activation_reg:tar": 1.0}
        text = config_lib.to_json(cfg)  # config.json of the run directory: import paths as keys
        assert config_lib.to_json(config_lib.from_json(text)) == text


def test_lm_dropout_rates_out_of_range_are_one_line():
    from seqjax.errors import UsageError
    from seqjax.models import build

    for key, value in (("word_dropout", 1.5), ("input_dropout", -0.5), ("output_dropout", 1.0)):
        with pytest.raises(UsageError, match=f"model.{key}={value}: use a dropout rate in"):
            build.language_model(config_lib.resolve("ptb_lm:tiny", [f"model.{key}={value}"]), 100)
    lm = build.language_model(config_lib.resolve("ptb_lm:awd"), 100)
    assert (lm.input_dropout, lm.rnn.dropout, lm.output_dropout, lm.word_dropout, lm.rnn.weight_drop) == (
        0.4, 0.25, 0.4, 0.1, 0.5)
