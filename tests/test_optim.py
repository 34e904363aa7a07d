"""Learning-rate schedules match their formulas; optimizers are built from names."""
import math

import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.training import optim


def cfg_with(**schedule):
    cfg = config_lib.base_config()
    cfg.optim.lr = 1.0
    cfg.schedule.update(schedule)
    return cfg


def test_step_decay_is_zaremba():
    spe = 100
    cfg = cfg_with(name="step", decay_after=4, factor=0.5)
    sched = optim.make_schedule(cfg, spe, 13 * spe)
    for epoch in range(1, 14):  # epochs count from 1
        for step in ((epoch - 1) * spe, epoch * spe - 1):
            assert float(sched(step)) == pytest.approx(0.5 ** max(epoch - 4, 0))


def test_exponential_and_constant():
    cfg = cfg_with(name="exponential", decay_rate=0.9, decay_steps=10)
    sched = optim.make_schedule(cfg, 50, 500)
    for s in (0, 5, 10, 37, 200):
        assert float(sched(s)) == pytest.approx(0.9 ** (s / 10), rel=1e-5)
    assert float(optim.make_schedule(cfg_with(name="constant"), 10, 100)(77)) == 1.0


def test_cosine_with_warmup():
    cfg = cfg_with(name="cosine", warmup_steps=10, min_lr_ratio=0.1)
    sched = optim.make_schedule(cfg, 10, 110)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.5)
    assert float(sched(10)) == pytest.approx(1.0)
    s = 60  # halfway through the decay
    expect = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 100))
    assert float(sched(s)) == pytest.approx(expect, rel=1e-5)
    assert float(sched(110)) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_optimizers_step_downhill(name):
    import jax
    import jax.numpy as jnp

    cfg = config_lib.base_config()
    cfg.optim.update(dict(name=name, lr=0.1, clip_norm=1.0))
    tx = optim.make_optimizer(cfg, 10, 100)
    params = {"w": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    loss = lambda p: (p["w"] ** 2).sum()  # noqa: E731
    for _ in range(5):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    assert float(loss(params)) < 13.0


def test_clip_by_global_norm_is_applied():
    import jax.numpy as jnp

    cfg = config_lib.base_config()
    cfg.optim.update(dict(name="sgd", lr=1.0, clip_norm=1.0))
    tx = optim.make_optimizer(cfg, 1, 1)
    g = {"a": jnp.array([30.0, 40.0])}
    updates, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(np.asarray(updates["a"]), [-0.6, -0.8], rtol=1e-6)
