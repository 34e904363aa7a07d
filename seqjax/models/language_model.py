"""Recurrent language model: embedding -> ``Stacked`` -> softmax over the vocabulary."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from seqjax.core import embedding_dropout
from seqjax.core.losses import linear_cross_entropy, resolve_chunk
from seqjax.models.spec import RecurrentSpec, resolve_spec


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class LanguageModel(nn.Module):
    """Word or character LM (Zaremba et al. 2014 when ``init_scale`` is set).

    Attributes:
      vocab_size: V.
      embed: embedding size E.
      rnn: the recurrent layers (``seqjax.models.build.RecurrentSpec``); its ``variational``
        and ``dtype`` apply to the embedding and output dropout and the read-out too.
      cell, hidden: shorthand for ``rnn=RecurrentSpec(cell, hidden, dropout=dropout)``.
      dropout: on the embeddings and on the top layer's outputs (Zaremba's placement;
        between layers: ``rnn.dropout``).
      input_dropout, output_dropout: separate rates for the embedded inputs and for the top
        layer's outputs (AWD-LSTM's ``dropouti`` and ``dropout``; None: ``dropout``). With
        ``rnn.variational`` they are locked dropout (one mask per sequence).
      word_dropout: embedding dropout: whole words dropped from the embedding matrix per
        batch, kept ones rescaled (AWD-LSTM's ``dropoute``; ``seqjax.core.embedding_dropout``).
      tie_weights: the softmax reuses the embedding matrix (needs E == last hidden size).
      init_scale: if > 0, embedding and softmax weights ~ U(+-init_scale) (the cells'
        own init comes from cell_kwargs); otherwise flax defaults.
      head_chunk: how the loss is computed when ``targets`` are given: 0 = materialise the
        ``[B, T, V]`` logits, then softmax cross-entropy; N > 0 = the fused read-out of
        :func:`seqjax.core.losses.linear_cross_entropy` in chunks of N rows (same numbers, no
        logits in memory, faster on CPU, where the memory traffic over the logits dominates:
        ``python benchmarks/readout.py``); -1 = fused with a cache-sized chunk on CPU,
        materialised on GPU/TPU.
    """

    vocab_size: int
    embed: int
    rnn: RecurrentSpec | None = None
    cell: Any = None
    hidden: Sequence[int] | None = None
    dropout: float = 0.0
    tie_weights: bool = False
    init_scale: float = 0.0
    input_dropout: float | None = None
    output_dropout: float | None = None
    word_dropout: float = 0.0
    head_chunk: int = -1

    @property
    def spec(self) -> RecurrentSpec:
        """The recurrent layers' spec (``rnn`` or the shorthand)."""
        return resolve_spec(self.rnn, self.cell, self.hidden, dropout=self.dropout)

    @nn.compact
    def __call__(self, tokens, carry=None, *, deterministic: bool = True, targets=None, weights=None):
        """``tokens [B, T]`` int, per-layer ``carry`` (as ``Stacked``) -> ``(logits [B, T, V] f32, carry)``.

        With ``targets [B, T]`` int (and optional ``weights [B, T]``, default 1) it returns
        ``(nll_sum, carry)`` instead: the float32 scalar ``Σ weights · −log p(targets)``,
        computed as ``head_chunk`` says (nanoGPT's ``forward(idx, targets)`` convention).
        """
        emb_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.normal(1.0)
        embedding = nn.Embed(self.vocab_size, self.embed, embedding_init=emb_init, name="embed")
        spec = self.spec
        if self.word_dropout > 0 and not deterministic:
            rng = self.make_rng("dropout")
            x = embedding_dropout.embed(embedding.embedding, tokens, self.word_dropout, rng)
        else:
            x = embedding(tokens)
        if spec.dtype is not None:
            x = x.astype(spec.dtype)
        rate_in = self.dropout if self.input_dropout is None else self.input_dropout
        rate_out = self.dropout if self.output_dropout is None else self.output_dropout
        drop = lambda h, rate: nn.Dropout(rate, broadcast_dims=(1,) if spec.variational else ())(  # noqa: E731
            h, deterministic=deterministic
        )
        if rate_in > 0:
            x = drop(x, rate_in)
        x, carry = spec.stacked(name="rnn")(x, initial_carry=carry, deterministic=deterministic)
        self.sow("intermediates", "outputs", x)  # the last layer's outputs [B, T, H] (extra loss terms)
        if rate_out > 0:
            x = drop(x, rate_out)
        self.sow("intermediates", "dropped_outputs", x)  # and after its dropout
        if self.tie_weights:
            bias = self.param("out_bias", nn.initializers.zeros, (self.vocab_size,))
            kernel = embedding.embedding.T
            dtype = None
        else:
            dense_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.lecun_normal()
            bias_init = _uniform(self.init_scale) if self.init_scale > 0 else nn.initializers.zeros
            head = _ReadOut(self.vocab_size, dense_init, bias_init, name="out")
            kernel, bias = head(x.shape[-1])
            dtype = spec.dtype
        # One 2-D [B*T, H] x [H, V] problem: with 3-D operands XLA:CPU contracts the weight
        # gradient over (B, T) through a transposed copy of the [B, T, V] logits gradient.
        x2 = x.reshape(-1, x.shape[-1])
        if targets is not None:
            w = jnp.ones(targets.shape, jnp.float32) if weights is None else weights
            chunk = resolve_chunk(self.head_chunk, self.vocab_size)
            if chunk > 0:
                nll = linear_cross_entropy(
                    x2, kernel, bias, targets.reshape(-1), w.reshape(-1).astype(jnp.float32), chunk=chunk,
                    dtype=dtype,
                )
                return nll, carry
        xm, km = (x2, kernel) if dtype is None else (x2.astype(dtype), kernel.astype(dtype))
        logits = (jnp.dot(xm, km, preferred_element_type=jnp.float32) + bias).reshape(
            *x.shape[:-1], self.vocab_size)
        if targets is None:
            return logits, carry
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(ce * w), carry


class _ReadOut(nn.Module):
    """Untied read-out parameters, named as ``nn.Dense`` names them (``kernel [H, V]``, ``bias [V]``)."""

    features: int
    kernel_init: Any
    bias_init: Any

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return kernel, bias
