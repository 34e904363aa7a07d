"""The Python API: what the ``seqjax`` command does, from a notebook or a script.

    import seqjax
    seqjax.tune()                                   # first: the CLI's CPU speed settings
    summary = seqjax.train("sequences:tiny", ["train.epochs=1"], workdir="ckpt/nb")
    run = seqjax.load_run("ckpt/nb")                # model, params, vocabularies, task
    seqjax.evaluate(run, split="test")              # the metrics `seqjax eval` prints

A user-defined task (a :class:`seqjax.tasks.base.Task` subclass) runs in the one training
loop with ``train(cfg, task=MyTask)``; it is registered under its import path, which the
run's ``config.json`` records, so ``load_run`` finds it again in a process that has
imported it (or pass ``task=MyTask`` once more).

Speed: :func:`tune` applies the ``seqjax`` executable's process-wide settings (glibc keeps
freed memory, XLA:CPU's depth-first schedule). The schedule only takes effect before JAX
starts its backend, so call it before the first JAX computation; without it a notebook
runs with the library defaults and its CPU step times differ from README's.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable

import ml_collections

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.training.inference import Run

__all__ = ["Run", "evaluate", "load_run", "train", "tune"]


def tune() -> dict[str, bool]:
    """The ``seqjax`` executable's CPU settings for this process (see the module docstring);
    returns what was applied. ``SEQJAX_TUNING=0`` turns them off, as for the CLI."""
    from seqjax.app.cli import tune_process

    return tune_process()


def _task_name(task: type | None) -> str | None:
    if task is None:
        return None
    from seqjax.tasks import register
    from seqjax.tasks.base import Task

    if not (isinstance(task, type) and issubclass(task, Task)):
        raise UsageError(f"task={task!r}: pass a subclass of seqjax.tasks.base.Task")
    return register(task)


def config(
    spec_or_cfg: str | ml_collections.ConfigDict | None = None,
    overrides: Iterable[str] = (),
    *,
    task: type | None = None,
) -> ml_collections.ConfigDict:
    """A resolved, validated config: ``"CONFIG[:PRESET]"`` as on the command line, or a
    ``ConfigDict`` (e.g. ``seqjax.config.base_config()`` plus a task's own keys), with
    ``key=value`` overrides; ``task`` (a Task subclass) replaces ``cfg.task``."""
    if spec_or_cfg is None or isinstance(spec_or_cfg, str):
        cfg = config_lib.resolve(spec_or_cfg, overrides)
    else:
        cfg = (
            ml_collections.ConfigDict(spec_or_cfg.to_dict())
            if not isinstance(spec_or_cfg, ml_collections.ConfigDict)
            else spec_or_cfg.copy_and_resolve_references()
        )
        with cfg.unlocked():
            cfg.experiment = cfg.get("experiment") or "custom"
            cfg.preset = cfg.get("preset") or "api"
        cfg.lock()
        config_lib.apply_overrides(cfg, overrides)
    name = _task_name(task)
    if name is not None:
        with cfg.unlocked():
            cfg.task = name
    config_lib.validate(cfg)
    from seqjax.data.sources import absolute_files

    absolute_files(cfg)  # config.json names the data from any directory
    return cfg


def train(
    spec_or_cfg: str | ml_collections.ConfigDict | None = None,
    overrides: Iterable[str] = (),
    *,
    workdir: str | pathlib.Path | None = None,
    task: type | None = None,
    data_dir: str | None = None,
    echo: Callable[[str], None] = print,
    hooks: Iterable = (),
    move_aside: bool = False,
) -> dict:
    """Train (or resume, on the same ``workdir``) like ``seqjax train``; returns the run's
    summary (as in ``summary.json``, with ``"workdir"``).

    Args:
      spec_or_cfg: ``"CONFIG[:PRESET]"`` (default: the embedded default experiment) or a
        ``ConfigDict``; see :func:`config`.
      overrides: ``key=value`` strings, as ``--set``.
      workdir: the run directory (default ``ckpt/<config>-<preset>-<time>``).
      task: a user-defined Task subclass to run instead of ``cfg.task``.
      data_dir: root of the built-in corpora (default ``$SEQJAX_DATA``, else ``./data``).
      echo: where progress lines go.
      hooks: callbacks the loop runs besides ``train.hooks``: callables ``fn(info)`` (after
        every step) or :class:`seqjax.training.hooks.Hook` objects (``Hook(fn, every=N)``,
        ``on="eval" | "checkpoint" | "end"``); docs/hooks.md.
      move_aside: a run of another config in ``workdir`` is moved into
        ``workdir/previous-<time>/`` instead of refused (``seqjax train --move-aside``).
    """
    from seqjax.training import loop

    cfg = config(spec_or_cfg, overrides, task=task)
    workdir = pathlib.Path(workdir) if workdir else loop.default_workdir(cfg)
    summary = loop.train(cfg, workdir, data_dir, echo=echo, hooks=hooks, move_aside=move_aside)
    return {"workdir": str(workdir), **summary}


def load_run(
    workdir: str | pathlib.Path, which: str = "best", *, task: type | None = None, data_dir: str | None = None
) -> Run:
    """Load ``workdir`` for inference, read-only (it may be training meanwhile): config,
    task, params and vocabularies; see :func:`seqjax.training.inference.load_run`.

    Then e.g. ``run.task.predict(run.params, texts)`` (classifier),
    ``run.task.translate(run.params, texts)`` (translator) or
    ``seqjax.tasks.lm.sample(run.task, run.params, prompt, length, temperature, seed)``.
    """
    from seqjax.training import inference

    _task_name(task)
    return inference.load_run(workdir, which, task=task, data_dir=data_dir)


def evaluate(
    run: Run | str | pathlib.Path, split: str = "valid", which: str | None = None, data_dir: str | None = None
) -> dict:
    """The metrics ``seqjax eval`` prints for ``split`` (it reads the run's data again)."""
    if not isinstance(run, Run) or (which and which != run.which) or (data_dir and data_dir != run.data_dir):
        workdir = run.workdir if isinstance(run, Run) else run
        run = load_run(workdir, which or getattr(run, "which", "best"),
                       data_dir=data_dir or getattr(run, "data_dir", None))
    return {"split": split, "checkpoint": run.kind, "checkpoint_step": run.step, **run.evaluate(split)}
