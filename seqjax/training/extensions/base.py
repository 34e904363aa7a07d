"""Train-state extensions: features that add state to the train step, each in its own file.

An extension is a subclass of :class:`Extension` registered with :func:`register`; it is
active in a run when :meth:`Extension.enabled` says so for the run's config (its own keys,
e.g. ``train.ema``). The loop (:mod:`seqjax.training.loop`) gives each active extension:

- a slot ``TrainState.ext[name]``: a pytree made by :meth:`Extension.init` from the initial
  params, replicated, updated inside the one jitted step by :meth:`Extension.update` and
  saved and restored with the rest of the train state (so a resumed run is exact);
- two seams inside the jitted step, applied in registration order:
  :meth:`Extension.wrap_loss` around the task's loss (``loss_fn(params, batch, carry, rng,
  train) -> (objective, (metric sums, carry))``) and :meth:`Extension.wrap_grad` around the
  gradient (``grad_fn(params, batch, carry, rng) -> ((objective, (metric sums, carry)), grads)``);
- :meth:`Extension.eval_params`: the params that evaluation, the best checkpoint and the
  final report score (e.g. the average instead of the trained params);
- :attr:`Extension.view`: a name under which inference restores params from this
  extension's saved state (``seqjax eval RUN --checkpoint ema``);
- :meth:`Extension.hooks`: hooks (:mod:`seqjax.training.hooks`) the loop runs for it, e.g.
  an eval hook that reads the validation metrics the jitted step does not see.

With no extension active the step is the plain one: the same program as without this seam.
"""
from __future__ import annotations

from typing import Any, ClassVar

import ml_collections

from seqjax import config as config_lib
from seqjax.errors import UsageError

#: name -> extension class, in registration order
EXTENSIONS: dict[str, type[Extension]] = {}


class Extension:
    """Base class of the train-state extensions (see the module docstring)."""

    #: the key of its state in ``TrainState.ext`` (and of its entry in :data:`EXTENSIONS`)
    name: ClassVar[str] = ""
    #: a ``--checkpoint`` choice restoring :meth:`view_params` of the saved state ("" if none)
    view: ClassVar[str] = ""
    #: the config key that turns it on (e.g. ``"train.ema"``) and the value that means off:
    #: the default :meth:`enabled` is "the key is above ``off``"
    switch: ClassVar[str] = ""
    off: ClassVar[float] = 0

    def __init__(self, cfg: ml_collections.ConfigDict, task: Any):
        self.cfg, self.task = cfg, task

    @classmethod
    def enabled(cls, cfg: ml_collections.ConfigDict) -> bool:
        """Whether ``cfg`` turns this extension on: its :attr:`switch` key (absent: off) is
        above :attr:`off`. An extension with another rule overrides this."""
        if not cls.switch:
            raise NotImplementedError(f"{cls.__name__}: set switch or override enabled()")
        return config_lib.get(cfg, cls.switch, cls.off) > cls.off

    def init(self, params: Any) -> Any:
        """Its state at step 0 (a pytree of arrays, or None) from the initial params."""
        return None

    def wrap_loss(self, loss_fn):
        """The task's loss with this extension's change (identity by default)."""
        return loss_fn

    def wrap_grad(self, grad_fn):
        """The gradient computation with this extension's change (identity by default)."""
        return grad_fn

    def update(self, ext_state: Any, params: Any, step: Any) -> Any:
        """Its new state after the optimizer step: ``params`` are the updated params,
        ``step`` (int32 []) the number of optimizer steps done before this one."""
        return ext_state

    def eval_params(self, ext_state: Any, params: Any) -> Any:
        """The params evaluation scores (default: ``params``)."""
        return params

    def hooks(self) -> list:
        """:class:`~seqjax.training.hooks.Hook` objects the loop adds for this extension
        (after ``train.hooks``); a hook changes the extension's state through
        ``info.state = info.state.replace(ext={...})``."""
        return []

    @classmethod
    def view_params(cls, saved: Any) -> Any:
        """Params for inference from this extension's saved state (with :attr:`view`)."""
        return saved


def register(cls: type[Extension]) -> type[Extension]:
    """Class decorator: make ``cls`` available to every run whose config enables it."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: an extension needs a name")
    EXTENSIONS[cls.name] = cls
    return cls


def active(cfg: ml_collections.ConfigDict, task: Any) -> list[Extension]:
    """The extensions ``cfg`` enables, built for ``task``, in registration order."""
    return [cls(cfg, task) for cls in EXTENSIONS.values() if cls.enabled(cfg)]


def views() -> dict[str, type[Extension]]:
    """``--checkpoint`` names that the registered extensions add -> their class."""
    return {cls.view: cls for cls in EXTENSIONS.values() if cls.view}


def view_of(which: str) -> type[Extension]:
    """The extension behind ``--checkpoint which``; one-line UsageError listing the choices."""
    found = views().get(which)
    if found is None:
        raise UsageError(f"--checkpoint {which}: choose one of best, latest, average"
                         + "".join(f", {v}" for v in views()))
    return found
