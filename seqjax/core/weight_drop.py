"""Weight-drop: DropConnect on the recurrent weights (Wan et al. 2013; AWD-LSTM, Merity et al. 2018).

A :class:`seqjax.core.layers.Recurrent` with ``weight_drop = p > 0`` (``model.weight_drop``)
draws, once per call, one 0/1 mask over each recurrent matrix (``W_hh [H, G*H]``): each
entry is kept with probability ``1 - p`` and the kept ones are scaled by ``1 / (1 - p)``.
The whole batch and every time step of the call use the same masked matrix (one mask per
batch, not per step, as AWD-LSTM's ``WeightDrop``), a new call (the next batch) draws a new
mask from the layer's ``dropout`` rng; evaluation (``deterministic=True``) uses the
weights as they are. The gradient reaches the kept entries only, scaled by ``1 / (1 - p)``.

Where the mask is applied:

- fused cells (``lstm``, ``gru``, ``rnn``): the masked ``W_hh`` is what the layer hands to
  the time loop (:func:`seqjax.core.recurrence.recurrence`, the Newton backend), so the fast
  loop and its one-matmul ``dW_hh`` are kept;
- any other cell (the generic ``nn.scan`` path, ``backend=flax_scan``): the cell runs under
  ``flax.linen.map_variables``, which hands it its params with the recurrent kernels masked.

Which params are recurrent: the names in a cell's ``recurrent_params`` attribute when it
declares one, else ``hh`` when the cell has it (seqjax's fused cells), else every
submodule whose name starts with ``h`` (flax.linen's cells: ``hi hf hg ho``, ``hr hz hn``,
``h``); of those, the ``kernel`` entries (biases are not dropped). Linear cells (minGRU,
minLSTM) have no recurrent matrix: the option does nothing there.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Params = Mapping[str, Any]


def recurrent_names(cell: Any, params: Params) -> tuple[str, ...]:
    """The names of ``params`` (a cell's own params) that hold its recurrent weights."""
    declared = getattr(cell, "recurrent_params", None)
    if declared:
        return tuple(declared)
    if "hh" in params:
        return ("hh",)
    return tuple(sorted(k for k in params if k.startswith("h")))


def mask(rng: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """float32 ``shape``: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    keep = 1.0 - rate
    return jax.random.bernoulli(rng, keep, shape).astype(jnp.float32) / keep


def drop_recurrent(params: Params, *, rate: float, rng: jax.Array, names: tuple[str, ...]) -> dict:
    """``params`` (a cell's) with each ``params[name]["kernel"]`` of ``names`` multiplied
    by its own mask (:func:`mask`, key ``fold_in(rng, i)`` for the i-th name)."""
    out = dict(params)
    for i, name in enumerate(names):
        sub = dict(out[name])
        k = sub["kernel"]
        sub["kernel"] = (k * mask(jax.random.fold_in(rng, i), k.shape, rate)).astype(k.dtype)
        out[name] = sub
    return out


def for_layer(layer: Any, deterministic: bool) -> Callable[[Params], dict] | None:
    """The masking function of a ``Recurrent`` layer's call, ``cell params -> cell params``,
    or None when it drops nothing (rate 0, evaluation, initialisation). Draws the call's
    key from the layer's ``dropout`` rng, so every batch has its own masks."""
    rate = float(getattr(layer, "weight_drop", 0.0))
    if rate <= 0 or deterministic or layer.is_initializing():
        return None
    rng = layer.make_rng("dropout")

    def drop(params: Params) -> dict:
        return drop_recurrent(params, rate=rate, rng=rng, names=recurrent_names(layer.cell, params))

    return drop


def map_cell(fn: Callable, drop: Callable[[Params], dict] | None) -> Callable:
    """``fn(cell, ...)`` (e.g. an ``nn.scan`` over the cell) with the cell seeing its params
    through ``drop`` (``flax.linen.map_variables``; the mask is drawn once, outside the loop)."""
    if drop is None:
        return fn
    return nn.map_variables(fn, "params", trans_in_fn=functools.partial(_drop_tree, drop), mutable=False)


def _drop_tree(drop: Callable[[Params], dict], variables: Params) -> Params:
    """``map_variables`` hands ``{"params": the cell's params}``: the params masked."""
    if not variables.get("params"):  # nothing yet (the layer does not drop while initialising)
        return variables
    return {**variables, "params": drop(variables["params"])}
