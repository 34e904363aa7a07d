"""The learning rate of a variable-length BPTT window scaled by its length (AWD-LSTM):
on with ``data.variable_bptt`` (the windows: :mod:`seqjax.data.vbptt`).

AWD-LSTM steps with ``lr * seq_len / bptt`` after clipping the gradient, so a short window
moves the weights less. The extension scales the gradient the optimizer receives by
``s = seq_len / bptt`` (a constant of each compiled window length). For SGD without
clipping that is exactly the learning rate scaled by ``s``. With ``optim.clip_norm = c``
the extension clips by ``c`` first and then scales, so the optimizer's own clip leaves the
scaled gradient alone whenever ``s <= 1``; for a window longer than ``bptt`` whose
gradient was clipped the optimizer's clip caps the step at ``lr * c`` (AWD-LSTM: up to
``lr * c * s``, ``s`` about 1.1). The weight-decay term (``optim.weight_decay``, added by the
optimizer) is not scaled.

Exact scaling after the clip needs a seam the loop does not have: a per-step factor on the
optimizer's update (as ``TrainState.lr_scale`` for the plateau schedule) that an extension
sets from the batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from seqjax.training.extensions.base import Extension, register


@register
class VariableBPTT(Extension):
    name = "variable_bptt"

    switch = "data.variable_bptt"

    def wrap_grad(self, grad_fn):
        bptt, clip = float(self.cfg.data.bptt), float(self.cfg.optim.clip_norm)

        def scaled(params, batch, carry, rng):
            out, grads = grad_fn(params, batch, carry, rng)
            s = batch["inputs"].shape[1] / bptt  # static: one compiled step per window length
            if clip > 0:
                norm = optax.global_norm(grads)
                factor = jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-12)) * s
            else:
                factor = jnp.float32(s)
            return out, jax.tree.map(lambda g: (g * factor).astype(g.dtype), grads)

        return scaled
