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

import dataclasses
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import ml_collections

from seqjax import config as config_lib
from seqjax.errors import UsageError

__all__ = ["Run", "evaluate", "load_run", "train", "tune"]


def tune() -> dict[str, bool]:
    """The ``seqjax`` executable's CPU settings for this process (see the module docstring);
    returns what was applied. ``SEQJAX_TUNING=0`` turns them off, as for the CLI."""
    from seqjax.cli import tune_process

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
    """
    from seqjax.training import loop

    cfg = config(spec_or_cfg, overrides, task=task)
    workdir = pathlib.Path(workdir) if workdir else loop.default_workdir(cfg)
    summary = loop.train(cfg, workdir, data_dir, echo=echo, hooks=hooks)
    return {"workdir": str(workdir), **summary}


@dataclasses.dataclass
class Run:
    """A finished (or running) run directory, loaded for inference.

    Attributes:
      workdir, cfg: the run directory and its resolved config.
      task: the task (classifiers and translators: from the run's assets alone; language and
        sequence models: with their data, read again).
      params: the restored parameters (``which``: best, latest or average).
      vocabularies: every ``*vocab*.json`` of the run, by file stem (``vocab``,
        ``src_vocab``, ``tgt_vocab``).
      step: the checkpoint's step.
    """

    workdir: pathlib.Path
    cfg: ml_collections.ConfigDict
    task: Any
    params: Any
    vocabularies: dict
    step: int
    which: str = "best"
    data_dir: str | None = None

    @property
    def model(self):
        """The flax module; ``run.model.apply({"params": run.params}, ...)``."""
        return self.task.model()


def load_run(
    workdir: str | pathlib.Path, which: str = "best", *, task: type | None = None, data_dir: str | None = None
) -> Run:
    """Load ``workdir`` for inference: config, task, params and vocabularies.

    Then e.g. ``run.task.predict(run.params, texts)`` (classifier),
    ``run.task.translate(run.params, texts)`` (translator) or
    ``seqjax.tasks.lm.sample(run.task, run.params, prompt, length, temperature, seed)``.
    """
    from seqjax.data.vocab import Vocab
    from seqjax.tasks import task_class
    from seqjax.training import inference

    workdir = pathlib.Path(workdir)
    _task_name(task)
    cfg = inference.read_config(workdir)
    cls = task_class(cfg.task)
    vocabs = {p.stem: Vocab.load(p) for p in sorted(workdir.glob("*vocab*.json"))}
    if hasattr(cls, "from_run"):
        task_obj = cls.from_run(workdir, cfg)
        params, meta = inference.restore(workdir, task_obj, which)
        return Run(workdir, cfg, task_obj, params, vocabs, int(meta.get("step", -1)), which, data_dir)
    full = inference.load_run(workdir, data_dir, which=which)
    return Run(workdir, cfg, full.task, full.params, vocabs, full.step, which, data_dir)


def evaluate(
    run: Run | str | pathlib.Path, split: str = "valid", which: str | None = None, data_dir: str | None = None
) -> dict:
    """The metrics ``seqjax eval`` prints for ``split`` (it reads the run's data again)."""
    from seqjax.training import inference

    if isinstance(run, Run):
        workdir, which, data_dir = run.workdir, which or run.which, data_dir or run.data_dir
    else:
        workdir = pathlib.Path(run)
    full = inference.load_run(workdir, data_dir, which=which or "best")
    metrics = full.engine.evaluate(full.params, split)
    metrics.update(full.task.eval_report(full.params, split))
    return {"split": split, "checkpoint_step": full.step, **metrics}
