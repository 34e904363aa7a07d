"""models/build.py: every shared model.* key reaches every experiment's recurrent layers
(or is rejected with one line), and the spec reaches Stacked whole."""
import dataclasses

import jax.numpy as jnp
import pytest

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.models import build
from seqjax.tasks import task_class

EXPERIMENTS = sorted(config_lib.list_experiments())

#: key -> (value, what the built spec must show)
KEYS = {
    "cell": ("flax_gru", lambda s: s.cell == "flax_gru"),
    "hidden": (24, lambda s: set(s.hidden) == {24}),
    "layers": (3, lambda s: len(s.hidden) == 3),
    "dropout": (0.25, lambda s: s.dropout == 0.25),
    "variational": (True, lambda s: s.variational),
    "bidirectional": (True, lambda s: s.bidirectional),
    "init": ("uniform", lambda s: dict(s.cell_options)["weight_init"] == "uniform"),
    "init_scale": (0.07, lambda s: dict(s.cell_options)["init_scale"] == 0.07),
    "forget_bias": (1.0, lambda s: dict(s.cell_options)["forget_bias"] == 1.0),
    "unroll": (2, lambda s: s.unroll == 2),
    "eval_unroll": (3, lambda s: s.eval_unroll == 3 and s.for_eval().unroll == 3),
    "dtype": ("bfloat16", lambda s: s.dtype == jnp.bfloat16),
    "backend": ("flax_scan", lambda s: s.backend == "flax_scan"),
    "remat": (True, lambda s: s.remat),
    "wavefront": (True, lambda s: s.wavefront),
    "eval_wavefront": (False, lambda s: not s.eval_wavefront and not s.for_eval().wavefront),
    "recurrent_dropout": (0.2, lambda s: s.recurrent_dropout == 0.2),
    "weight_drop": (0.3, lambda s: s.weight_drop == 0.3),
    "parallel_scan": ("on", lambda s: s.parallel_scan == "on"),
    "newton_tol": (1e-3, lambda s: s.newton.tol == 1e-3),
    "newton_max_iters": (7, lambda s: s.newton.max_iters == 7),
    "newton_damping": (0.5, lambda s: s.newton.damping == 0.5),
    "cell_options": ({"init_scale": 0.3}, lambda s: dict(s.cell_options)["init_scale"] == 0.3),
}


def _model(spec, key, value):
    text = repr(value) if isinstance(value, dict) else value
    cfg = config_lib.resolve(spec, [f"model.{key}={text}"])
    return task_class(cfg.task).synthetic(cfg).model()


def test_every_shared_model_key_is_in_the_table():
    shared = {k.split(".", 1)[1] for k in config_lib.OPTIONS if k.startswith("model.")}
    assert shared - {"head_chunk"} == set(KEYS)  # head_chunk: the read-out, not the recurrent layers


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_shared_key_reaches_the_recurrent_layers_or_is_rejected(experiment):
    rejected = {}
    for key, (value, shows) in KEYS.items():
        try:
            model = _model(experiment, key, value)
        except UsageError as e:
            rejected[key] = str(e)
            continue
        assert shows(model.rnn), (experiment, key)
        stacked = model.rnn.stacked()
        for field in ("cell", "hidden", "dropout", "variational", "bidirectional", "unroll", "backend",
                      "remat", "wavefront", "recurrent_dropout", "parallel_scan", "weight_drop"):
            assert getattr(stacked, field) == getattr(model.rnn, field), (experiment, key, field)
    for key, message in rejected.items():
        assert "\n" not in message and f"model.{key}" in message, (experiment, key, message)
    lm = config_lib.resolve(experiment).task == "lm"
    allowed = {"bidirectional"} if lm else set()
    allowed |= {"forget_bias"}  # cells without the field (gru, rnn)
    assert set(rejected) <= allowed, (experiment, rejected)


def test_rejections_name_the_key():
    with pytest.raises(UsageError, match=r"model.forget_bias=1.0 does not apply to cell 'gru'"):
        build.recurrent_spec(config_lib.resolve("sequences", ["model.cell=gru", "model.forget_bias=1.0"]))
    with pytest.raises(UsageError, match=r"model.cell_options: cell 'lstm' has no field 'nope'"):
        build.recurrent_spec(config_lib.resolve("sequences", ["model.cell_options={'nope': 1}"]))
    with pytest.raises(UsageError, match=r"model.cell='no_such_module:Cell': cannot import"):
        config_lib.resolve("sequences", ["model.cell=no_such_module:Cell"])
    with pytest.raises(UsageError, match=r"model.bidirectional=true does not apply to a language model"):
        _model("ptb_lm", "bidirectional", True)


def test_spec_is_hashable_and_eval_variant():
    spec = build.recurrent_spec(config_lib.resolve("ptb_lm:tiny", ["model.eval_unroll=5"]))
    assert hash(spec) == hash(dataclasses.replace(spec))
    assert spec.for_eval().unroll == 5 and spec.for_eval().wavefront and spec.unroll == 1
