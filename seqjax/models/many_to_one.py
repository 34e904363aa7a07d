"""Many-to-one models on float sequences ``[batch, time, features]`` (sequence basics)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from seqjax.models.spec import RecurrentSpec, resolve_spec


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

    Attributes: ``out_features`` (classes for classification, 1 for regression), ``rnn``
    (``seqjax.models.build.RecurrentSpec``), or its shorthand ``cell``, ``hidden`` and
    ``bidirectional``. Returns ``[batch, out_features]``.
    """

    out_features: int
    rnn: RecurrentSpec | None = None
    cell: Any = None
    hidden: Sequence[int] | None = None
    bidirectional: bool = False

    @property
    def spec(self) -> RecurrentSpec:
        """The recurrent layers' spec (``rnn`` or the shorthand)."""
        return resolve_spec(self.rnn, self.cell, self.hidden, bidirectional=self.bidirectional)

    @nn.compact
    def __call__(self, inputs, seq_lengths=None, *, deterministic: bool = True):
        """``inputs [B, T, D]``, ``seq_lengths [B]`` or None -> ``[B, out_features]``."""
        spec = self.spec
        rnn = spec.stacked(name="Stacked_0")
        outputs, _ = rnn(inputs, seq_lengths, deterministic=deterministic)
        if spec.bidirectional:
            # forward half at the last valid step, backward half at step 0 (it read the row whole)
            h = outputs.shape[-1] // 2
            feat = jnp.concatenate([last_valid(outputs[..., :h], seq_lengths), outputs[:, 0, h:]], axis=-1)
        else:
            feat = last_valid(outputs, seq_lengths)
        return nn.Dense(self.out_features)(feat)
