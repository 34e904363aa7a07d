"""Text classifier: token ids ``[batch, time]`` -> class logits ``[batch, classes]``.

    embedding (id 0 = <pad>) -> dropout -> Stacked RNN (uni- or bidirectional)
      -> pooling over the valid steps -> dropout -> Dense(num_classes)

Masking on (``seq_lengths`` given): the recurrent layers stop at each row's length, so the
logits of a text do not depend on how much padding its batch has (Keras ``mask_zero=True``).
Masking off (``seq_lengths=None``): the RNN reads the padding to the end of the batch, as
Keras without ``mask_zero`` does, and pooling runs over every time step.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.models.many_to_one import last_valid
from seqjax.models.spec import RecurrentSpec, resolve_spec

POOLINGS = ("last", "mean", "max")


def pool(outputs: jax.Array, seq_lengths: jax.Array | None, how: str, bidirectional: bool) -> jax.Array:
    """Pool RNN outputs ``[B, T, H]`` over each row's valid steps -> ``[B, H]``.

    ``last``: the output at the last valid step (``T - 1`` when ``seq_lengths`` is None).
    Bidirectional outputs (forward half, backward half) take the forward half there and the
    backward half at step 0, the step where the backward direction has read the whole row.
    ``mean`` / ``max``: over steps ``t < seq_lengths`` (all ``T`` when None). A row of
    length 0 (an empty text, a filler row) pools to zeros.
    """
    if how == "last":
        if not bidirectional:
            return last_valid(outputs, seq_lengths)
        h = outputs.shape[-1] // 2
        return jnp.concatenate([last_valid(outputs[..., :h], seq_lengths), outputs[:, 0, h:]], axis=-1)
    if seq_lengths is None:
        return outputs.mean(axis=1) if how == "mean" else outputs.max(axis=1)
    valid = (jnp.arange(outputs.shape[1])[None, :] < seq_lengths[:, None])[..., None]  # [B, T, 1]
    if how == "mean":
        total = jnp.where(valid, outputs, 0).sum(axis=1)
        return total / jnp.maximum(seq_lengths, 1)[:, None].astype(outputs.dtype)
    if how == "max":
        best = jnp.where(valid, outputs, -jnp.inf).max(axis=1)
        return jnp.where(seq_lengths[:, None] > 0, best, 0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {how!r}")


class TextClassifier(nn.Module):
    """Embedding -> (bi)directional ``Stacked`` RNN -> pooling -> dropout -> Dense.

    Attributes:
      vocab_size: embedding rows (id 0 is ``<pad>``).
      num_classes: output logits.
      embed_dim: embedding width.
      rnn: the recurrent layers (``seqjax.models.build.RecurrentSpec``).
      cell, hidden, bidirectional: shorthand for ``rnn=RecurrentSpec(cell, hidden,
        bidirectional=..., dropout=dropout)``.
      dropout: on the pooled features before the Dense (between layers: ``rnn.dropout``).
      embed_dropout: dropout on the embeddings, one mask of channels per row shared by all
        its time steps (Keras ``SpatialDropout1D``).
      pooling: ``last`` | ``mean`` | ``max`` (see :func:`pool`).
    """

    vocab_size: int
    num_classes: int
    embed_dim: int = 64
    rnn: RecurrentSpec | None = None
    cell: Any = None
    hidden: Sequence[int] | None = None
    bidirectional: bool = False
    dropout: float = 0.0
    embed_dropout: float = 0.0
    pooling: str = "last"

    @property
    def spec(self) -> RecurrentSpec:
        """The recurrent layers' spec (``rnn`` or the shorthand)."""
        return resolve_spec(self.rnn, self.cell, self.hidden, bidirectional=self.bidirectional,
                            dropout=self.dropout)

    @nn.compact
    def __call__(self, tokens: jax.Array, seq_lengths: jax.Array | None = None, *,
                 deterministic: bool = True) -> jax.Array:
        """``tokens int32 [B, T]``, ``seq_lengths int32 [B]`` or None -> logits ``float32 [B, C]``."""
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(tokens)  # [B, T, E]
        if self.embed_dropout > 0:
            # the same channels dropped at every step of a row (Keras SpatialDropout1D)
            x = nn.Dropout(self.embed_dropout, broadcast_dims=(1,))(x, deterministic=deterministic)
        spec = self.spec
        rnn = spec.stacked(name="rnn")
        outputs, _ = rnn(x, seq_lengths, deterministic=deterministic)  # [B, T, H or 2H]
        feat = pool(outputs, seq_lengths, self.pooling, spec.bidirectional)
        if self.dropout > 0:
            feat = nn.Dropout(self.dropout)(feat, deterministic=deterministic)
        return nn.Dense(self.num_classes, name="out")(feat).astype(jnp.float32)
