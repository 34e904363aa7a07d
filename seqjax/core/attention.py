"""Additive (Bahdanau) attention, masked over source padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

Array = jax.Array


class BahdanauAttention(nn.Module):
    """score_s = v · tanh(W_q q + W_k k_s); weights = softmax over valid s.

    Parameters: ``query`` (W_q, [Dq, features], no bias), ``key`` (W_k,
    [Dk, features], no bias) and ``v`` [features].

    A decoder calls ``project_keys(keys)`` once per source and passes the
    result as ``precomputed_keys`` at every step.

    Attributes:
      features: attention size.
    """

    features: int

    def setup(self):
        self.query = nn.Dense(self.features, use_bias=False)
        self.key = nn.Dense(self.features, use_bias=False)
        self.v = self.param("v", nn.initializers.normal(self.features**-0.5), (self.features,))

    def project_keys(self, keys: Array) -> Array:
        """W_k k: [batch, S, Dk] -> [batch, S, features]."""
        return self.key(keys)

    def __call__(
        self,
        query: Array,
        keys: Array,
        values: Array | None = None,
        mask: Array | None = None,
        precomputed_keys: Array | None = None,
    ) -> tuple[Array, Array]:
        """Attends from each query to its row of keys.

        Args:
          query: [batch, Dq].
          keys: [batch, S, Dk].
          values: [batch, S, Dv]; defaults to ``keys``.
          mask: [batch, S] bool, True at valid positions; None: all valid.
          precomputed_keys: ``project_keys(keys)`` [batch, S, features].

        Returns:
          (context [batch, Dv], weights [batch, S]): weights are exactly 0 on
          padding and sum to 1 over valid positions (all 0 for a fully masked
          row, whose context is then 0).
        """
        values = keys if values is None else values
        if precomputed_keys is None:
            precomputed_keys = self.project_keys(keys)
        hidden = jnp.tanh(self.query(query)[:, None, :] + precomputed_keys)
        scores = hidden @ self.v
        if mask is None:
            weights = jax.nn.softmax(scores, axis=-1)
        else:
            scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
            weights = jnp.where(mask, jax.nn.softmax(scores, axis=-1), 0.0)
        context = jnp.einsum("bs,bsd->bd", weights, values)
        return context, weights
