"""Every shared option is defined once (seqjax.config.SCHEMA): the CLI's default, the
library's default, the documentation and the validation all come from that definition."""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax.core import cells, layers
from seqjax.errors import UsageError
from seqjax.models import build
from seqjax.models.classifier import TextClassifier
from seqjax.models.language_model import LanguageModel
from seqjax.models.many_to_one import ManyToOne
from seqjax.models.seq2seq import Seq2Seq
from seqjax.models.spec import RecurrentSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA = config_lib.SCHEMA


def _cfg(**overrides):
    """base_config with ``task`` set and ``overrides`` (dotted keys) applied, unvalidated."""
    cfg = config_lib.base_config()
    cfg.task = "sequences"
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def test_base_config_is_the_schema():
    """base_config holds exactly the schema's keys, each at its declared default."""
    cfg = config_lib.base_config()
    assert sorted(config_lib.flat_keys(cfg)) == sorted(o.key for o in SCHEMA)
    for opt in SCHEMA:
        value = config_lib.get(cfg, opt.key)
        assert (value.to_dict() if hasattr(value, "to_dict") else value) == opt.default, opt.key
        assert opt.error(opt.default) is None, f"{opt.key}: its default {opt.default!r} is not allowed"
        assert opt.doc and "\n" not in opt.doc, opt.key


def test_every_bound_is_enforced():
    """For each option with a bound, the bound itself passes validate and one step past it
    fails with one line naming the key and the range."""
    checked = 0
    for opt in config_lib.ALL_OPTIONS.values():
        step = 1 if opt.type in ("int", "sizes") else 1e-3
        for inside, outside in ((opt.min, None if opt.min is None else opt.min - step),
                                (opt.max, None if opt.max is None else opt.max + step),
                                (None if opt.above is None else opt.above + step, opt.above),
                                (None if opt.below is None else opt.below - step, opt.below)):
            if outside is None:
                continue
            if opt.type == "int":
                inside, outside = int(inside), int(outside)
            config_lib.validate(_cfg(**{"train.steps": 1, opt.key: inside}))
            with pytest.raises(UsageError) as e:
                config_lib.validate(_cfg(**{"train.steps": 1, opt.key: outside}))
            assert str(e.value).startswith(f"{opt.key}=") and opt.allowed() in str(e.value), str(e.value)
            checked += 1
    assert checked >= 40


def test_choices_come_from_the_code_that_uses_them():
    assert OPTS["model.backend"].choices == layers.BACKENDS
    assert OPTS["model.parallel_scan"].choices == layers.PARALLEL_SCANS
    assert OPTS["model.init"].choices == cells.INITS
    with pytest.raises(UsageError, match=r"model.backend='gpu': choose one of scan, flax_scan, cudnn"):
        config_lib.validate(_cfg(**{"model.backend": "gpu"}))


OPTS = config_lib.OPTIONS


@pytest.mark.parametrize("override, allowed", [
    ("model.hidden=0", "int or list of ints >= 1"),
    ("model.hidden=-4", "int or list of ints >= 1"),
    ("model.hidden=[64,0]", "int or list of ints >= 1"),
    ("model.layers=0", "int >= 1"),
    ("seed=99999999999999999999", "int in [0, 4294967295]"),
    ("seed=-1", "int in [0, 4294967295]"),
    ("train.steps=-5", "int >= 0"),
    ("train.epochs=-1", "int >= 0"),
    ("train.checkpoint_every=-1", "int >= 0"),
    ("train.eval_every=-1", "int >= 0"),
    ("optim.clip_norm=-1", "float >= 0"),
    ("optim.lr=0", "float > 0"),
    ("data.max_examples=-1", "int >= 0"),
    ("data.batch_size=0", "int >= 1"),
    ("model.dropout=1.0", "float in [0, 1)"),
    ("model.embed_dropout=1.5", "float in [0, 1)"),  # task keys: agnews:tiny
    ("model.embed=-1", "int >= 0"),
])
def test_cli_rejects_out_of_range_with_exit_2(run_cli, override, allowed, tmp_path):
    spec = "agnews:tiny" if override.startswith("model.embed") else "sequences:tiny"
    code, out, err = run_cli("train", spec, "--workdir", str(tmp_path / "run"), "--set", override)
    key = override.split("=")[0]
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"{key}=" in err and allowed in err, err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_cross_checks(run_cli):
    with pytest.raises(UsageError, match=r"model.hidden=\[8, 4, 2\], model.layers=2: model.hidden gives 3"):
        config_lib.validate(_cfg(**{"model.hidden": [8, 4, 2], "model.layers": 2}))
    with pytest.raises(UsageError, match="nothing to train"):
        config_lib.validate(_cfg(**{"train.epochs": 0, "train.steps": 0}))
    config_lib.validate(_cfg(**{"train.epochs": 0, "train.steps": 10}))


