"""Gradient accumulation: ``train.accumulate=N`` micro-batches per optimizer step.

``data.batch_size`` stays the global batch: its rows are split into N micro-batches of
``batch_size / N`` rows (row ``j`` goes to micro-batch ``j % N``, so every micro-batch
spreads over the devices as the whole batch does), and one ``lax.scan`` inside the one
jitted step computes their gradients one after another, so activations are held for one
micro-batch at a time. ``state.step``, ``train.steps``, the schedules and the logs count
optimizer steps, as without accumulation.

Each micro-batch's objective and gradient are weighted by :meth:`Task.objective_weight`
(the tokens or examples its objective averages over), so N micro-batches give the
objective and gradient of their concatenated batch (up to float rounding); metric sums add
up. The recurrent carry of a stateful task (the LM's parallel streams) is split by rows in
the same way and put back together, so each stream keeps its own carry. Micro-batch ``i``
draws its dropout from ``fold_in(rng, i)``, so with dropout the masks differ from an
unsplit batch's. The extension keeps no state of its own.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.training.extensions.base import Extension, register


@register
class Accumulate(Extension):
    name = "accumulate"

    switch, off = "train.accumulate", 1

    def wrap_grad(self, grad_fn):
        n, task = self.cfg.train.accumulate, self.task

        def split(x):  # [B, ...] -> [n, B / n, ...]
            return x.reshape(x.shape[0] // n, n, *x.shape[1:]).swapaxes(0, 1)

        def join(x):  # [n, B / n, ...] -> [B, ...]
            return x.swapaxes(0, 1).reshape(-1, *x.shape[2:])

        def accumulated(params, batch, carry, rng):
            def micro_step(grads, xs):
                b, c, i = xs
                (objective, (metrics, c)), g = grad_fn(params, b, c, jax.random.fold_in(rng, i))
                w = task.objective_weight(b, metrics).astype(jnp.float32)
                grads = jax.tree.map(lambda a, x: a + w * x.astype(jnp.float32), grads, g)
                return grads, (w * objective, w, metrics, c)

            zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
            xs = (jax.tree.map(split, batch), jax.tree.map(split, carry), jnp.arange(n))
            grads, (objectives, weights, metrics, carry) = jax.lax.scan(micro_step, zeros, xs)
            total = jnp.maximum(weights.sum(), 1.0)
            grads = jax.tree.map(lambda g, p: (g / total).astype(p.dtype), grads, params)
            metrics = jax.tree.map(lambda m: m.sum(0), metrics)
            return (objectives.sum() / total, (metrics, jax.tree.map(join, carry))), grads

        return accumulated
