"""Experiment configs: the option schema, `ml_collections.ConfigDict` presets, overrides.

Every shared config key is declared once, in :data:`SCHEMA`, as an :class:`Option`: its
default, type, allowed values or range, and a one-line doc. From that one declaration come
:func:`base_config` (the defaults), :func:`validate` and ``--set`` (type, range and choices,
one-line errors naming the key and what it allows), ``seqjax experiments --keys``, the option
table of docs/options.md (``python scripts/options_table.py --write``) and the defaults of the
library's recurrent spec (:class:`seqjax.models.spec.RecurrentSpec`). A new shared key is one
``Option(...)`` line in :data:`SCHEMA`; docs/design.md says why the schema sits over
``ml_collections`` rather than typed dataclasses.

An experiment is a Python file in ``experiments/`` defining::

    PRESETS = {"name": Preset("one-line description", {"dotted.key": value, ...}), ...}
    def get_config(preset: str) -> ml_collections.ConfigDict   # base config + the preset

The first preset is the default. Configs start from :func:`base_config`, so one ``--set
model.cell=gru`` works across all of them; an experiment's (or a task's) own keys are
documented in its file. The experiment files ship inside the wheel as
``seqjax.experiments`` (pyproject.toml maps it to ``experiments/``).
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import json
import math
import numbers
import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from seqjax import importpath
from seqjax.core import cells
from seqjax.core.layers import BACKENDS, PARALLEL_SCANS
from seqjax.core.newton import NewtonOptions
from seqjax.errors import UsageError

# --------------------------------------------------------------------------- the schema

#: value kinds of :class:`Option`: name -> (test of one value, how the docs say it)
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "int"),
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
              "float"),
    "bool": (lambda v: isinstance(v, bool), "bool"),
    "str": (lambda v: isinstance(v, str), "str"),
    "dict": (lambda v: isinstance(v, Mapping) or isinstance(v, ml_collections.ConfigDict), "dict"),
    "sizes": (lambda v: (isinstance(v, numbers.Integral) and not isinstance(v, bool)) or (
        isinstance(v, (list, tuple)) and len(v) > 0
        and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in v)),
        "int or list of ints"),
    "paths": (lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
              "list of package.module:name"),
}


@dataclasses.dataclass(frozen=True)
class Option:
    """One config key, declared once.

    Attributes:
      key: dotted key, e.g. ``"model.hidden"``.
      default: the value of :func:`base_config`.
      doc: one line: what it does (and what 0 or an empty value means).
      kind: a :data:`KINDS` name; ``None``: from the default's type.
      choices: the allowed values (a tuple, or a function returning one, for registries).
      min, max: inclusive bounds (of each size for ``kind="sizes"``).
      above, below: exclusive bounds.
      check: a further test of the value: ``value -> None`` or the reason it is wrong
        (e.g. ``model.cell``: a registered name or an importable class).
      allowed_doc: how the docs state the allowed values when ``check`` decides them.
      tasks: for a key of :data:`TASK_SCHEMA`, the tasks whose configs have it.
    """

    key: str
    default: Any
    doc: str
    kind: str | None = None
    choices: tuple | Callable[[], tuple] | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    check: Callable[[Any], str | None] | None = None
    allowed_doc: str = ""
    tasks: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """The :data:`KINDS` name of the value."""
        if self.kind:
            return self.kind
        return {bool: "bool", int: "int", float: "float", str: "str", dict: "dict"}[type(self.default)]

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``"int >= 1"``, ``"float in [0, 1)"``, ``"one of a, b"``."""
        if self.choices is not None:
            choices = self.choices() if callable(self.choices) else self.choices
            text = "one of " + ", ".join(str(c) for c in choices)
            return text + (f", {self.allowed_doc}" if self.allowed_doc else "")
        if self.allowed_doc:
            return self.allowed_doc
        noun = KINDS[self.type][1]
        lower = ("[", ">=", self.min) if self.min is not None else ("(", ">", self.above)
        upper = ("]", "<=", self.max) if self.max is not None else (")", "<", self.below)
        if lower[2] is not None and upper[2] is not None:
            return f"{noun} in {lower[0]}{_num(lower[2])}, {_num(upper[2])}{upper[0]}"
        bound = lower if lower[2] is not None else upper if upper[2] is not None else None
        return f"{noun} {bound[1]} {_num(bound[2])}" if bound else noun

    def error(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (None when it is)."""
        test, _ = KINDS[self.type]
        if self.type == "float" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = float(value)
        if not test(value):
            return f"expected {self.allowed()}"
        if self.choices is not None:
            choices = self.choices() if callable(self.choices) else self.choices
            if value not in choices:
                close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
                return f"choose {self.allowed()}" + (f" (did you mean {close[0]}?)" if close else "")
        for v in (value if self.type == "sizes" and not isinstance(value, numbers.Integral) else [value]):
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and not (
                    (self.min is None or v >= self.min) and (self.max is None or v <= self.max)
                    and (self.above is None or v > self.above) and (self.below is None or v < self.below)):
                return f"must be {self.allowed()}"
        return self.check(value) if self.check else None


def _import_error(paths: Iterable[str]) -> str | None:
    """Why one of ``paths`` (``package.module:name``) does not import (None when all do)."""
    for path in paths:
        module, sep, attr = path.partition(":")
        if not (sep and module and attr):
            return f"{path!r} is not an import path; write package.module:name"
        try:
            obj = importpath.import_module(module)
        except Exception as e:  # noqa: BLE001 — ImportError, or any error the module raises
            return f"cannot import {module!r} ({type(e).__name__}: {e}); is it on the Python path?"
        for part in attr.split("."):
            if not hasattr(obj, part):
                return f"module {module!r} has no {attr!r}"
            obj = getattr(obj, part)
    return None


def _loss_terms_error(terms: Mapping) -> str | None:
    """Why ``train.extra_loss`` is not ``{import path: weight}`` (None when it is)."""
    if not all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in terms.values()):
        return "expected {package.module:fn: weight} with numeric weights"
    return _import_error(list(terms))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _check_cell(cell: Any) -> str | None:
    """``model.cell``: a registered name or an importable ``package.module:ClassName``."""
    if cell not in cells.registered_cells() and ":" not in cell:
        return (f"choose one of {', '.join(cells.registered_cells())} or package.module:ClassName "
                "(docs/design.md: cells)")
    try:
        cells.resolve_cell(cell)
    except ValueError as e:
        return str(e)
    return None


#: every shared key (``base_config``), in the order of the docs. A new key: one line here.
SCHEMA: tuple[Option, ...] = (
    Option("task", "", "which task adapter runs the experiment (set by each experiment file)",
           allowed_doc="sequences | lm | classify | translate or a registered task"),
    Option("seed", 0, "PRNG seed for init, data order and dropout", min=0, max=2**32 - 1),
    # -- model: the recurrent layers (seqjax.models.spec.RecurrentSpec takes them whole)
    Option("model.cell", "lstm", "recurrent cell: rnn (Elman tanh), rnn_relu, lstm, gru (PyTorch math), "
           "mingru, minlstm (Feng et al. 2024), flax_* (flax.linen's cells), or package.module:ClassName "
           "for any flax.linen.RNNCellBase on the Python path (docs/design.md: cells)", kind="str",
           check=_check_cell, allowed_doc="a registered cell name or package.module:ClassName"),
    Option("model.cell_options", {}, "constructor fields of the cell as a dict, e.g. {'activation': "
           "'relu'}; model.init, init_scale, forget_bias and dtype reach a cell that has those fields"),
    Option("model.hidden", 128, "hidden units: an int (every layer) or one size per layer, e.g. [256,128]",
           kind="sizes", min=1),
    Option("model.layers", 1, "stacked layers (with a list model.hidden: 1 or its length)", min=1),
    Option("model.dropout", 0.0, "dropout between layers (and on embeddings/outputs where the model has "
           "them)", min=0, below=1),
    Option("model.variational", False, "reuse one dropout mask per sequence at every time step"),
    Option("model.bidirectional", False, "run a backward layer too and concatenate"),
    Option("model.recurrent_dropout", 0.0, "dropout on the recurrent state, one mask per sequence (Gal & "
           "Ghahramani 2016); training only; the wavefront and cuDNN then fall back to the layer scan",
           min=0, below=1),
    Option("model.weight_drop", 0.0, "DropConnect on the recurrent weights W_hh, one mask per batch "
           "(AWD-LSTM's weight-drop, seqjax/core/weight_drop.py); training only", min=0, below=1),
    Option("model.init", "torch", "weight init: torch (U(+-1/sqrt(H))) | uniform (U(+-model.init_scale)); "
           "a cell without a weight_init field keeps its own initializers", choices=cells.INITS),
    Option("model.init_scale", 0.1, "half-width of the uniform init when model.init=uniform", above=0),
    Option("model.forget_bias", 0.0, "added to the LSTM forget-gate bias at init"),
    Option("model.unroll", 1, "time steps unrolled per scan iteration (speed knob, same numbers)", min=1),
    Option("model.eval_unroll", 4, "scan unroll of eval steps (0: model.unroll; speed knob, same "
           "numbers)", min=0),
    Option("model.dtype", "float32", "compute dtype (params stay float32)",
           choices=("float32", "bfloat16", "float16")),
    Option("model.backend", "scan", "recurrent kernel: scan (everywhere; dW_hh as one matmul after the "
           "time loop) | flax_scan (nn.scan with plain autodiff) | cudnn (forward LSTM layers as one cuDNN "
           "kernel on a GPU, scan elsewhere) | newton (all time steps at once by Newton iterations, each a "
           "parallel scan; seqjax/core/newton.py)", choices=BACKENDS),
    Option("model.remat", False, "recompute each time step in the backward pass instead of storing its "
           "activations: memory of long sequences drops to the carries, one more forward step per step"),
    Option("model.wavefront", False, "a unidirectional stack of 2+ layers runs as one time loop, layer l "
           "at step k - l (same numbers up to float rounding; backend=scan)"),
    Option("model.eval_wavefront", True, "eval steps run as model.wavefront=true (same params and "
           "numbers)"),
    Option("model.parallel_scan", "auto", "linear cells (mingru, minlstm): on = parallel in time (log "
           "space) | off = sequential | auto = parallel on GPU/TPU, sequential on CPU",
           choices=PARALLEL_SCANS),
    Option("model.newton_tol", NewtonOptions.tol, "backend=newton: converged when no state entry changes by "
           "more than this in one iteration", above=0),
    Option("model.newton_max_iters", NewtonOptions.max_iters, "backend=newton: iterations before the "
           "fall-back to the sequential loop (one logged line)", min=1),
    Option("model.newton_damping", NewtonOptions.damping, "backend=newton: the Jacobian is shrunk to J / (1 "
           "+ this), towards the Picard iteration (a trust region; 0: Newton)", min=0),
    Option("model.head_chunk", -1, "read-out loss of the LM and seq2seq models: -1 auto (fused and "
           "chunked on CPU, plain on GPU/TPU) | 0 plain ([B, T, V] logits) | N rows per fused chunk", min=-1),
    # -- data
    Option("data.batch_size", 32, "examples (or parallel streams) per optimizer step, over all devices",
           min=1),
    Option("data.eval_batch_size", 0, "batch size for evaluation (0: data.batch_size)", min=0),
    Option("data.max_examples", 0, "cap the training set (0: all), for quick runs", min=0),
    Option("data.num_classes", 0, "classes of integer labels (0: the labels decide; labels far beyond "
           "their distinct count are refused unless this says how many classes there are)", min=0),
    Option("data.source", "", "where rows come from: a built-in corpus (ptb | ptb_char | shakespeare | "
           "ag_news | tatoeba), a datasets builder for local files (text | csv | json | parquet), disk, "
           "hub:NAME[/CONFIG], npz or a generated one (toy | synthetic) (docs/design.md: data sources)"),
    Option("data.files.train", "", "training file(s) of a builder source: a path, a glob or "
           "comma-separated paths"),
    Option("data.files.valid", "", "validation file(s); empty: carved from train (data.valid_fraction)"),
    Option("data.files.test", "", "test file(s); empty: carved from train (data.test_fraction)"),
    Option("data.valid_fraction", 0.1, "rows of train held out as valid when there is no valid split: a "
           "fraction < 1 or a count, seeded by `seed` (LMs: the tail of the train text)", min=0),
    Option("data.test_fraction", 0.1, "rows of train held out as test when there is no test split "
           "(fraction or count; 0 for a one-file LM corpus: test is the valid split)", min=0),
    Option("data.text_column", "text", "the text column (classifier input, LM text); a,b joins columns"),
    Option("data.label_column", "label", "the label column of a classifier (classes: the values in "
           "train)"),
    Option("data.source_column", "source", "the source-text column of a translator"),
    Option("data.target_column", "target", "the target-text column of a translator"),
    Option("data.delimiter", "", "csv field separator (tab or \\t: TSV; empty: comma)"),
    # -- optimizer and schedule
    Option("optim.name", "adam", "optimizer", choices=("sgd", "momentum", "adam", "adamw", "rmsprop")),
    Option("optim.lr", 1e-3, "peak learning rate", above=0),
    Option("optim.clip_norm", 0.0, "clip gradients by global norm (0: off)", min=0),
    Option("optim.weight_decay", 0.0, "decoupled weight decay (adamw) or L2 (others)", min=0),
    Option("optim.momentum", 0.9, "momentum of momentum / rmsprop", min=0, max=1),
    Option("optim.b1", 0.9, "Adam beta1", min=0, below=1),
    Option("optim.b2", 0.999, "Adam beta2", min=0, below=1),
    Option("optim.eps", 1e-8, "Adam / RMSprop epsilon", min=0),
    Option("schedule.name", "constant", "learning-rate schedule",
           choices=("constant", "step", "exponential", "cosine", "plateau")),
    Option("schedule.decay_after", 0, "step: epochs at the full lr before decaying (Zaremba: 4)", min=0),
    Option("schedule.factor", 0.5, "step: lr multiplier per epoch after decay_after; plateau: multiplier "
           "on a plateau", above=0, max=1),
    Option("schedule.decay_rate", 0.5, "exponential: lr * decay_rate ** (step / decay_steps)", above=0),
    Option("schedule.decay_steps", 0, "exponential: steps per decay_rate factor (0: one epoch)", min=0),
    Option("schedule.warmup_steps", 0, "cosine: linear warm-up steps", min=0),
    Option("schedule.min_lr_ratio", 0.0, "cosine: final lr as a fraction of optim.lr", min=0, max=1),
    Option("schedule.patience", 2, "plateau: evaluations without improvement before multiplying lr by "
           "factor", min=0),
    # -- training loop
    Option("train.epochs", 1, "epochs to train (used when train.steps is 0)", min=0),
    Option("train.steps", 0, "total optimizer steps; when > 0 it wins over train.epochs", min=0),
    Option("train.eval_every", 0, "evaluate every N steps (0: at the end of each epoch)", min=0),
    Option("train.checkpoint_every", 0, "checkpoint every N steps (0: at each evaluation)", min=0),
    Option("train.keep_checkpoints", 2, "recent checkpoints kept (the best is kept apart)", min=1),
    Option("train.final_params", "best", "params of the final test report: best (the best evaluation's) "
           "| average (the mean of the best and the kept checkpoints; the summary has an `average` entry)",
           choices=("best", "average")),
    Option("train.log_every", 50, "write train metrics every N steps", min=1),
    Option("train.early_stop_patience", 0, "stop after N evaluations without improvement (0: never)",
           min=0),
    Option("train.progress", "auto", "progress bar: auto (only on a terminal) | on | off",
           choices=("auto", "on", "off")),
    Option("train.hooks", [], "callbacks the loop runs (docs/hooks.md): import paths package.module:name "
           "of seqjax.training.hooks.Hook objects or of functions fn(info) run after every step",
           kind="paths", check=lambda v: _import_error(v)),
    Option("train.ema", 0.0, "decay of an exponential moving average of the params, which is then evaluated, "
           "kept as best and restorable as --checkpoint ema (0: off)", min=0, below=1),
    Option("train.ntasgd", 0, "NT-ASGD (AWD-LSTM): average the params from the first evaluation whose valid "
           "loss is worse than all before the last N; then evaluated, kept as best, --checkpoint asgd "
           "(0: off)", min=0),
    Option("train.accumulate", 1, "micro-batches per optimizer step (gradient accumulation): the "
           "data.batch_size rows are split into this many, one update for all of them", min=1),
    Option("train.extra_loss", {}, "extra terms of the training objective, {package.module:fn: weight}; "
           "fn(params, batch, outputs, rng, train) -> scalar, outputs: the model's sown hidden outputs",
           check=lambda v: _loss_terms_error(v)),
)

#: keys that only some tasks' configs have (their defaults are the experiment's): checked by
#: :func:`validate` where present, documented in docs/options.md, not part of base_config
TASK_SCHEMA: tuple[Option, ...] = (
    Option("model.embed", None, "embedding size of the tokens (translate: 0 = one-hot, as the Keras "
           "character example)", kind="int", min=0, tasks=("lm", "classify", "translate")),
    Option("model.tie_weights", None, "the softmax reuses the embedding matrix (model.embed must equal the "
           "last hidden size)", kind="bool", tasks=("lm",)),
    Option("model.embed_dropout", None, "dropout on embedding channels, one mask per text (Keras "
           "SpatialDropout1D)", kind="float", min=0, below=1, tasks=("classify",)),
    Option("model.pooling", None, "how the classifier reads the RNN outputs: last (the last valid state) | "
           "mean | max (over the valid steps)", kind="str", tasks=("classify",),
           allowed_doc="last, mean or max (checked by the builder)"),
    Option("model.attention", None, "none | bahdanau (Bahdanau et al. 2015, the context fed to the decoder "
           "cell and the read-out)", kind="str", tasks=("translate",),
           allowed_doc="none or bahdanau (checked by the builder)"),
    Option("model.attention_units", None, "attention size A (0: the top hidden size)", kind="int", min=0,
           tasks=("translate",)),
)

#: shared key -> its :class:`Option`
OPTIONS: dict[str, Option] = {o.key: o for o in SCHEMA}
#: every declared key (shared and task keys) -> its :class:`Option`
ALL_OPTIONS: dict[str, Option] = {o.key: o for o in (*SCHEMA, *TASK_SCHEMA)}


def default(key: str) -> Any:
    """The default of shared key ``key`` (a fresh copy of a dict or list)."""
    value = OPTIONS[key].default
    return type(value)(value) if isinstance(value, (dict, list)) else value


def base_config() -> ml_collections.ConfigDict:
    """The shared keys with their defaults, built from :data:`SCHEMA`. Keys whose value may
    change type (``model.hidden``: an int or a list; dicts) are untyped fields."""
    c = ml_collections.ConfigDict()
    for opt in SCHEMA:
        *parents, leaf = opt.key.split(".")
        node = c
        for part in parents:
            if part not in node:
                node[part] = ml_collections.ConfigDict()
            node = node[part]
        value = default(opt.key)
        untyped = opt.type in ("sizes", "dict")
        node[leaf] = config_dict.FieldReference(value, field_type=object) if untyped else value
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
    """Apply ``key=value`` strings in place; exit-2 errors name the key, close keys and, for a
    shared key, what it allows (:data:`SCHEMA`). Ranges are checked by :func:`validate`."""
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
        expected = ALL_OPTIONS[key].allowed() if key in ALL_OPTIONS else type(old).__name__
        try:
            node[leaf] = value
        except (TypeError, ValueError, OverflowError) as e:
            raise UsageError(f"--set {key}={raw}: expected {expected} (current value {old!r})") from e


def _sizes_match_layers(hidden: Any, layers: int) -> str | None:
    if isinstance(hidden, (list, tuple)) and layers not in (1, len(hidden)):
        return (f"model.hidden gives {len(hidden)} layers but model.layers={layers}: set model.layers="
                f"{len(hidden)} (or 1), or make model.hidden an int")
    return None


#: checks that span keys: (keys, ``fn(*values) -> None or the reason``)
CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[..., str | None]], ...] = (
    (("model.hidden", "model.layers"), _sizes_match_layers),
    (("data.batch_size", "train.accumulate"),
     lambda b, n: "data.batch_size must split into train.accumulate micro-batches of equal size"
     if isinstance(b, int) and isinstance(n, int) and n > 0 and b % n else None),
    (("train.epochs", "train.steps"),
     lambda epochs, steps: "nothing to train: set train.epochs or train.steps > 0" if not (epochs or steps)
     else None),
)


def get(cfg: ml_collections.ConfigDict, key: str, missing: Any = None) -> Any:
    """The value of dotted ``key`` in ``cfg`` (``missing`` when it has none)."""
    node = cfg
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            return missing
        node = node[part]
    return node


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Every shared key of ``cfg`` against its :class:`Option` (type, choices, range, check),
    then :data:`CROSS_CHECKS`; raises a one-line UsageError naming the key and what it allows."""
    missing = object()
    for opt in ALL_OPTIONS.values():
        value = get(cfg, opt.key, missing)
        if value is missing:
            continue
        error = opt.error(value)
        if error:
            raise UsageError(f"{opt.key}={_show(value)}: {error}")
    for keys, fn in CROSS_CHECKS:
        values = [get(cfg, k, missing) for k in keys]
        if missing not in values and (error := fn(*values)):
            raise UsageError(f"{', '.join(f'{k}={_show(v)}' for k, v in zip(keys, values))}: {error}")


def _show(value: Any) -> str:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return repr(value) if isinstance(value, str) else json.dumps(value) if isinstance(
        value, (list, dict)) else str(value)


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


#: leaf names of the untyped shared keys (their value may change type, e.g. an int or a list)
_UNTYPED = {o.key.rpartition(".")[2] for o in SCHEMA if o.type in ("sizes", "dict")}


def _merge(cfg: ml_collections.ConfigDict, data: dict) -> None:
    for k, v in data.items():
        if isinstance(v, dict) and k not in _UNTYPED:  # a dict option's keys may hold dots (import paths)
            if k not in cfg:
                cfg[k] = ml_collections.ConfigDict()
            _merge(cfg[k], v)
        elif k in _UNTYPED or k not in cfg or cfg[k] is None or v is None:
            cfg[k] = config_dict.FieldReference(v, field_type=object) if k in _UNTYPED else v
        else:
            cfg[k] = v


# --------------------------------------------------------------------------- documentation


def markdown_table() -> str:
    """The option tables of docs/options.md: one row per :data:`SCHEMA` entry, then one per
    :data:`TASK_SCHEMA` entry."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    rows += [_row(f"`{json.dumps(o.default)}`", o) for o in SCHEMA]
    rows += ["", "Keys that only some tasks' configs have (their defaults are set by each experiment):", "",
             "| key | tasks | allowed | meaning |", "| --- | --- | --- | --- |"]
    rows += [_row(", ".join(o.tasks), o) for o in TASK_SCHEMA]
    return "\n".join(rows)


def _row(second: str, opt: Option) -> str:
    cells_ = [f"`{opt.key}`", second, opt.allowed(), opt.doc]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells_) + " |"


def describe(opt: Option) -> str:
    """One entry of ``seqjax experiments --keys``: key, default (or tasks), allowed, doc."""
    head = f"tasks: {', '.join(opt.tasks)}" if opt.tasks else json.dumps(opt.default)
    return f"  {opt.key} = {head}  ({opt.allowed()})\n      {opt.doc}"
