"""Hooks: the callbacks the training loop runs around its steps.

The loop (:mod:`seqjax.training.loop`) keeps one :class:`Hooks` list per run and fires
four events:

``step``        after every train step; a hook runs when its trigger is due (``every``
                N steps, or its own ``when`` predicate)
``eval``        after each evaluation; :attr:`HookInfo.metrics` holds the valid metrics
``checkpoint``  after each checkpoint is handed to the writer
``end``         once, after the final evaluation; :attr:`HookInfo.metrics` is the summary

Logging, evaluation, checkpointing, keeping the best params, the plateau schedule and
early stopping are hooks themselves (``_Session.builtin_hooks`` in the loop). Within an
event hooks run by ``order``, then in the order they were added: the built-in step
hooks are ``log`` (100), ``epoch_row`` (200), ``evaluate`` (300) and ``checkpoint`` (900),
so a user's step hook (500 by default) sees the evaluation of its step and what it
changes in the train state is in that step's checkpoint.

Users add hooks from Python (``seqjax.train(..., hooks=[...])``, a callable or a
:class:`Hook`) or from the config by import path (``train.hooks=["pkg.mod:name"]``,
where ``name`` is a :class:`Hook`, e.g. made with :func:`hook`, or a plain callable,
which then runs after every step)::

    from seqjax.training.hooks import hook

    @hook(every=100)
    def show_norm(info):
        info.echo(f"step {info.step}: |w| = {optax.global_norm(info.state.params):.3f}")
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from seqjax import importpath
from seqjax.errors import UsageError

#: the events the loop fires
EVENTS = ("step", "eval", "checkpoint", "end")
#: the built-in step hooks' positions; user hooks go between evaluation and checkpoint
LOG, EPOCH_ROW, EVALUATE, USER, CHECKPOINT = 100, 200, 300, 500, 900


def _session_attr(path: str, doc: str) -> property:
    """A read-only :class:`HookInfo` attribute: the loop session's ``path`` (dotted)."""

    def get(self):
        obj = self._session
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    return property(get, doc=doc)


class HookInfo:
    """What a hook receives: where the run is and what it may change.

    A thin view over the loop's session: ``state`` is the current
    :class:`~seqjax.training.loop.TrainState` (assign a new one, e.g.
    ``info.state = info.state.replace(lr_scale=...)``, and the loop continues from it);
    ``progress`` the host-side :class:`~seqjax.training.loop.Progress` (best metrics,
    epoch, counters) saved with each checkpoint.
    """

    def __init__(self, session: Any, event: str, metrics: dict | None = None):
        self._session, self.event, self.metrics = session, event, metrics

    @property
    def step(self) -> int:
        """Optimizer steps done (the step just taken, for ``step`` events)."""
        return self._session.step

    @property
    def epoch(self) -> int:
        """1-based epoch being trained."""
        return self._session.prog.epoch + 1

    @property
    def state(self):
        """The current ``TrainState``; assign a new one and the loop continues from it."""
        return self._session.state

    @state.setter
    def state(self, value) -> None:
        self._session.state = value

    progress = _session_attr("prog", "The loop's counters (epoch, position, best so far, ...), saved "
                             "with each checkpoint.")
    cfg = _session_attr("cfg", "The run's config (``ml_collections.ConfigDict``).")
    engine = _session_attr("engine", "The compiled task: ``engine.evaluate(params, split)``, "
                           "``engine.task``.")
    workdir = _session_attr("workdir", "The run directory.")
    total_steps = _session_attr("engine.total_steps", "Optimizer steps the run trains in all (int).")

    @property
    def epoch_done(self) -> bool:
        """The step just taken ended an epoch."""
        return self._session.prog.position >= self._session.engine.steps_per_epoch

    @property
    def last_step(self) -> bool:
        return self._session.step >= self._session.engine.total_steps

    def echo(self, line: str) -> None:
        """Print a line above the progress bar."""
        self._session.bar.write(line)

    def log(self, split: str, metrics: dict) -> None:
        """Append a row ``{"step", "epoch", "split", **metrics}`` to metrics.jsonl."""
        self._session.logger.write(self.step, self.epoch, split, metrics)

    def request_stop(self, reason: str) -> None:
        """End training after this step (with a checkpoint), as early stopping does."""
        self._session.request_stop(reason)


