"""The EMA extension (seqjax/training/extensions/ema.py): the kept average equals one computed
by hand from the params after each step, it is what evaluation and best/ score, it resumes
exactly after a kill, and ``--checkpoint ema`` restores it."""
import json

import jax
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.training import hooks as hooks_lib
from seqjax.training import loop
from seqjax.training.checkpoint import restore_params

DECAY = 0.7
O = ["train.progress=off", "train.steps=6", "train.eval_every=3", f"train.ema={DECAY}", "optim.lr=0.05"]


def tiny(*overrides):
    return config_lib.resolve("sequences:tiny", [*O, *overrides])


def restore(workdir, which):
    like = jax.eval_shape(loop.build(tiny()).task.init_params, jax.random.PRNGKey(0))
    return jax.device_get(restore_params(workdir, like, which)[0])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run that records the params after every step: (workdir, summary,
    [initial params, params after step 1, ...])."""
    seen = [jax.device_get(loop.build(tiny()).init_state().params)]
    record = hooks_lib.Hook(lambda info: seen.append(jax.device_get(info.state.params)))
    workdir = tmp_path_factory.mktemp("ema")
    summary = loop.train(tiny(), workdir, echo=lambda s: None, hooks=[record])
    return workdir, summary, seen


def test_ema_equals_the_hand_computed_average(straight):
    workdir, summary, seen = straight
    by_hand = seen[0]
    for params in seen[1:]:
        by_hand = jax.tree.map(lambda e, p: DECAY * e + (1 - DECAY) * p, by_hand, params)
    ema, latest = restore(workdir, "ema"), restore(workdir, "latest")
    for a, b, p in zip(jax.tree.leaves(by_hand), jax.tree.leaves(ema), jax.tree.leaves(latest)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(b, p)  # the EMA is not the trained params
    # evaluation scores the EMA: the last valid row is the EMA's loss
    engine = loop.build(tiny())
    rows = [json.loads(ln) for ln in (workdir / "metrics.jsonl").read_text().splitlines()]
    last_valid = [r for r in rows if r["split"] == "valid"][-1]
    on_ema = engine.evaluate(loop.mesh_lib.replicate(ema, engine.mesh), "valid")
    assert last_valid["step"] == 6 and last_valid["loss"] == pytest.approx(on_ema["loss"], abs=2e-6)
    # and best/ holds the EMA of the best step
    best = restore(workdir, "best")
    if summary["best"]["step"] == 6:
        for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(ema)):
            np.testing.assert_array_equal(a, b)


def test_ema_resumes_exactly_after_a_kill(straight, tmp_path, run_cli):
    workdir, _, _ = straight
    run = tmp_path / "run"
    assert loop.train(tiny(), run, stop_after=4, echo=lambda s: None)["interrupted_at"] == 4
    loop.train(tiny(), run, echo=lambda s: None)
    for which in ("ema", "latest"):
        for a, b in zip(jax.tree.leaves(restore(workdir, which)), jax.tree.leaves(restore(run, which))):
            np.testing.assert_array_equal(a, b)
    code, out, err = run_cli("eval", str(run), "--checkpoint", "ema")
    assert code == 0 and "ema checkpoint of step 6" in err, err
    code, out, err = run_cli("eval", str(run), "--checkpoint", "emma")
    assert code == 2 and "ema" in err and len(err.strip().splitlines()) == 1, err
