"""Extra loss terms by import path: ``train.extra_loss={"package.module:fn": weight, ...}``.

Each ``fn`` is called inside the jitted train step as::

    fn(params, batch, outputs, rng, train) -> float32 []

- ``params``: the params being trained (a flax params dict);
- ``batch``: the step's batch (dict of ``[B, ...]`` arrays: the LM's ``inputs``,
  ``targets``, ``weight`` ``[B, T]``; with ``train.accumulate`` one micro-batch);
- ``outputs``: what the task's model sowed into flax's ``intermediates`` collection during
  this step's forward pass (:func:`seqjax.tasks.base.capture_outputs`), each single sown
  value unwrapped: the language model gives ``outputs["outputs"]`` and
  ``outputs["dropped_outputs"]``, its last layer's outputs ``[B, T, H]`` before and after
  the output dropout (AWD-LSTM's TAR and AR regularize these); ``{}`` for a model that sows
  nothing;
- ``rng``: a key of its own for this term and step;
- ``train``: True (terms are added to the training objective only; evaluation and the
  logged metrics are the task's).

The objective becomes ``task objective + Σ weight · fn(...)``; gradients flow through the
outputs into the model. The extension keeps no state of its own.
"""
from __future__ import annotations

import jax

from seqjax.tasks.base import capture_outputs
from seqjax.training.extensions.base import Extension, register
from seqjax.training.hooks import import_object


def _unwrap(tree):
    """flax's sown ``(value,)`` tuples -> ``value`` (nested dicts kept)."""
    if isinstance(tree, tuple) and len(tree) == 1:
        return tree[0]
    if isinstance(tree, dict):
        return {k: _unwrap(v) for k, v in tree.items()}
    return tree


@register
class ExtraLoss(Extension):
    name = "extra_loss"

    @classmethod
    def enabled(cls, cfg):
        return bool(cfg.train.get("extra_loss", None))

    def __init__(self, cfg, task):
        super().__init__(cfg, task)
        self.terms = [(import_object(path, "train.extra_loss"), float(w))
                      for path, w in sorted(dict(cfg.train.extra_loss).items())]

    def wrap_loss(self, loss_fn):
        terms = self.terms

        def with_terms(params, batch, carry, rng, train):
            with capture_outputs() as sown:
                objective, aux = loss_fn(params, batch, carry, rng, train)
            outputs = _unwrap(sown[0]) if sown else {}
            for k, (fn, weight) in enumerate(terms):
                term = fn(params, batch, outputs, jax.random.fold_in(rng, k + 1), train)
                objective = objective + weight * term
            return objective, aux

        return with_terms
