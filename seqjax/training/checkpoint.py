"""Orbax checkpoints of a run: the latest K full train states, and the best params.

Layout inside a run directory::

    checkpoints/<step>/{state,meta}   full TrainState + host-side loop position (JSON)
    best/<step>/{params,meta}         params of the best evaluation so far

Restoring walks back from the newest step: a corrupt or partial latest checkpoint
falls back to the previous one with a warning, so a killed job loses at most the
steps since its last save.
"""
from __future__ import annotations

import pathlib
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
    def __init__(self, workdir: pathlib.Path, keep: int = 2, enabled: bool = True):
        self.enabled = enabled
        root = pathlib.Path(workdir).resolve()
        opts = dict(create=True, enable_async_checkpointing=True)
        self.latest = ocp.CheckpointManager(
            root / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), **opts)
        )
        self.best = ocp.CheckpointManager(root / "best", options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts))

    # -- saving ----------------------------------------------------------------------
    def save(self, step: int, state: Any, meta: dict) -> None:
        if not self.enabled or step in self.latest.all_steps():
            return
        self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def save_best(self, step: int, params: Any, meta: dict) -> None:
        if not self.enabled:
            return
        for old in self.best.all_steps():
            if old >= step:
                return
        self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)))

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self.latest.close()
        self.best.close()

    # -- restoring -------------------------------------------------------------------
    def restore_latest(self, like_state: Any) -> tuple[Any, dict] | None:
        """The newest readable ``(state, meta)``, or None when there is no checkpoint."""
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                out = self.latest.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(_abstract(like_state)), meta=ocp.args.JsonRestore()
                    ),
                )
                return out["state"], dict(out["meta"])
            except Exception as e:  # noqa: BLE001 — any unreadable checkpoint: fall back
                warnings.warn(f"checkpoint at step {step} is unreadable ({type(e).__name__}: {e}); trying the previous one")
        return None

    def restore_best(self, like_params: Any) -> tuple[Any, dict] | None:
        step = self.best.latest_step()
        if step is None:
            return None
        out = self.best.restore(
            step,
            args=ocp.args.Composite(params=ocp.args.StandardRestore(_abstract(like_params)), meta=ocp.args.JsonRestore()),
        )
        return out["params"], dict(out["meta"])


def restore_params(workdir: pathlib.Path, like_params: Any, which: str = "best") -> tuple[Any, dict]:
    """Params of a run for inference: ``best`` (falling back to the latest) or ``latest``."""
    ck = Checkpoints(workdir)
    try:
        if which == "best" and (got := ck.restore_best(like_params)) is not None:
            return got
        for step in sorted(ck.latest.all_steps(), reverse=True):
            try:
                out = ck.latest.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
                )
            except Exception as e:  # noqa: BLE001 — unreadable: fall back
                warnings.warn(f"checkpoint at step {step} is unreadable ({type(e).__name__}); trying the previous one")
                continue
            params = jax.tree.map(lambda _, x: x, like_params, out["state"]["params"])
            return params, dict(out["meta"])
    finally:
        ck.close()
    raise FileNotFoundError(f"{workdir}: no readable checkpoint; train first with `seqjax train ... --workdir {workdir}`")
