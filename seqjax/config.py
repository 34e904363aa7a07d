"""Experiment configs: `ml_collections.ConfigDict` presets, dotted overrides, resolution.

An experiment is a Python file in ``experiments/`` defining::

    PRESETS = {"name": Preset("one-line description", {"dotted.key": value, ...}), ...}
    def get_config(preset: str) -> ml_collections.ConfigDict   # base config + the preset

The first preset is the default. Configs start from :func:`base_config`, which holds the
keys that mean the same in every experiment (DESIGN.md), so one ``--set model.cell=gru``
works across all of them. Every shared option is documented once, here, in
:data:`OPTIONS`; an experiment's own keys are documented in its file. The experiment files
ship inside the wheel as ``seqjax.experiments`` (pyproject.toml maps it to ``experiments/``).
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from seqjax.errors import UsageError

#: Every shared key with its meaning; experiment-specific keys are documented in their file.
OPTIONS = {
    "task": "which task adapter runs the experiment (sequences | lm | classify | translate)",
    "seed": "PRNG seed for init, data order and dropout",
    "model.cell": "recurrent cell: a registered name, rnn (Elman tanh) | rnn_relu | lstm | gru (PyTorch "
    "math) | mingru | minlstm (Feng et al. 2024) | flax_simple | flax_lstm | flax_optimized_lstm | flax_gru "
    "| flax_mgu (flax.linen's cells), or package.module:ClassName for any flax.linen.RNNCellBase on the "
    "Python path (README: Add a cell)",
    "model.cell_options": "constructor fields of the cell as a dict, e.g. {'activation': 'relu'}; "
    "model.init, init_scale, forget_bias and dtype reach the cell when it has those fields (weight_init, "
    "init_scale, forget_bias, dtype), and forget_bias / dtype are rejected for a cell without them",
    "model.recurrent_dropout": "dropout on the recurrent state (Gal & Ghahramani 2016): one mask per "
    "sequence on what each step reads of the carry (h; every carry part of a cell that does not expose h), "
    "training only; the wavefront and cuDNN then fall back to the layer-by-layer scan",
    "model.parallel_scan": "linear cells (mingru, minlstm): on = the recurrence parallel in time in log "
    "space | off = a sequential scan | auto = parallel on GPU/TPU, sequential on CPU (measured faster there, "
    "experiments/results/cells.md)",
    "model.hidden": "hidden units: an int (every layer) or a per-layer list, e.g. [256,128]",
    "model.layers": "number of stacked layers (with a list model.hidden: 1 or its length)",
    "model.dropout": "dropout between layers (and on embeddings/outputs where the model has them)",
    "model.variational": "reuse one dropout mask per sequence at every time step",
    "model.bidirectional": "run a backward layer too and concatenate",
    "model.init": "weight init: torch (U(+-1/sqrt(H))) | uniform (U(+-model.init_scale)); a cell without a "
    "weight_init field (flax's, a user's) keeps its own initializers",
    "model.init_scale": "half-width of the uniform init when model.init=uniform",
    "model.forget_bias": "added to the LSTM forget-gate bias at init",
    "model.unroll": "time steps unrolled per scan iteration (speed knob, same numbers)",
    "model.eval_unroll": "scan unroll of eval steps (0: model.unroll); eval has no backward loop, so "
    "unrolling it pays off where training's does not (speed knob, same numbers)",
    "model.dtype": "compute dtype: float32 | bfloat16 (params stay float32)",
    "model.backend": "recurrent kernel: scan (a scan over the cell, everywhere; its backward pass computes "
    "dW_hh as one matmul after the time loop, seqjax/recurrence.py) | flax_scan (nn.scan with plain "
    "autodiff: same numbers, slower at large hidden sizes) | cudnn (forward LSTM layers as one cuDNN kernel "
    "on a GPU, the scan elsewhere)",
    "model.remat": "true: recompute each time step in the backward pass instead of storing its activations "
    "(jax.checkpoint of the step): training memory of long sequences drops to the carries, at the cost of "
    "one more forward step per step",
    "model.wavefront": "true: a unidirectional stack of 2+ layers runs as one time loop, layer l at step k - "
    "l in iteration k (seqjax/recurrence.py stacked_recurrence): the layers' steps run side by side; same "
    "numbers up to float rounding (backend=scan only)",
    "model.eval_wavefront": "true: eval steps run as model.wavefront=true (same params and numbers; eval has "
    "no backward loop to serialise the layers again)",
    "model.head_chunk": "read-out loss of the LM and seq2seq models: -1 auto (fused and chunked on CPU, "
    "plain on GPU/TPU) | 0 plain (materialise the [B, T, V] logits) | N rows per chunk of the fused read-out "
    "(seqjax/losses.py)",
    "data.batch_size": "examples (or parallel streams) per step, over all devices",
    "data.eval_batch_size": "batch size for evaluation (0: same as data.batch_size)",
    "data.max_examples": "cap the training set (0: all), for quick runs",
    "data.source": "where the rows come from (seqjax/data/sources.py): a built-in corpus (ptb | ptb_char | "
    "shakespeare | ag_news | tatoeba, its file by data.pair), a datasets builder for local files (text | csv "
    "| json | parquet), disk (a save_to_disk directory in data.files.train), hub:NAME[/CONFIG] (NAME may be "
    "OWNER/NAME; online only), npz (sequences: x [N,T,D], y [N], optional lengths [N]) or a generated one "
    "(toy | synthetic)",
    "data.files.train": "training file(s) of a builder source: a path, a glob or comma-separated paths",
    "data.files.valid": "validation file(s); empty: carved from train (data.valid_fraction)",
    "data.files.test": "test file(s); empty: carved from train (data.test_fraction)",
    "data.valid_fraction": "rows of train held out as valid when there is no valid split: a fraction < 1 or "
    "a count; seeded by `seed` (language models: the tail of the train text, before test)",
    "data.test_fraction": "rows of train held out as test when there is no test split (fraction or count; "
    "0 for a one-file LM corpus: test is the valid split)",
    "data.text_column": "the text column (classifier input; the language model's text); a,b joins columns "
    "a and b",
    "data.label_column": "the label column of a classifier (any values: the classes are those seen in train)",
    "data.source_column": "the source-text column of a translator",
    "data.target_column": "the target-text column of a translator",
    "data.delimiter": "csv field separator (tab or \\t: TSV; empty: comma)",
    "optim.name": "sgd | momentum | adam | adamw | rmsprop",
    "optim.lr": "peak learning rate",
    "optim.clip_norm": "clip gradients by global norm (0: off)",
    "optim.weight_decay": "decoupled weight decay (adamw) or L2 (others)",
    "optim.momentum": "momentum for momentum/rmsprop",
    "optim.b1": "Adam beta1",
    "optim.b2": "Adam beta2",
    "optim.eps": "Adam/RMSprop epsilon",
    "schedule.name": "constant | step | exponential | cosine | plateau",
    "schedule.decay_after": "step: epochs at the full lr before decaying (Zaremba: 4)",
    "schedule.factor": "step: lr multiplier per epoch after decay_after; plateau: multiplier on a plateau",
    "schedule.decay_rate": "exponential: lr * decay_rate ** (step / decay_steps)",
    "schedule.decay_steps": "exponential: steps per decay_rate factor (0: one epoch)",
    "schedule.warmup_steps": "cosine: linear warm-up steps",
    "schedule.min_lr_ratio": "cosine: final lr as a fraction of optim.lr",
    "schedule.patience": "plateau: evals without improvement before multiplying lr by factor",
    "train.epochs": "epochs to train (used when train.steps is 0)",
    "train.steps": "total optimizer steps; when > 0 it wins over train.epochs",
    "train.eval_every": "evaluate every N steps (0: at the end of each epoch)",
    "train.checkpoint_every": "checkpoint every N steps (0: at each evaluation)",
    "train.keep_checkpoints": "how many recent checkpoints to keep (the best is kept apart)",
    "train.final_params": "params of the final test report: best (the best evaluation's) | average (the mean "
    "of the best and the kept checkpoints; the summary then has an `average` entry)",
    "train.log_every": "write train metrics every N steps",
    "train.early_stop_patience": "stop after N evaluations without improvement (0: never)",
    "train.progress": "show a progress bar (auto: only on a terminal) | on | off",
    "train.hooks": "callbacks the loop runs (docs/hooks.md): import paths package.module:name of "
    "seqjax.training.hooks.Hook objects or of functions fn(info) run after every step",
}


def base_config() -> ml_collections.ConfigDict:
    """The shared keys with their defaults (see :data:`OPTIONS`)."""
    c = ml_collections.ConfigDict()
    c.task = ""
    c.seed = 0
    c.model = dict(
        cell="lstm",
        cell_options=config_dict.FieldReference({}, field_type=object),
        hidden=config_dict.FieldReference(128, field_type=object),
        layers=1,
        dropout=0.0,
        variational=False,
        bidirectional=False,
        init="torch",
        init_scale=0.1,
        forget_bias=0.0,
        unroll=1,
        eval_unroll=4,
        dtype="float32",
        backend="scan",
        remat=False,
        wavefront=False,
        eval_wavefront=True,
        recurrent_dropout=0.0,
        parallel_scan="auto",
        head_chunk=-1,
    )
    c.data = dict(
        batch_size=32, eval_batch_size=0, max_examples=0, source="",
        files=dict(train="", valid="", test=""), valid_fraction=0.1, test_fraction=0.1,
        text_column="text", label_column="label", source_column="source", target_column="target",
        delimiter="",
    )
    c.optim = dict(
        name="adam", lr=1e-3, clip_norm=0.0, weight_decay=0.0, momentum=0.9,
        b1=0.9, b2=0.999, eps=1e-8,
    )
    c.schedule = dict(
        name="constant", decay_after=0, factor=0.5, decay_rate=0.5, decay_steps=0,
        warmup_steps=0, min_lr_ratio=0.0, patience=2,
    )
    c.train = dict(
        epochs=1, steps=0, eval_every=0, checkpoint_every=0, keep_checkpoints=2,
        log_every=50, early_stop_patience=0, progress="auto", final_params="best", hooks=[],
    )
    return c


# --------------------------------------------------------------------------- files


def experiments_dirs() -> list[pathlib.Path]:
    """Where short config names are looked up, first match wins: ``./experiments`` (the
    user's own), the source tree's ``experiments/``, the installed ``seqjax.experiments``."""
    dirs = [pathlib.Path.cwd() / "experiments",
            pathlib.Path(__file__).resolve().parent.parent / "experiments"]
    spec = importlib.util.find_spec("seqjax.experiments")
    if spec is not None and spec.submodule_search_locations:
        dirs += [pathlib.Path(p) for p in spec.submodule_search_locations]
    dirs = [d.resolve() for d in dirs if d.is_dir()]
    return [d for i, d in enumerate(dirs) if d not in dirs[:i]]


def find_config_file(name: str) -> pathlib.Path:
    """``experiments/ptb_lm.py`` or the short name ``ptb_lm`` (dashes allowed)."""
    p = pathlib.Path(name)
    if p.suffix == ".py" or "/" in name:
        if not p.is_file():
            raise UsageError(f"config file {name} not found; `seqjax experiments` lists them")
        return p
    stem = name.replace("-", "_")
    for d in experiments_dirs():
        if (d / f"{stem}.py").is_file():
            return d / f"{stem}.py"
    known = [f.stem for d in experiments_dirs() for f in d.glob("*.py") if is_config_file(f)]
    hint = difflib.get_close_matches(stem, known, n=3)
    raise UsageError(
        f"unknown experiment {name!r}; "
        + (f"did you mean {', '.join(hint)}? " if hint else "")
        + "`seqjax experiments` lists them"
    )


def load_module(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"seqjax_experiment_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for attr in ("PRESETS", "get_config"):
        if not hasattr(mod, attr):
            raise UsageError(f"{path}: an experiment file must define {attr}")
    return mod


def is_config_file(path: pathlib.Path) -> bool:
    """Experiment configs define ``get_config``."""
    return "def get_config(" in path.read_text()


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named variant of an experiment: a description and dotted-key overrides of its base."""

    description: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def with_preset(
    cfg: ml_collections.ConfigDict, presets: Mapping[str, Preset], name: str
) -> ml_collections.ConfigDict:
    """``cfg`` with preset ``name``'s overrides applied in place (keys must exist in ``cfg``)."""
    if name not in presets:
        hint = difflib.get_close_matches(name, list(presets), n=1)
        raise UsageError(
            f"unknown preset {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; presets: {', '.join(presets)}"
        )
    keys = set(flat_keys(cfg))
    for key, value in presets[name].overrides.items():
        if key not in keys:
            raise UsageError(f"preset {name!r}: unknown config key {key!r}")
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def _description(preset: Preset | str) -> str:
    return preset.description if isinstance(preset, Preset) else str(preset)


def list_experiments() -> dict[str, dict[str, str]]:
    """``{config name: {preset: description}}`` for every experiment file."""
    out = {}
    for d in experiments_dirs():
        for f in sorted(d.glob("*.py")):
            if f.stem.startswith("_") or f.stem in out or not is_config_file(f):
                continue
            out[f.stem] = {k: _description(v) for k, v in load_module(f).PRESETS.items()}
    return out


def resolve(spec: str | None, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """``CONFIG[:PRESET]`` plus ``key=value`` overrides -> a locked, resolved config.

    The config records where it came from in ``experiment`` and ``preset``.
    """
    spec = spec or "sequences"
    name, _, preset = spec.partition(":")
    path = find_config_file(name)
    mod = load_module(path)
    presets = list(mod.PRESETS)
    preset = preset or presets[0]
    if preset not in mod.PRESETS:
        hint = difflib.get_close_matches(preset, presets, n=1)
        raise UsageError(
            f"{path.name}: unknown preset {preset!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; presets: {', '.join(presets)}"
        )
    cfg = mod.get_config(preset)
    with cfg.unlocked():
        cfg.experiment = path.stem
        cfg.preset = preset
    cfg.lock()
    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


# --------------------------------------------------------------------------- overrides


def flat_keys(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        if isinstance(v, ml_collections.ConfigDict) and len(v):
            keys += flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(prefix + k)
    return keys


def parse_value(text: str) -> Any:
    """``128`` -> int, ``0.5`` -> float, ``true`` -> bool, ``[256,128]`` -> list, else str."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return list(value) if isinstance(value, tuple) else value


def unknown_key(option: str, key: str, keys: Iterable[str]) -> UsageError:
    """The one-line error for an unknown config ``key`` given with ``option``, with close matches."""
    close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.5)
    return UsageError(f"{option} {key}: unknown config key"
                      + (f"; closest: {', '.join(close)}" if close else "")
                      + "; `seqjax experiments --keys` lists them")


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Iterable[str]) -> None:
    """Apply ``key=value`` strings in place; exit-2 errors name the key and close ones."""
    keys = flat_keys(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=0.01")
        if key not in keys:
            raise unknown_key("--set", key, keys)
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        value = parse_value(raw)
        old = node[leaf]
        if isinstance(old, str) and not isinstance(value, str):
            value = raw  # e.g. --set data.pair=123 on a string key
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise UsageError(
                f"--set {key}={raw}: expected {type(old).__name__} (current value {old!r})"
            ) from e


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Cross-field checks that a type alone cannot express."""
    h = cfg.model.hidden
    if isinstance(h, bool) or not (
        isinstance(h, int) or (isinstance(h, (list, tuple)) and h and all(isinstance(x, int) for x in h))
    ):
        raise UsageError(f"model.hidden={h!r}: expected an int or a list of ints, e.g. [256,128]")
    if isinstance(h, (list, tuple)) and cfg.model.layers not in (1, len(h)):
        raise UsageError(f"model.hidden={list(h)} gives {len(h)} layers but model.layers={cfg.model.layers}: "
                         f"set model.layers={len(h)} (or 1), or make model.hidden an int")
    _validate_cell(cfg.model)
    checks = {
        "model.parallel_scan": (cfg.model.get("parallel_scan", "auto"), ("auto", "on", "off")),
        "optim.name": (cfg.optim.name, ("sgd", "momentum", "adam", "adamw", "rmsprop")),
        "schedule.name": (cfg.schedule.name, ("constant", "step", "exponential", "cosine", "plateau")),
        "model.dtype": (cfg.model.dtype, ("float32", "bfloat16", "float16")),
        "model.init": (cfg.model.init, ("torch", "uniform")),
        "model.backend": (cfg.model.backend, ("scan", "flax_scan", "cudnn")),
        "train.progress": (cfg.train.progress, ("auto", "on", "off")),
        "train.final_params": (cfg.train.final_params, ("best", "average")),
    }
    for key, (value, choices) in checks.items():
        if value not in choices:
            raise UsageError(f"{key}={value!r}: choose one of {', '.join(choices)}")
    positive = {"data.batch_size": cfg.data.batch_size, "optim.lr": cfg.optim.lr}
    for key, value in positive.items():
        if value <= 0:
            raise UsageError(f"{key}={value}: must be > 0")
    for key in ("dropout", "recurrent_dropout"):
        if not 0.0 <= cfg.model.get(key, 0.0) < 1.0:
            raise UsageError(f"model.{key}={cfg.model[key]}: must be in [0, 1)")
    hooks = cfg.train.get("hooks", [])
    if not isinstance(hooks, (list, tuple)) or not all(isinstance(h, str) for h in hooks):
        raise UsageError(f"train.hooks={hooks!r}: expected a list of package.module:name")
    if error := _import_error(hooks):
        raise UsageError(f"train.hooks={list(hooks)!r}: {error}")


def _import_error(paths) -> str | None:
    """Why one of ``paths`` (``package.module:name``) does not import (None when all do)."""
    for path in paths:
        module, sep, attr = path.partition(":")
        if not (sep and module and attr):
            return f"{path!r} is not an import path; write package.module:name"
        try:
            obj = importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 — ImportError, or any error the module raises
            return f"cannot import {module!r} ({type(e).__name__}: {e}); is it on the Python path?"
        for part in attr.split("."):
            if not hasattr(obj, part):
                return f"module {module!r} has no {attr!r}"
            obj = getattr(obj, part)
    return None


def _validate_cell(model: ml_collections.ConfigDict) -> None:
    """``model.cell`` is a registered name or an importable ``package.module:ClassName``;
    ``model.cell_options`` a dict."""
    from seqjax import cells

    cell = model.cell
    if not isinstance(cell, str) or (cell not in cells.registered_cells() and ":" not in cell):
        raise UsageError(f"model.cell={cell!r}: choose one of {', '.join(cells.registered_cells())} "
                         "or package.module:ClassName")
    try:
        cells.resolve_cell(cell)
    except ValueError as e:
        raise UsageError(f"model.cell={cell!r}: {e}") from None
    options = model.get("cell_options") or {}
    if not hasattr(options, "items"):
        raise UsageError(f"model.cell_options={options!r}: expected a dict, e.g. {{'activation': 'relu'}}")


def to_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(json.loads(cfg.to_json()), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Rebuild a saved ``config.json`` (run directories) as a locked ConfigDict."""
    cfg = base_config()
    data = json.loads(text)
    with cfg.unlocked():
        _merge(cfg, data)
    cfg.lock()
    return cfg


def _merge(cfg: ml_collections.ConfigDict, data: dict) -> None:
    for k, v in data.items():
        if isinstance(v, dict):
            if k not in cfg:
                cfg[k] = ml_collections.ConfigDict()
            _merge(cfg[k], v)
        elif k == "hidden" or k not in cfg or cfg[k] is None or v is None:
            cfg[k] = config_dict.FieldReference(v, field_type=object) if k == "hidden" else v
        else:
            cfg[k] = v
