"""What an experiment hands the one training loop.

A task owns its data and model and says how to compute a loss; the engine
(:mod:`seqjax.training.loop`) owns everything else: optimizer, jit, sharding,
checkpoints, logging. Adding an experiment means writing a config and, only when the
kind of problem is new, a task.

Batches are dicts of NumPy arrays whose leading axis is the batch (sharded over the
``data`` mesh axis). Metrics are returned as *sums* (e.g. ``loss_sum``, ``count``,
``correct``) so that padded rows and uneven batches average exactly; :meth:`Task.summarize`
turns accumulated sums into the reported metrics.
"""
from __future__ import annotations

import abc
import contextlib
import contextvars
import functools
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from seqjax.data.batching import length_buckets
from seqjax.data.vocab import Vocab
from seqjax.errors import UsageError

Batch = Mapping[str, np.ndarray]
Metrics = dict[str, jax.Array]

#: the list :meth:`Task.apply_model` appends the model's sown outputs to (inside :func:`capture_outputs`)
_OUTPUTS: contextvars.ContextVar[list | None] = contextvars.ContextVar("seqjax_model_outputs", default=None)


@contextlib.contextmanager
def capture_outputs() -> Iterator[list]:
    """Inside this block :meth:`Task.apply_model` applies the model with flax's
    ``intermediates`` collection mutable and appends what the model sowed to the yielded
    list, one dict per application (the language model: ``{"outputs": (h,),
    "dropped_outputs": (h_dropped,)}``, each ``[B, T, H]``, the last layer's outputs before
    and after its dropout). Extra loss terms (seqjax/training/extensions/extra_loss.py) see a
    step's hidden outputs this way, traced in the same step; outside it nothing is sown."""
    sink: list = []
    token = _OUTPUTS.set(sink)
    try:
        yield sink
    finally:
        _OUTPUTS.reset(token)


def synthetic_vocab(size: int, specials: Sequence[str] = ()) -> Vocab:
    """A vocabulary of ``size`` tokens: ``specials`` first, then ``w0``, ``w1``, ..."""
    return Vocab([*specials, *(f"w{i}" for i in range(max(size - len(specials), 1)))])


class Task(abc.ABC):
    """Base class of the task adapters (sequences, lm, classify, translate)."""

    #: the metric that decides "best" and early stopping, and whether lower is better
    main_metric: str = "loss"
    lower_is_better: bool = True
    #: carries state across batches (truncated BPTT); the loop threads ``carry``
    stateful: bool = False
    #: the batch key whose rows weigh every metric sum (``[B]`` or ``[B, T]``): evaluation
    #: pads a batch that does not divide the device count with rows of weight 0
    weight_key: str = "weight"

    def __init__(self, cfg: ml_collections.ConfigDict, data_dir: str | None = None):
        self.cfg = cfg
        self.data_dir = data_dir

    # -- model ---------------------------------------------------------------------
    @abc.abstractmethod
    def model(self) -> nn.Module:
        """The flax module; ``init_batch`` must be a valid input to ``loss``."""

    def step_model(self, train: bool) -> nn.Module:
        """The module a train (``train=True``) or eval step applies: :meth:`model`, with its
        recurrent spec's eval variant in eval steps (``model.eval_unroll``,
        ``model.eval_wavefront``: same params, same numbers up to float rounding; eval has
        no backward loop, where both pay off)."""
        model = self.model()
        if train or getattr(model, "rnn", None) is None:
            return model
        return model.clone(rnn=model.rnn.for_eval())

    def apply_model(self, train: bool, variables: dict, *args, **kwargs):
        """``self.step_model(train).apply(variables, *args, **kwargs)``, the way a task's
        :meth:`loss` applies its model: inside :func:`capture_outputs` the model's sown
        ``intermediates`` are collected too."""
        model = self.step_model(train)
        sink = _OUTPUTS.get()
        if sink is None:
            return model.apply(variables, *args, **kwargs)
        out, state = model.apply(variables, *args, mutable=["intermediates"], **kwargs)
        sink.append(dict(state.get("intermediates", {})))
        return out

    @abc.abstractmethod
    def init_batch(self) -> Batch:
        """A batch (any content, the real shapes) used to initialise parameters."""

    def init_params(self, rng: jax.Array) -> Any:
        batch = self.init_batch()
        carry = self.initial_carry(len(next(iter(batch.values()))))
        inputs = self.model_inputs(batch, carry)
        return self.model().init({"params": rng, "dropout": rng}, **inputs)["params"]

    def model_inputs(self, batch: Batch, carry: Any) -> dict:
        """Keyword arguments of the model's ``__call__`` built from a batch."""
        raise NotImplementedError

    def initial_carry(self, batch_size: int) -> Any:
        """Zero recurrent state for stateful tasks (``None`` otherwise)."""
        return None

    # -- data ----------------------------------------------------------------------
    @abc.abstractmethod
    def steps_per_epoch(self) -> int:
        """Number of training batches in one epoch."""

    @abc.abstractmethod
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches from index ``start`` on; deterministic in (seed, epoch)."""

    @abc.abstractmethod
    def eval_batches(self, split: str) -> Iterator[Batch]:
        """All of ``split`` (``valid`` or ``test``), every example counted once."""

    @classmethod
    def synthetic(cls, cfg: ml_collections.ConfigDict) -> Task:
        """The task of ``cfg`` with a synthetic vocabulary and no dataset: the real model, loss
        and metrics, fed by :meth:`synthetic_batch` (``seqjax bench``, tests)."""
        raise UsageError(f"task {cls.__name__} cannot run on synthetic data (it defines no synthetic())")

    def synthetic_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """A random batch of ``batch_size`` rows with the shapes and dtypes the loops feed
        (the longest bucket, every row real)."""
        raise UsageError(f"task {type(self).__name__} defines no synthetic_batch()")

    def tokens(self, batch: Batch) -> int:
        """Tokens (time steps) in a batch, for tokens/s."""
        x = next(iter(batch.values()))
        return int(np.prod(x.shape[:2]))

    # -- loss and metrics ----------------------------------------------------------
    @abc.abstractmethod
    def loss(self, params, batch: Batch, carry: Any, rng: jax.Array,
             train: bool) -> tuple[jax.Array, tuple[Metrics, Any]]:
        """Pure function: ``(objective, (metric sums, new carry))``; jit-compiled by the loop."""

    def objective_weight(self, batch: Batch, metrics: Metrics) -> jax.Array:
        """What :meth:`loss`'s objective divides its sum by, float32 ``[]`` (default: the
        ``count`` metric). Gradient accumulation weighs each micro-batch by it, so N
        micro-batches give the gradient of their one concatenated batch."""
        return metrics["count"]

    @abc.abstractmethod
    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Accumulated metric sums -> reported metrics (must include ``loss`` and main_metric)."""

    # -- run directory ---------------------------------------------------------------
    # an optional hook, a no-op by default (tasks without assets need not override it)
    def save_assets(self, workdir: pathlib.Path) -> None:  # noqa: B027
        """Write what inference needs besides params (vocabularies) into the run dir."""

    def final_report(self, params) -> dict:
        """End-of-run results of ``params`` (e.g. samples, BLEU), which the loop merges into
        summary.json; metrics under the key ``"test"`` join the reported test metrics (and
        the ``test`` line of metrics.jsonl) instead."""
        return {}

    def eval_report(self, params, split: str) -> dict:
        """Task-specific metrics of ``split`` beyond the loss sums (e.g. BLEU), for ``seqjax eval``."""
        return {}


