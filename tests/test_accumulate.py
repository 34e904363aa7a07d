"""Gradient accumulation (seqjax/training/extensions/accumulate.py): 4 micro-batches of 5
rows equal one batch of 20 (objective, metric sums, params and the LM's carry), and a run
with accumulation resumes exactly after a kill."""
import json

import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.training import loop

O = ["train.progress=off", "data.batch_size=20", "data.eval_batch_size=20", "model.dropout=0.0",
     "optim.name=sgd", "optim.lr=1.0", "model.embed=16", "model.hidden=16", "data.max_tokens=1200",
     "data.bptt=4"]


def lm(*overrides):
    return config_lib.resolve("ptb_lm:tiny", [*O, *overrides])


def test_four_micro_batches_of_five_equal_one_batch_of_twenty():
    """Three steps on the same windows: the carry of every stream threads through the
    micro-batches from one step to the next."""
    runs = {}
    for n in (1, 4):
        engine = loop.build(lm(f"train.accumulate={n}"))
        state = engine.init_state()
        objectives = []
        for batch in list(engine.task.train_batches(0))[:3]:
            state = engine.train_step(state, loop.mesh_lib.shard_batch(batch, engine.mesh))
            sums = jax.device_get(state.sums)
            objectives.append(sums["loss_sum"] / sums["count"])
        runs[n] = jax.device_get((state.params, state.carry, state.sums)), objectives
    (p1, c1, s1), o1 = runs[1]
    (p4, c4, s4), o4 = runs[4]
    np.testing.assert_allclose(o1, o4, rtol=1e-5)
    for k in s1:
        np.testing.assert_allclose(s1[k], s4[k], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert len(jax.tree.leaves(c1)) > 0
    for a, b in zip(jax.tree.leaves(c1), jax.tree.leaves(c4)):
        assert a.shape[0] == 20
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_accumulation_resumes_exactly_after_a_kill(tmp_path):
    o = ["train.accumulate=4", "train.steps=4", "train.eval_every=4", "train.log_every=1",
         "model.dropout=0.2"]
    rows = lambda d: [{k: v for k, v in json.loads(ln).items() if k != "tokens_per_s"}  # noqa: E731
                      for ln in (d / "metrics.jsonl").read_text().splitlines()]
    straight = loop.train(lm(*o), tmp_path / "straight", echo=lambda s: None)
    assert loop.train(lm(*o), tmp_path / "run", stop_after=2, echo=lambda s: None)["interrupted_at"] == 2
    resumed = loop.train(lm(*o), tmp_path / "run", echo=lambda s: None)
    assert resumed["steps"] == straight["steps"] == 4
    assert resumed["final"]["test"]["loss"] == pytest.approx(straight["final"]["test"]["loss"], rel=1e-6)
    assert rows(tmp_path / "run") == rows(tmp_path / "straight")
