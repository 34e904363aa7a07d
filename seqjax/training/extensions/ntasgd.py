"""NT-ASGD: SGD that switches to averaged SGD when validation stops improving
(Merity, Keskar & Socher 2018, "non-monotonically triggered ASGD"): ``train.ntasgd=N``
(0: off; the paper: 5), evaluated every epoch (``train.eval_every=0``).

The trigger (the paper's rule, as AWD-LSTM's ``main.py``): with ``logs`` the validation
losses of the evaluations before this one, the run switches to averaging at the first
evaluation where ``len(logs) > N`` and ``loss > min(logs[:-N])`` — it is worse than every
loss from before the last ``N`` evaluations. The optimizer itself does not change (AWD-LSTM's
``ASGD(t0=0, lambd=0)`` takes plain SGD steps); from the switch on the extension keeps the
running mean of the params after each step, ``avg_k = avg_{k-1} + (w_k - avg_{k-1}) / k``,
i.e. the mean of the iterates since the switch.

State ``TrainState.ext["ntasgd"]`` (checkpointed, so a resumed run is exact before and
after the switch): ``avg`` (params-shaped float32: the params themselves before the
switch, the mean after), ``count`` (int32: steps averaged), ``switch_step`` (int32: the
step of the switch, -1 before), ``recent`` (float32 ``[N]``: the last N validation losses,
oldest first), ``best_old`` (float32: the least loss from before them), ``evals``
(int32). Evaluation, ``best/`` and the final report score ``avg``; ``--checkpoint asgd``
restores it from the newest checkpoint.

The trigger reads validation losses, which the jitted step does not see: the extension
brings the eval hook :data:`trigger` that applies it (:meth:`NTASGD.hooks`); a config
that lists it in ``train.hooks`` too runs it once.

Fine-tuning (the paper's second stage, 57.3 instead of 58.8 on PTB) is a second run whose
initial params are the averaged ones (``restore_params(run, like, "asgd")`` returned by
its task's ``init_params``; docs/awd.md), with ``train.ntasgd`` on again.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.training.extensions.base import Extension, register
from seqjax.training.hooks import Hook, HookInfo

#: the trigger's import path (a config may list it in ``train.hooks``; it then runs once)
HOOK_PATH = "seqjax.training.extensions.ntasgd:trigger"


@register
class NTASGD(Extension):
    name = "ntasgd"
    view = "asgd"

    switch = "train.ntasgd"

    def hooks(self):
        listed = HOOK_PATH in list(self.cfg.train.get("hooks", None) or ())
        return [] if listed else [trigger]

    def init(self, params):
        n = int(self.cfg.train.ntasgd)
        return {
            "avg": jax.tree.map(lambda p: jnp.array(p, jnp.float32, copy=True), params),
            "count": jnp.zeros((), jnp.int32),
            "switch_step": -jnp.ones((), jnp.int32),
            "recent": jnp.full((n,), jnp.inf, jnp.float32),
            "best_old": jnp.full((), jnp.inf, jnp.float32),
            "evals": jnp.zeros((), jnp.int32),
        }

    def update(self, state, params, step):
        on = state["switch_step"] >= 0
        count = jnp.where(on, state["count"] + 1, 0)
        inv = 1.0 / jnp.maximum(count, 1).astype(jnp.float32)
        avg = jax.tree.map(lambda a, p: jnp.where(on, a + (p.astype(jnp.float32) - a) * inv,
                                                  p.astype(jnp.float32)), state["avg"], params)
        return {**state, "avg": avg, "count": count}

    def eval_params(self, state, params):
        return jax.tree.map(lambda a, p: a.astype(p.dtype), state["avg"], params)

    @classmethod
    def view_params(cls, saved):
        return saved["avg"]


def observe(state: dict, loss: float, n: int, step: int) -> dict:
    """The trigger's part of the state (all but ``avg``) after an evaluation with validation
    ``loss`` at ``step`` (host side, numpy): switches when the trigger holds (module
    docstring), then records ``loss``."""
    recent = np.asarray(state["recent"], np.float32)
    best_old, evals = float(state["best_old"]), int(state["evals"])
    out = dict(state)
    if int(state["switch_step"]) < 0 and evals > n and loss > best_old:
        out["switch_step"], out["count"] = np.int32(step), np.int32(0)
    # logs[:-n] gains the oldest of the last n; the newest loss joins them
    out["best_old"] = np.float32(min(best_old, float(recent[0])))
    out["recent"] = np.concatenate([recent[1:], np.float32([loss])])
    out["evals"] = np.int32(evals + 1)
    return out


def _on_eval(info: HookInfo) -> None:
    """After each evaluation: the trigger on the valid loss, into the train state."""
    from seqjax.training import mesh as mesh_lib

    state = info.state
    if "ntasgd" not in state.ext:  # train.ntasgd=0 (e.g. an ablation that keeps the hook listed)
        return
    ext = jax.device_get({k: v for k, v in state.ext["ntasgd"].items() if k != "avg"})
    new = observe(ext, float(info.metrics["loss"]), int(info.cfg.train.ntasgd), info.step)
    if int(new["switch_step"]) >= 0 and int(ext["switch_step"]) < 0:
        info.echo(f"step {info.step}: NT-ASGD switches to averaging (valid loss {info.metrics['loss']:.4f} "
                  f"worse than every loss before the last {info.cfg.train.ntasgd} evaluations)")
    small = mesh_lib.replicate(jax.tree.map(jnp.asarray, new), info.engine.mesh)
    info.state = state.replace(ext={**state.ext, "ntasgd": {**state.ext["ntasgd"], **small}})


#: the eval hook of ``train.ntasgd`` (:meth:`NTASGD.hooks`)
trigger = Hook(_on_eval, on="eval", name="ntasgd")
