"""A run directory loaded for inference: the one :class:`Run` and :func:`load_run` behind
``seqjax eval``, ``sample``, ``classify``, ``translate`` and the Python API.

Loading never writes: the config and the assets (vocabularies, class names) are read, the
params come from :class:`seqjax.training.checkpoint.CheckpointReader` (read-only; a partial
or corrupt checkpoint is skipped with one line), so any of these commands may run while a
training writes to the same directory. A task with ``from_run(workdir, cfg)`` is built from
the run's assets alone; the others (and :meth:`Run.evaluate`) read the dataset again.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.tasks import task_class
from seqjax.tasks.base import Task
from seqjax.training.checkpoint import restore_params


@dataclasses.dataclass
class Run:
    """A finished (or running) run directory, loaded for inference.

    Attributes:
      workdir, cfg: the run directory and its resolved config.
      task: the task (from the run's assets alone where the task class has ``from_run``:
        classifiers, translators, language models; else with its data, read again).
      params: the restored parameters (host arrays).
      vocabularies: every ``*vocab*.json`` of the run, by file stem (``vocab``,
        ``src_vocab``, ``tgt_vocab``).
      step: the step of the checkpoint the params come from.
      kind: what was restored: ``best``, ``latest`` (``which=best`` falls back to it when
        ``best/`` is unreadable) or ``average``.
      which: the checkpoint asked for (``best``, ``latest`` or ``average``).
      meta: the checkpoint's saved metadata (``averaged_steps`` for an average).
      data_dir: root of the built-in corpora, for :meth:`evaluate`.
      from_assets: ``task`` was built from the run's assets alone (it has no dataset).
    """

    workdir: pathlib.Path
    cfg: Any
    task: Any
    params: Any
    vocabularies: dict
    step: int
    kind: str = "best"
    which: str = "best"
    meta: dict = dataclasses.field(default_factory=dict)
    data_dir: str | None = None
    from_assets: bool = False

    @property
    def model(self):
        """The flax module; ``run.model.apply({"params": run.params}, ...)``."""
        return self.task.model()

    @functools.cached_property
    def engine(self):
        """The task with its data, compiled for this process's devices (built on first use;
        reads the dataset)."""
        from seqjax.training.loop import make_engine

        return make_engine(self.cfg, self.data_dir, task=None if self.from_assets else self.task)

    def evaluate(self, split: str = "valid") -> dict:
        """The task's metrics of ``split`` (``valid`` or ``test``) with these params, the
        task's extra report (e.g. BLEU) included; ``tokens_per_s`` leaves out compilation."""
        from seqjax.training import mesh as mesh_lib

        engine = self.engine
        params = mesh_lib.replicate(self.params, engine.mesh)
        metrics = engine.evaluate(params, split)
        metrics.update(engine.task.eval_report(params, split))
        return metrics


def read_config(workdir: str | pathlib.Path, task: str | None = None):
    """The resolved config saved in a run directory (exit 2 if it is not one, or not a
    ``task`` run when ``task`` is given)."""
    workdir = pathlib.Path(workdir)
    cfg_path = workdir / "config.json"
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"{workdir} is a file, not a run directory; "
                         "pass the --workdir of a `seqjax train` run")
    if not cfg_path.is_file():
        raise UsageError(
            f"{workdir}: not a run directory (no config.json); pass the --workdir of a `seqjax train` run"
        )
    try:
        cfg = config_lib.from_json(cfg_path.read_text())
    except Exception as e:  # noqa: BLE001 — JSONDecodeError, unknown keys, bad types
        raise UsageError(f"{cfg_path} does not parse ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         "restore it from the run's config or retrain") from None
    if task is not None and cfg.task != task:
        raise UsageError(f"{workdir} is a {cfg.task!r} run; this command needs a {task!r} run")
    return cfg


def restore(workdir: str | pathlib.Path, task: Task, which: str = "best", warn=None) -> tuple[Any, dict]:
    """``(params, meta)`` of ``task``'s model from the run's best, latest or averaged
    checkpoints (``which``; see :func:`seqjax.training.checkpoint.restore_params`)."""
    import jax

    like = jax.eval_shape(task.init_params, jax.random.PRNGKey(0))
    return restore_params(pathlib.Path(workdir), like, which, warn)


def load_run(
    workdir: str | pathlib.Path,
    which: str = "best",
    *,
    task: type | str | None = None,
    data_dir: str | None = None,
    warn=None,
) -> Run:
    """Load ``workdir`` for inference, read-only: config, task, params and vocabularies.

    ``which``: ``best`` (falling back to the latest checkpoint), ``latest`` or ``average``.
    ``task``: a Task subclass the run was trained with (a user's task whose module this
    process has not imported), or a registered task name the run must be (exit 2 if not).
    ``warn`` gets one line per checkpoint skipped (default: the ``seqjax.checkpoint`` logger).

    Then e.g. ``run.task.predict(run.params, texts)`` (classifier),
    ``run.task.translate(run.params, texts)`` (translator),
    ``seqjax.tasks.lm.sample(run.task, run.params, prompt, length, temperature, seed)`` or
    ``run.evaluate("test")``.
    """
    from seqjax.data.vocab import Vocab

    workdir = pathlib.Path(workdir)
    if isinstance(task, type):
        from seqjax.tasks import register

        register(task)
    cfg = read_config(workdir, task if isinstance(task, str) else None)
    cls = task_class(cfg.task)
    from_assets = hasattr(cls, "from_run")
    task_obj = cls.from_run(workdir, cfg) if from_assets else cls(cfg, data_dir)
    params, meta = restore(workdir, task_obj, which, warn)
    vocabs = {p.stem: Vocab.load(p) for p in sorted(workdir.glob("*vocab*.json"))}
    return Run(workdir, cfg, task_obj, params, vocabs, int(meta.get("step", -1)), meta.get("kind", which),
               which, meta, data_dir, from_assets)
