"""Train-state extensions on the language model: gradient accumulation
(seqjax/training/extensions/accumulate.py) of 4 micro-batches of 5 rows equals one batch of
20, the carry of every stream included; an extra loss term by import path
(seqjax/training/extensions/extra_loss.py) adds exactly weight x its value and sees the
model's hidden outputs. EMA, and the resume of a run with EMA and accumulation:
tests/test_hooks.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.tasks import make_task
from seqjax.training import extensions, loop

O = ["train.progress=off", "data.batch_size=20", "data.eval_batch_size=20", "model.dropout=0.0",
     "optim.name=sgd", "optim.lr=1.0", "model.embed=16", "model.hidden=16", "data.max_tokens=1200",
     "data.bptt=4"]
SEEN = {}


def lm(*overrides):
    return config_lib.resolve("ptb_lm:tiny", [*O, *overrides])


@pytest.fixture(scope="module")
def task():
    """The LM task, its corpus read once (the train.* keys below do not change it)."""
    return make_task(lm())


@pytest.mark.slow
def test_four_micro_batches_of_five_equal_one_batch_of_twenty(task):
    """Three steps on the same windows: the carry of every stream threads through the
    micro-batches from one step to the next."""
    runs = {}
    for n in (1, 4):
        engine = loop.make_engine(lm(f"train.accumulate={n}"), task=task)
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


def l2_params(params, batch, outputs, rng, train):
    """A term on the params alone."""
    return sum(jnp.sum(p ** 2) for p in jax.tree.leaves(params))


def temporal_l2(params, batch, outputs, rng, train):
    """TAR-like: the mean square change of the last layer's outputs between steps; records
    what it saw."""
    SEEN.update({k: v.shape for k, v in outputs.items()}, train=train)
    h = outputs["outputs"]
    return jnp.mean((h[:, 1:] - h[:, :-1]) ** 2)


@pytest.mark.slow
def test_extra_loss_adds_exactly_its_value(task):
    terms = '{"test_extensions:l2_params": 0.5, "test_extensions:temporal_l2": 2.0}'
    engine = loop.make_engine(lm(f"train.extra_loss={terms}"), task=task)
    (ext,) = [e for e in engine.extensions if e.name == "extra_loss"]
    state = engine.init_state()
    batch = next(iter(task.train_batches(0)))
    rng = jax.random.PRNGKey(3)
    plain = task.loss(state.params, batch, state.carry, rng, True)
    extra = ext.wrap_loss(task.loss)(state.params, batch, state.carry, rng, True)
    # by hand: the same forward pass with its intermediates
    _, sown = task.step_model(True).apply(
        {"params": state.params}, batch["inputs"], state.carry, deterministic=False, rngs={"dropout": rng},
        targets=batch["targets"], weights=batch["weight"], mutable=["intermediates"])
    h = sown["intermediates"]["outputs"][0]
    tar = jnp.mean((h[:, 1:] - h[:, :-1]) ** 2)
    by_hand = 0.5 * l2_params(state.params, None, None, None, True) + 2.0 * tar
    assert float(extra[0]) - float(plain[0]) == pytest.approx(float(by_hand), rel=1e-5)
    assert SEEN == {"outputs": (20, 4, 16), "dropped_outputs": (20, 4, 16), "train": True}
    jax.tree.map(np.testing.assert_array_equal, plain[1], extra[1])  # metrics and carry: the task's
    # inside the jitted step (traced under grad) the term changes the update
    sharded = loop.mesh_lib.shard_batch(batch, engine.mesh)
    with_terms = jax.device_get(engine.train_step(engine.init_state(), sharded).params)
    plain_engine = loop.make_engine(lm(), task=task)
    without = jax.device_get(plain_engine.train_step(plain_engine.init_state(), sharded).params)
    assert not np.allclose(with_terms["embed"]["embedding"], without["embed"]["embedding"])


def test_unknown_checkpoint_view_and_registry():
    assert {"ema", "accumulate", "extra_loss"} <= set(extensions.EXTENSIONS)
    assert "ema" in extensions.views()
    with pytest.raises(extensions.base.UsageError, match="--checkpoint emma: choose one of best, latest"):
        extensions.view_of("emma")


def test_ema_refuses_averaging_it_with_trained_checkpoints(run_cli, tmp_path):
    code, _, err = run_cli("train", "sequences:tiny", "--workdir", str(tmp_path / "w"),
                           "--set", "train.ema=0.9", "--set", "train.final_params=average")
    assert code == 2 and err.strip().splitlines()[-1].endswith("set train.final_params=best")
    assert not (tmp_path / "w").exists()


def test_train_state_tree_without_extensions_is_the_old_one():
    """With no extension active the checkpointed tree is key for key the one of the train
    state before extensions existed (a flax.struct dataclass without ``ext``), so run
    directories written before resume; with one, ``ext`` joins it."""
    import flax

    @flax.struct.dataclass
    class Old:
        step: int
        params: dict
        opt_state: tuple
        rng: int
        carry: object
        lr_scale: float
        sums: dict
        bad_step: int

    values = dict(step=1, params={"w": 2.0}, opt_state=(3.0,), rng=4, carry=None, lr_scale=5.0,
                  sums={"count": 6.0}, bad_step=-1)

    def fields(tree):  # the top-level entries, empty ones included (orbax saves those too)
        flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is not tree)
        return [jax.tree_util.keystr(p) for p, _ in flat]

    assert fields(loop.TrainState(**values)) == fields(Old(**values))
    with_ext = loop.TrainState(**values, ext={"ema": {"w": 7.0}})
    assert fields(with_ext) == [*fields(Old(**values)), ".ext"]
    assert jax.tree.map(lambda x: x, with_ext) == with_ext


def test_an_extension_brings_its_hooks():
    """:meth:`Extension.hooks` join the loop's hooks after the built-in ones and train.hooks."""
    import types

    from seqjax.training.hooks import Hook

    seen = []

    class Probe(extensions.Extension):
        name = "probe"

        def hooks(self):
            return [Hook(lambda info: seen.append(info.metrics), on="eval", name="probe_eval")]

    f = lambda *a: None  # noqa: E731
    session = types.SimpleNamespace(
        engine=types.SimpleNamespace(total_steps=10, extensions=[Probe(None, None)]),
        cfg=config_lib.resolve("sequences:tiny", ["train.hooks=[\"userhooks:every_two\"]"]),
        flush_train_logs=f, log_epoch=f, run_eval=f, checkpoint=f, keep_best=f, plateau=f, early_stop=f)
    hooks = loop._Session.builtin_hooks(session)
    assert hooks.names("eval") == ["keep_best", "probe_eval"]
    assert hooks.names("step") == ["log", "epoch_row", "evaluate", "every_two", "checkpoint"]
    hooks.run("eval", types.SimpleNamespace(metrics={"loss": 1.0}))
    assert seen == [{"loss": 1.0}]