def bucket_boundaries(cfg: ml_collections.ConfigDict, top: int, example: str) -> tuple[int, ...]:
    """Padded lengths of a bucketed task's batches: ``data.buckets`` below ``top``, then ``top``
    (``data.buckets=[]``: one shape). ``data.max_len`` must be >= 1; ``example`` ends the
    error line of bad buckets."""
    if cfg.data.max_len < 1:
        raise UsageError(f"data.max_len={cfg.data.max_len}: must be >= 1")
    buckets = list(cfg.data.buckets or [])
    if any(not isinstance(b, int) or b < 1 for b in buckets) or buckets != sorted(set(buckets)):
        raise UsageError(f"data.buckets={buckets}: expected increasing positive ints, {example}")
    return (*[b for b in buckets if b < top], top)


class BucketedTask(Task):
    """A task whose batches come from a plan of length buckets (classify, translate).

    Subclasses set ``bounds`` (the padded lengths), ``eval_batch_size`` and ``data`` (``None``
    without a dataset) and give ``bucket_lengths(split) -> int [n]`` and
    ``_materialize(split, plan) -> Iterator[batch dict]``; :meth:`batches` plans an epoch
    (deterministic in seed and epoch), and indexing the plan lets training resume mid-epoch.
    """

    bounds: tuple[int, ...]
    eval_batch_size: int

    @abc.abstractmethod
    def bucket_lengths(self, split: str) -> np.ndarray:
        """The length that buckets each example of ``split``."""

    def _require_data(self):
        if getattr(self, "data", None) is None:
            raise UsageError(f"this {type(self).__name__} has no dataset "
                             "(loaded for inference, or synthetic)")

    def batches(self, split: str, *, shuffle: bool, epoch: int = 0) -> list:
        """The :class:`~seqjax.data.batching.BatchPlan` index lists of ``split`` for one epoch."""
        self._require_data()
        b = self.cfg.data.batch_size if split == "train" else self.eval_batch_size
        return length_buckets(self.bucket_lengths(split), b, self.bounds, shuffle=shuffle, seed=self.cfg.seed,
                              epoch=epoch)

    @abc.abstractmethod
    def _materialize(self, split: str, plan) -> Iterator[Batch]: ...

    #: epoch length of a task without a dataset (:meth:`Task.synthetic`): it only sets the schedule
    synthetic_steps_per_epoch: int = 100

    @functools.cache
    def steps_per_epoch(self):
        if getattr(self, "data", None) is None:
            return self.synthetic_steps_per_epoch
        return len(self.batches("train", shuffle=False))

    def train_batches(self, epoch, start=0):
        return self._materialize("train", self.batches("train", shuffle=True, epoch=epoch)[start:])

    def eval_batches(self, split):
        return self._materialize(split, self.batches(split, shuffle=False))
