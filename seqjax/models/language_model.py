"""Recurrent language model: embedding -> ``Stacked`` -> softmax over the vocabulary."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.layers import Stacked


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class LanguageModel(nn.Module):
    """Word or character LM (Zaremba et al. 2014 when ``init_scale`` is set).

    Attributes:
      vocab_size: V.
      embed: embedding size E.
      cell, hidden, cell_kwargs, unroll: the ``Stacked`` recurrent layers.
      dropout: on the embeddings, between layers and on the top layer's outputs
        (Zaremba's placement).
      variational: one dropout mask per sequence reused at every step (Gal & Ghahramani).
      tie_weights: the softmax reuses the embedding matrix (needs E == last hidden size).
      init_scale: if > 0, embedding and softmax weights ~ U(+-init_scale) (the cells'
        own init comes from cell_kwargs); otherwise flax defaults.
      rnn_backend: "scan" or "cudnn" (LSTM layers as cuDNN kernels on a GPU; see
        ``seqjax.layers.Recurrent``).
    """

    vocab_size: int
    embed: int
    cell: str = "lstm"
    hidden: Sequence[int] = (200, 200)
    dropout: float = 0.0
    variational: bool = False
    tie_weights: bool = False
    init_scale: float = 0.0
    cell_kwargs: Any = None
    unroll: int = 1
    dtype: Any = None
    rnn_backend: str = "scan"

    @nn.compact
    def __call__(self, tokens, carry=None, *, deterministic: bool = True):
        """``tokens [B, T]`` int, ``carry`` (per-layer, as ``Stacked``) -> ``(logits [B, T, V] float32, carry)``."""
        emb_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.normal(1.0)
        embedding = nn.Embed(self.vocab_size, self.embed, embedding_init=emb_init, name="embed")
        x = embedding(tokens)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        drop = lambda h: nn.Dropout(self.dropout, broadcast_dims=(1,) if self.variational else ())(  # noqa: E731
            h, deterministic=deterministic
        )
        if self.dropout > 0:
            x = drop(x)
        x, carry = Stacked(
            cell=self.cell,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            variational=self.variational,
            cell_kwargs=self.cell_kwargs or {},
            unroll=self.unroll,
            backend=self.rnn_backend,
            name="rnn",
        )(x, initial_carry=carry, deterministic=deterministic)
        if self.dropout > 0:
            x = drop(x)
        if self.tie_weights:
            logits = embedding.attend(x.astype(jnp.float32))
            logits = logits + self.param("out_bias", nn.initializers.zeros, (self.vocab_size,))
        else:
            dense_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.lecun_normal()
            bias_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.zeros
            out = nn.Dense(self.vocab_size, kernel_init=dense_init, bias_init=bias_init, dtype=self.dtype, name="out")
            # One 2-D [B*T, H] x [H, V] matmul: with 3-D operands XLA:CPU contracts the weight
            # gradient over (B, T) through a transposed copy of the [B, T, V] logits gradient.
            logits = out(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], self.vocab_size)
        return logits.astype(jnp.float32), carry