def test_batch_larger_than_the_data_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "sequences:tiny", "--workdir", str(tmp_path / "run"),
                           "--set", "data.batch_size=100000")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "error: data.batch_size=100000: larger than the training data" in err.strip().splitlines()[-1]


def test_keys_listing_and_docs_come_from_the_schema(run_cli):
    code, out, _ = run_cli("experiments", "--keys")
    assert code == 0
    for opt in config_lib.ALL_OPTIONS.values():
        assert f"  {opt.key} = " in out and opt.allowed() in out and opt.doc in out, opt.key
    doc = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    table = doc.split("<!-- options:begin -->\n")[1].split("\n<!-- options:end -->")[0]
    assert table == config_lib.markdown_table(), "run: python scripts/options_table.py --write"
    spec = importlib.util.spec_from_file_location("options_table", ROOT / "scripts" / "options_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.with_table(doc) == doc


def test_library_defaults_are_the_cli_defaults():
    """The spec the CLI builds from the default keys is RecurrentSpec(); the models'
    shorthand and Stacked take the same defaults; the cells' defaults are the keys'."""
    cli = build.recurrent_spec(_cfg())
    lib = RecurrentSpec()
    assert dataclasses.replace(cli, cell_options=()) == lib
    assert dict(cli.cell_options) == {"weight_init": config_lib.default("model.init"),
                                     "init_scale": config_lib.default("model.init_scale"),
                                     "forget_bias": config_lib.default("model.forget_bias")}
    cell = cells.make_cell(config_lib.default("model.cell"), 4)
    assert {k: getattr(cell, k) for k in dict(cli.cell_options)} == dict(cli.cell_options)
    assert ManyToOne(out_features=1).spec == lib
    assert TextClassifier(vocab_size=5, num_classes=2).spec == lib
    assert LanguageModel(vocab_size=5, embed=4).spec == lib
    assert Seq2Seq(src_vocab=5, tgt_vocab=5).spec == lib
    stacked = layers.Stacked()
    for field in ("cell", "dropout", "variational", "bidirectional", "unroll", "backend", "remat",
                  "wavefront", "recurrent_dropout", "parallel_scan"):
        assert getattr(stacked, field) == config_lib.default(f"model.{field}"), field
    assert layers.hidden_sizes(stacked.hidden, stacked.layers) == lib.hidden
    recurrent = layers.Recurrent(cells.make_cell("lstm", 4))
    for field in ("unroll", "backend", "remat", "recurrent_dropout", "parallel_scan"):
        assert getattr(recurrent, field) == config_lib.default(f"model.{field}"), field
    for model in (LanguageModel(vocab_size=5, embed=4), Seq2Seq(src_vocab=5, tgt_vocab=5)):
        assert model.head_chunk == config_lib.default("model.head_chunk")
    assert (lib.eval_unroll, lib.eval_wavefront) == (config_lib.default("model.eval_unroll"),
                                                     config_lib.default("model.eval_wavefront"))


def test_stacked_and_the_cli_build_the_same_layer():
    """Same keys -> the same layer fields, cells and parameters from Stacked(...) and from
    the config through the builder."""
    cfg = _cfg(**{"model.hidden": 3, "model.layers": 2, "model.cell": "gru"})
    from_cli = build.recurrent_spec(cfg).stacked()
    from_lib = layers.Stacked("gru", hidden=3, layers=2)
    fields = ("cell", "dropout", "variational", "bidirectional", "unroll", "backend", "remat", "wavefront",
              "recurrent_dropout", "parallel_scan")
    assert {f: getattr(from_cli, f) for f in fields} == {f: getattr(from_lib, f) for f in fields}
    assert layers.hidden_sizes(from_cli.hidden, from_cli.layers) == (3, 3)
    assert layers.hidden_sizes(from_lib.hidden, from_lib.layers) == (3, 3)
    assert from_cli._cell(3) == from_lib._cell(3)  # explicit default cell options == the cell's own
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 2)), jnp.float32)
    p_cli = from_cli.init(jax.random.key(1), x)
    p_lib = from_lib.init(jax.random.key(1), x)
    assert jax.tree.structure(p_cli) == jax.tree.structure(p_lib)
    for a, b in zip(jax.tree.leaves(p_cli), jax.tree.leaves(p_lib)):
        np.testing.assert_array_equal(a, b)
