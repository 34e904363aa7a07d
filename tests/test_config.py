"""Configs: presets, short names, typed dotted overrides, one-line exit-2 errors."""
import json
import pathlib

import pytest

from seqjax import config as config_lib
from seqjax.core.layers import hidden_sizes
from seqjax.errors import UsageError


def test_short_and_path_forms_resolve_the_same():
    a = config_lib.resolve("sequences:parity")
    b = config_lib.resolve("experiments/sequences.py:parity")
    assert json.loads(a.to_json()) == json.loads(b.to_json())
    assert (a.experiment, a.preset) == ("sequences", "parity")


def test_default_preset_is_the_first():
    assert config_lib.resolve("sequences").preset == "parity"


def test_overrides_are_typed():
    cfg = config_lib.resolve("sequences:tiny", ["model.hidden=[24,12]", "optim.lr=0.01", "model.cell=gru",
                                                "data.mask=false", "train.epochs=3"])
    assert cfg.model.hidden == [24, 12] and hidden_sizes(cfg.model.hidden, cfg.model.layers) == (24, 12)
    assert (cfg.optim.lr == 0.01 and cfg.model.cell == "gru" and cfg.data.mask is False
            and cfg.train.epochs == 3)
    # an int into a float key is fine
    assert config_lib.resolve("sequences:tiny", ["optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.hiden=3", "closest: model.hidden"),
        ("optim.lr=fast", "expected float"),
        ("train.epochs=2.5", "expected int"),
        ("model.cell=lstmm", "choose one of"),
        ("model.hidden=[1.5]", "model.hidden"),
        ("model.hidden=[8,4,2] model.layers=2", "gives 3 layers but model.layers=2"),
        ("nokey", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(UsageError) as e:
        config_lib.resolve("sequences:tiny", override.split(" "))
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_preset_and_experiment():
    with pytest.raises(UsageError, match="presets: parity, ar, padding, tiny"):
        config_lib.resolve("sequences:parityy")
    with pytest.raises(UsageError, match="did you mean sequences"):
        config_lib.resolve("sequence")


def test_every_experiment_preset_resolves():
    for name, presets in config_lib.list_experiments().items():
        assert "tiny" in presets, f"{name} has no tiny preset"
        for preset in presets:
            cfg = config_lib.resolve(f"{name}:{preset}")
            assert cfg.task, (name, preset)


def test_json_round_trip():
    cfg = config_lib.resolve("ptb_lm:tf-256-128")
    back = config_lib.from_json(config_lib.to_json(cfg))
    assert json.loads(back.to_json()) == json.loads(cfg.to_json())
    assert hidden_sizes(back.model.hidden, back.model.layers) == (256, 128)


def test_cli_bad_key_exits_2_with_one_line(run_cli):
    code, out, err = run_cli("train", "sequences:tiny", "--set", "optim.lrr=0.1")
    assert code == 2
    assert err.strip().count("\n") == 0 and "optim.lr" in err and "Traceback" not in err
    code, _, err = run_cli("train", "sequences:tiny", "--set", "train.epochs=many")
    assert code == 2 and "expected int" in err


def test_experiments_dir_holds_only_configs():
    """Every .py file in experiments/ is a config: PRESETS of Preset and get_config."""
    root = pathlib.Path(config_lib.__file__).resolve().parent.parent / "experiments"
    files = sorted(root.glob("*.py"))
    assert len(files) >= 5
    for f in files:
        mod = config_lib.load_module(f)
        assert all(isinstance(p, config_lib.Preset) for p in mod.PRESETS.values()), f
        default = mod.get_config()
        first = mod.get_config(next(iter(mod.PRESETS)))
        assert default.to_json() == first.to_json(), f"{f.name}: the default preset is not the first"


def test_preset_with_unknown_key_is_rejected():
    cfg = config_lib.base_config()
    presets = {"a": config_lib.Preset("x", {"model.hiden": 3})}
    with pytest.raises(UsageError, match="preset 'a': unknown config key 'model.hiden'"):
        config_lib.with_preset(cfg, presets, "a")
    with pytest.raises(UsageError, match="unknown preset 'b'"):
        config_lib.with_preset(cfg, presets, "b")


def test_pyproject_lists_every_package():
    """The wheel ships every package of seqjax/ and the experiment configs."""
    tomllib = pytest.importorskip("tomllib")

    root = pathlib.Path(config_lib.__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "seqjax").rglob("__init__.py")}
    assert found | {"seqjax.experiments"} == listed
