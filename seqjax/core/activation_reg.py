"""Activation regularisation (AR) and temporal activation regularisation (TAR) of
AWD-LSTM (Merity, McCann & Socher 2017), as extra loss terms of the training objective.

Both read the language model's last-layer outputs that it sows (``outputs``: before its
output dropout, ``dropped_outputs``: after), ``[B, T, H]`` each, captured in the train step
(:func:`seqjax.tasks.base.capture_outputs`). They are ``train.extra_loss`` functions, each
weighted by its entry (AWD-LSTM on PTB: ``{"seqjax.core.activation_reg:ar": 2.0,
"seqjax.core.activation_reg:tar": 1.0}``, i.e. alpha 2, beta 1):

- ``ar = mean(dropped_outputs ** 2)``: the L2 of the dropped outputs (mean over B, T, H);
- ``tar = mean((outputs[:, 1:] - outputs[:, :-1]) ** 2)``: the L2 of the difference of
  consecutive un-dropped outputs (mean over B, T - 1, H).

Outside training both are 0 (AWD-LSTM reports the plain cross-entropy).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def sown(outputs: Any, name: str) -> jax.Array:
    """The array ``name`` the model sowed in its (last) application: ``outputs`` is the
    list :func:`~seqjax.tasks.base.capture_outputs` fills, or one of its dicts; flax
    keeps sown values in tuples (the last one is taken)."""
    if isinstance(outputs, Sequence) and not isinstance(outputs, Mapping):
        outputs = outputs[-1]
    value = outputs[name]
    return value[-1] if isinstance(value, tuple) else value


def ar(params, batch, outputs, rng, train) -> jax.Array:
    """float32 ``[]``: ``mean(h_dropped ** 2)`` of the last layer's dropped outputs."""
    if not train:
        return jnp.zeros((), jnp.float32)
    h = sown(outputs, "dropped_outputs").astype(jnp.float32)
    return jnp.mean(h * h)


def tar(params, batch, outputs, rng, train) -> jax.Array:
    """float32 ``[]``: ``mean((h_t - h_{t-1}) ** 2)`` of the last layer's un-dropped outputs."""
    if not train:
        return jnp.zeros((), jnp.float32)
    h = sown(outputs, "outputs").astype(jnp.float32)
    d = h[:, 1:] - h[:, :-1]
    return jnp.mean(d * d)
