"""Many-to-one models on float sequences ``[batch, time, features]`` (sequence basics)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from seqjax.layers import Stacked


def last_valid(outputs, seq_lengths):
    """``outputs [B, T, H]`` -> the output at each row's last valid step ``[B, H]``.

    ``seq_lengths`` None means every row is full length (the last time step).
    """
    if seq_lengths is None:
        return outputs[:, -1]
    idx = jnp.clip(seq_lengths - 1, 0, outputs.shape[1] - 1)
    return jnp.take_along_axis(outputs, idx[:, None, None], axis=1)[:, 0]


class ManyToOne(nn.Module):
    """``Stacked`` recurrent layers -> state after the last valid step -> Dense.

    Attributes: ``out_features`` (classes for classification, 1 for regression) and the
    ``Stacked`` options. Returns ``[batch, out_features]``.
    """

    out_features: int
    cell: str = "lstm"
    hidden: Sequence[int] = (64,)
    dropout: float = 0.0
    variational: bool = False
    bidirectional: bool = False
    cell_kwargs: dict | None = None
    unroll: int = 1
    remat: bool = False
    wavefront: bool = False

    @nn.compact
    def __call__(self, inputs, seq_lengths=None, *, deterministic: bool = True):
        """``inputs [B, T, D]``, ``seq_lengths [B]`` or None -> ``[B, out_features]``."""
        rnn = Stacked(
            cell=self.cell,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            variational=self.variational,
            bidirectional=self.bidirectional,
            cell_kwargs=self.cell_kwargs or {},
            unroll=self.unroll,
            remat=self.remat,
            wavefront=self.wavefront,
        )
        outputs, _ = rnn(inputs, seq_lengths, deterministic=deterministic)
        if self.bidirectional:
            # forward half at the last valid step, backward half at step 0 (it read the row whole)
            h = outputs.shape[-1] // 2
            feat = jnp.concatenate([last_valid(outputs[..., :h], seq_lengths), outputs[:, 0, h:]], axis=-1)
        else:
            feat = last_valid(outputs, seq_lengths)
        return nn.Dense(self.out_features)(feat)
