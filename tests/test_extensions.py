"""The extension seam and extra loss terms (seqjax/training/extensions/extra_loss.py): a
term given by import path adds exactly weight x its value to the objective and sees the
model's hidden outputs; the step compiles and learns with it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.training import extensions, loop

O = ["train.progress=off", "data.batch_size=20", "data.eval_batch_size=20", "model.dropout=0.3",
     "optim.name=sgd", "optim.lr=1.0", "model.embed=16", "model.hidden=16", "data.max_tokens=1200",
     "data.bptt=4"]
SEEN = {}


def l2_params(params, batch, outputs, rng, train):
    """A term on the params alone."""
    return sum(jnp.sum(p ** 2) for p in jax.tree.leaves(params))


def activation_l2(params, batch, outputs, rng, train):
    """AR-like: the mean square of the last layer's dropped outputs; records what it saw."""
    SEEN.update({k: v.shape for k, v in outputs.items()}, train=train)
    return jnp.mean(outputs["dropped_outputs"] ** 2)


def test_extra_loss_adds_exactly_its_value():
    terms = '{"test_extensions:l2_params": 0.5, "test_extensions:activation_l2": 2.0}'
    engine = loop.build(config_lib.resolve("ptb_lm:tiny", [*O, f"train.extra_loss={terms}"]))
    (ext,) = [e for e in engine.extensions if e.name == "extra_loss"]
    task, state = engine.task, engine.init_state()
    batch = next(iter(task.train_batches(0)))
    rng = jax.random.PRNGKey(3)
    plain = task.loss(state.params, batch, state.carry, rng, True)
    extra = ext.wrap_loss(task.loss)(state.params, batch, state.carry, rng, True)
    # by hand: the same forward pass with its intermediates, dropout from the same key
    _, sown = task.step_model(True).apply(
        {"params": state.params}, batch["inputs"], state.carry, deterministic=False, rngs={"dropout": rng},
        targets=batch["targets"], weights=batch["weight"], mutable=["intermediates"])
    dropped = sown["intermediates"]["dropped_outputs"][0]
    assert not np.allclose(dropped, sown["intermediates"]["outputs"][0])  # dropout was on
    by_hand = 0.5 * l2_params(state.params, None, None, None, True) + 2.0 * jnp.mean(dropped ** 2)
    assert float(extra[0]) - float(plain[0]) == pytest.approx(float(by_hand), rel=1e-5)
    assert SEEN == {"outputs": (20, 4, 16), "dropped_outputs": (20, 4, 16), "train": True}
    jax.tree.map(np.testing.assert_array_equal, plain[1], extra[1])  # metrics and carry: the task's
    # the jitted step compiles and runs with the terms
    sharded = loop.mesh_lib.shard_batch(batch, engine.mesh)
    after = engine.train_step(state, sharded)
    assert int(after.step) == 1 and np.isfinite(float(after.sums["loss_sum"]))


def test_unknown_checkpoint_view_and_registry():
    assert {"ema", "accumulate", "extra_loss"} <= set(extensions.EXTENSIONS)
    assert "ema" in extensions.views()
    with pytest.raises(extensions.base.UsageError, match="--checkpoint emma: choose one of best, latest"):
        extensions.view_of("emma")
