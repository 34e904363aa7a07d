"""Load a finished (or running) run directory for eval and inference commands."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.tasks import task_class
from seqjax.tasks.base import Task
from seqjax.training import mesh as mesh_lib
from seqjax.training.checkpoint import restore_params
from seqjax.training.loop import Engine, build


@dataclasses.dataclass
class Run:
    workdir: pathlib.Path
    cfg: Any
    engine: Engine
    params: Any
    step: int
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def task(self):
        return self.engine.task


def read_config(workdir: str | pathlib.Path, task: str | None = None):
    """The resolved config saved in a run directory (exit 2 if it is not one, or not a
    ``task`` run when ``task`` is given)."""
    workdir = pathlib.Path(workdir)
    cfg_path = workdir / "config.json"
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


def restore(workdir: str | pathlib.Path, task: Task, which: str = "best") -> tuple[Any, dict]:
    """``(params, meta)`` of ``task``'s model from the run's best, latest or averaged
    checkpoints (``which``; see :func:`seqjax.training.checkpoint.restore_params`)."""
    import jax

    like = jax.eval_shape(task.init_params, jax.random.PRNGKey(0))
    try:
        return restore_params(pathlib.Path(workdir), like, which)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from e


def load_for_inference(workdir: str | pathlib.Path, task: str, which: str = "best") -> tuple[Task, Any]:
    """``(task, params)`` from the run's config, assets and checkpoint only — the dataset is
    not read (the task class provides ``from_run(workdir, cfg)``)."""
    cfg = read_config(workdir, task)
    task_obj = task_class(cfg.task).from_run(pathlib.Path(workdir), cfg)
    return task_obj, restore(workdir, task_obj, which)[0]


def load_run(workdir: str | pathlib.Path, data_dir: str | None = None, which: str = "best") -> Run:
    """Config, task (with its data), jitted steps and restored params of ``workdir``."""
    cfg = read_config(workdir)
    engine = build(cfg, data_dir)
    params, meta = restore(workdir, engine.task, which)
    params = mesh_lib.replicate(params, engine.mesh)
    return Run(pathlib.Path(workdir), cfg, engine, params, int(meta.get("step", -1)), dict(meta))
