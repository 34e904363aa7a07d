"""Embedding dropout: whole words dropped (Gal & Ghahramani 2016; AWD-LSTM's ``dropoute``).

Each call draws one keep/drop decision per vocabulary entry (a ``[V, 1]`` mask, kept with
probability ``1 - p``, kept rows scaled by ``1 / (1 - p)``) and looks the tokens up in the
masked table, so a dropped word is a zero vector at every one of its occurrences in the
batch, and a kept one is its embedding rescaled. Unlike dropout on the embedded sequence,
which zeroes single features of single positions, this removes the word type for the batch.
A tied read-out keeps using the unmasked matrix (as AWD-LSTM's ``embedded_dropout``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def row_mask(rng: jax.Array, vocab_size: int, rate: float) -> jax.Array:
    """float32 ``[V, 1]``: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    keep = 1.0 - rate
    return jax.random.bernoulli(rng, keep, (vocab_size, 1)).astype(jnp.float32) / keep


def embed(table: jax.Array, tokens: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """``table [V, E]``, int ``tokens [B, T]`` -> ``[B, T, E]``: the rows of the table with
    whole rows dropped at ``rate`` and the kept rows rescaled (:func:`row_mask`)."""
    masked = table * row_mask(rng, table.shape[0], rate).astype(table.dtype)
    return jnp.take(masked, tokens, axis=0)