@dataclasses.dataclass
class Hook:
    """A callback ``fn(info: HookInfo)`` and when it runs.

    Attributes:
      fn: the callback; its return value is ignored.
      every: for ``step`` hooks, run when ``step % every == 0``.
      on: the event (:data:`EVENTS`).
      name: for messages (default: the function's name).
      order: position among the event's hooks (see the module docstring).
      when: a predicate ``when(info) -> bool`` that replaces ``every``.
    """

    fn: Callable[[HookInfo], Any]
    every: int = 1
    on: str = "step"
    name: str = ""
    order: int = USER
    when: Callable[[HookInfo], bool] | None = None

    def __post_init__(self):
        if self.on not in EVENTS:
            raise UsageError(f"hook {self.name or self.fn!r}: on={self.on!r}; "
                             f"choose one of {', '.join(EVENTS)}")
        if not isinstance(self.every, int) or self.every < 1:
            raise UsageError(f"hook {self.name or self.fn!r}: every={self.every!r}; must be an integer >= 1")
        if not callable(self.fn):
            raise UsageError(f"hook {self.name or self.fn!r}: {self.fn!r} is not callable")
        self.name = self.name or getattr(self.fn, "__name__", type(self.fn).__name__)

    def due(self, info: HookInfo) -> bool:
        if self.when is not None:
            return bool(self.when(info))
        return self.on != "step" or info.step % self.every == 0


def hook(every: int = 1, on: str = "step", *, name: str = "",
         order: int = USER) -> Callable[[Callable], Hook]:
    """Decorator: ``@hook(every=100)`` turns ``fn(info)`` into a :class:`Hook`."""
    return lambda fn: Hook(fn, every=every, on=on, name=name, order=order)


def as_hook(obj: Hook | Callable | str) -> Hook:
    """A :class:`Hook` from a Hook, a callable (run after every step) or an import path
    ``package.module:name`` naming either; a bad path is one :class:`UsageError` line."""
    if isinstance(obj, str):
        obj = import_object(obj, "train.hooks")
    if isinstance(obj, Hook):
        return obj
    if callable(obj):
        return Hook(obj)
    raise UsageError(f"hook {obj!r}: expected a seqjax.training.hooks.Hook or a callable fn(info)")


def import_object(path: str, key: str) -> Any:
    """The object named by ``package.module:attr`` (the module on the Python path);
    ``key`` names the config key in the one-line error."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"{key}: {path!r} is not an import path; write package.module:name")
    try:
        obj = importpath.import_module(module)
    except Exception as e:  # noqa: BLE001 — ImportError, or any error the module raises
        raise UsageError(f"{key}: cannot import {module!r} ({type(e).__name__}: {e}); "
                         "is it on the Python path?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{key}: module {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


class Hooks:
    """The run's hooks, in firing order (by ``order``, then as added)."""

    def __init__(self, hooks: Iterable[Hook] = ()):
        self._hooks: list[Hook] = []
        for h in hooks:
            self.add(h)

    def add(self, fn: Hook | Callable | str, every: int | None = None, on: str | None = None, *,
            name: str = "", order: int | None = None, when: Callable[[HookInfo], bool] | None = None) -> Hook:
        """Add a hook: a :class:`Hook`, an import path, or ``fn(info)`` with its trigger
        (``add(fn, every=N)`` as levanter's ``add_hook``); returns the :class:`Hook`."""
        if isinstance(fn, (Hook, str)):
            h = as_hook(fn)
            if any(v is not None for v in (every, on, order, when)) or name:
                given = dict(every=every, on=on, order=order, when=when, name=name or None)
                h = dataclasses.replace(h, **{k: v for k, v in given.items() if v is not None})
        else:
            h = Hook(fn, every=every or 1, on=on or "step", name=name, order=USER if order is None else order,
                     when=when)
        self._hooks.append(h)
        self._hooks.sort(key=lambda x: x.order)  # stable: insertion order within an order
        return h

    add_hook = add

    def __iter__(self):
        return iter(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def names(self, on: str = "step") -> list[str]:
        return [h.name for h in self._hooks if h.on == on]

    def run(self, on: str, info: HookInfo) -> None:
        """Fire event ``on``: every hook of it whose trigger is due, in order."""
        for h in self._hooks:
            if h.on == on and h.due(info):
                h.fn(info)
