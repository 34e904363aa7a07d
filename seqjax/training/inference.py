"""Load a finished (or running) run directory for eval and inference commands."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from seqjax import config as config_lib
from seqjax.errors import UsageError
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

    @property
    def task(self):
        return self.engine.task


def load_run(workdir: str | pathlib.Path, data_dir: str | None = None, which: str = "best") -> Run:
    """Config, task, jitted steps and restored params of ``workdir``."""
    import jax

    workdir = pathlib.Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise UsageError(f"{workdir}: not a run directory (no config.json); pass the --workdir of a `seqjax train` run")
    cfg = config_lib.from_json(cfg_path.read_text())
    engine = build(cfg, data_dir)
    like = jax.eval_shape(engine.task.init_params, jax.random.PRNGKey(0))
    try:
        params, meta = restore_params(workdir, like, which)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from e
    params = mesh_lib.replicate(params, engine.mesh)
    return Run(workdir, cfg, engine, params, int(meta.get("step", -1)))
