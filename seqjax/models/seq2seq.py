"""Recurrent encoder-decoder (seq2seq), optionally with Bahdanau attention.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` target vocabulary,
``H`` hidden size of each layer, ``De`` encoder output size (``H``, or ``2H`` when the
encoder is bidirectional), ``A`` attention size.

Encoder: token embedding (or one-hot, ``embed=0``, as in the Keras character example)
-> :class:`seqjax.core.layers.Stacked` (any cell, optionally bidirectional), masked by the
source lengths, so padding never changes a result.

Bridge: the encoder's final carry of layer ``l`` starts decoder layer ``l``. When the
encoder is unidirectional with the decoder's sizes this is the identity (the Keras
example passes ``[state_h, state_c]`` unchanged); when it is bidirectional, each part of
a carry (its leaves, from ``cell.initialize_carry``: ``h``, and ``c`` for an LSTM) is
``Dense([fwd; bwd])`` (``tanh`` for ``h``, the last leaf by flax's ``(c, h)`` convention,
linear for the others).

Decoder, one step (``Decoder.step``), for ``attention="bahdanau"`` (Bahdanau et al. 2015,
as the TensorFlow NMT-with-attention tutorial does it)::

    c_t, a_t = attention(query = h_{t-1} (top layer), keys = encoder outputs,
                         masked over source padding)            # a_t: [B, S]
    h_t      = cell(h_{t-1}, [emb(y_{t-1}); c_t])                # context fed to the cell
    logits_t = W_o [h_t; c_t] + b_o                              # and to the readout

The context comes from the *previous* state (Bahdanau), not from ``h_t`` (Luong), so it
can be fed into the cell. ``[emb; c] @ W_ih`` is split as ``emb @ W_e + c @ W_c``: the
embedding half (``cell.input_projection``) is one matmul over all target positions before
the time loop, only ``c @ W_c`` (``Decoder.context_in``, no bias) is inside it. The keys
are projected once per source (``BahdanauAttention.project_keys``). Without attention the
step is ``h_t = cell(h_{t-1}, emb(y_{t-1}))``, ``logits_t = W_o h_t + b_o``, and the whole
layer-0 input projection is hoisted. That split needs a fused cell (``seqjax.core.cells``);
any other cell reads ``[emb; c]`` (or ``emb``) through its own ``__call__``.

Training uses teacher forcing: ``Seq2Seq.__call__`` scans ``Decoder.step`` over the gold
target inputs with ``nn.scan``; the readout (the ``[.., V]`` matmul) is outside the scan,
over all positions at once. Decoding (``seqjax.core.decoding``) calls ``Seq2Seq.encode`` once and
``Seq2Seq.decode_step`` per token, which runs the very same ``Decoder.step``.

Dropout (``dropout``): on source and target embeddings, between encoder layers
(``Stacked``) and on the readout input; none inside the decoder's time loop.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from seqjax.core.attention import BahdanauAttention
from seqjax.core.cells import supports
from seqjax.core.losses import linear_cross_entropy, resolve_chunk
from seqjax.models.spec import RecurrentSpec, resolve_spec

Array = jax.Array
Carry = Any
# {"mask": [B, S] bool, "values": [B, S, De], "keys": [B, S, A]} (no values/keys without attention)
Memory = dict

ATTENTIONS = ("none", "bahdanau")


def top_hidden(carry: Carry) -> Array:
    """The ``h [B, H]`` of one layer's carry: its last leaf (``h`` itself, or the ``h`` of an
    LSTM's ``(c, h)``, flax's convention)."""
    return jax.tree.leaves(carry)[-1]


def carry_leaves(rnn: RecurrentSpec, size: int) -> int:
    """How many arrays one layer's carry has (1 for h, 2 for an LSTM's (c, h))."""
    cell = rnn.make_cell(size, parent=None)
    return len(jax.tree.leaves(jax.eval_shape(lambda: cell.initialize_carry(jax.random.key(0), (1, size)))))


class Embedder(nn.Module):
    """Token ids ``[...]`` -> ``[..., features]``: ``nn.Embed``, or one-hot when ``features=0``."""

    vocab: int
    features: int

    @nn.compact
    def __call__(self, tokens: Array) -> Array:
        if self.features == 0:
            return jax.nn.one_hot(tokens, self.vocab, dtype=jnp.float32)
        return nn.Embed(self.vocab, self.features)(tokens)


class Decoder(nn.Module):
    """Decoder cells, attention and readout; ``step`` is one time step.

    Attributes:
      vocab: target vocabulary size V.
      rnn: the cells (``rnn.cell``) and hidden size of each layer (``rnn.hidden``).
      embed: target embedding size (0: one-hot).
      attention: "none" | "bahdanau".
      attention_units: A.
      dropout: on the readout input (embedding dropout is applied by the caller).
    """

    vocab: int
    rnn: RecurrentSpec
    embed: int
    attention: str = "none"
    attention_units: int = 128
    dropout: float = 0.0

    def setup(self):
        self.embedding = Embedder(self.vocab, self.embed)
        self.cells = [self.rnn.make_cell(h) for h in self.rnn.hidden]
        self.fused = supports(self.cells[0], "fused")
        if self.attention == "bahdanau":
            self.attn = BahdanauAttention(self.attention_units)
            if self.fused:
                self.context_in = nn.Dense(self.cells[0].num_gates * self.rnn.hidden[0], use_bias=False)
        self.readout_dropout = nn.Dropout(self.dropout)
        self.readout = nn.Dense(self.vocab)

    def embed_and_project(self, tokens: Array) -> Array:
        """``tokens [...]`` -> layer 0's input projection ``emb @ W_e + b [..., G*H0]`` (the
        embeddings ``[..., E]`` for a cell that is not fused)."""
        return self.project_embeddings(self.embedding(tokens))

    def embed_tokens(self, tokens: Array) -> Array:
        """``tokens [...]`` -> embeddings ``[..., E]``."""
        return self.embedding(tokens)

    def project_embeddings(self, emb: Array) -> Array:
        """``emb [..., E]`` -> ``[..., G*H0]`` (hoisted out of the time loop); unchanged for a
        cell that is not fused."""
        return self.cells[0].input_projection(emb) if self.fused else emb

    def memory(self, outputs: Array, mask: Array) -> Memory:
        """Encoder ``outputs [B, S, De]``, ``mask [B, S]`` -> what every step attends to
        (keys projected once here)."""
        if self.attention == "none":
            return {"mask": mask}
        return {"mask": mask, "values": outputs, "keys": self.attn.project_keys(outputs)}

    def step(self, carries: tuple[Carry, ...], xp: Array, memory: Memory):
        """One step.

        Args:
          carries: one carry per layer (``h [B, H]``, or ``(c, h)`` for an LSTM).
          xp: layer 0's projected input ``emb(y_{t-1}) @ W_e + b`` ``[B, G*H0]`` (for a cell
            that is not fused, ``emb(y_{t-1})`` ``[B, E]``).
          memory: from :meth:`memory`.

        Returns:
          ``(carries, (h_t [B, H_top], context [B, De] (0-wide without attention),
          weights [B, S]))``; weights are 0 on source padding (all 0 without attention).
        """
        mask = memory["mask"]
        if self.attention == "bahdanau":
            context, weights = self.attn(
                top_hidden(carries[-1]), memory["values"], mask=mask, precomputed_keys=memory["keys"]
            )
            xp = xp + self.context_in(context) if self.fused else jnp.concatenate([xp, context], -1)
        else:
            context = jnp.zeros((xp.shape[0], 0), xp.dtype)
            weights = jnp.zeros(mask.shape, jnp.float32)
        new, x = [], None
        for i, cell in enumerate(self.cells):
            if self.fused:
                carry, x = cell.step(carries[i], xp if i == 0 else cell.input_projection(x))
            else:
                carry, x = cell(carries[i], xp if i == 0 else x)
            new.append(carry)
        return tuple(new), (x, context, weights)

    def _features(self, h: Array, context: Array, deterministic: bool) -> Array:
        feat = jnp.concatenate([h, context], axis=-1) if self.attention == "bahdanau" else h
        return self.readout_dropout(feat, deterministic=deterministic)

    def logits(self, h: Array, context: Array, deterministic: bool = True) -> Array:
        """``h [..., H]``, ``context [..., De]`` -> ``[..., V]`` (float32)."""
        return self.readout(self._features(h, context, deterministic)).astype(jnp.float32)

    def nll(self, h: Array, context: Array, targets: Array, weights: Array, chunk: int,
            deterministic: bool = True) -> tuple[Array, Array]:
        """``h [N, H]``, ``context [N, De]``, ``targets [N]``, ``weights [N]`` ->
        ``(Σ weights·NLL, Σ weights·[argmax == target])`` through the fused read-out
        (:func:`seqjax.core.losses.linear_cross_entropy`, ``chunk`` rows at a time)."""
        feat = self._features(h, context, deterministic)
        if self.is_initializing():  # create the read-out's parameters
            self.readout(feat[:1])
        p = self.readout.variables["params"]
        return linear_cross_entropy(feat, p["kernel"], p["bias"], targets, weights, chunk=chunk,
                                    with_correct=True)


def _teacher_step(decoder: Decoder, carries, xp, memory):
    return decoder.step(carries, xp, memory)


class Seq2Seq(nn.Module):
    """Encoder-decoder; see the module docstring.

    Attributes:
      src_vocab, tgt_vocab: vocabulary sizes.
      rnn: the encoder (``seqjax.models.build.RecurrentSpec``; ``rnn.bidirectional``: outputs
        ``[B, S, 2H]``, carries bridged); the decoder has its cell and hidden sizes.
      cell, hidden, layers, bidirectional: shorthand for ``rnn=RecurrentSpec(cell, hidden
        (an int: ``layers`` times), bidirectional=..., dropout=dropout)``.
      embed: embedding size of source and target tokens (0: one-hot, as the Keras example).
      attention: "none" | "bahdanau".
      attention_units: A (0: the top hidden size).
      dropout: see the module docstring.
      head_chunk: teacher-forced loss read-out: -1 auto, 0 plain logits, N fused rows per
        chunk (as ``seqjax.models.language_model.LanguageModel``).
    """

    src_vocab: int
    tgt_vocab: int
    rnn: RecurrentSpec | None = None
    cell: Any = None
    hidden: int | Sequence[int] | None = None
    layers: int = 1
    embed: int = 128
    bidirectional: bool = False
    attention: str = "none"
    attention_units: int = 0
    dropout: float = 0.0
    head_chunk: int = -1

    @property
    def spec(self) -> RecurrentSpec:
        """The encoder's spec (``rnn`` or the shorthand)."""
        hidden = self.hidden
        if isinstance(hidden, int) or (hidden is None and self.layers > 1):
            hidden = (hidden or RecurrentSpec().hidden[0],) * self.layers
        return resolve_spec(self.rnn, self.cell, hidden, bidirectional=self.bidirectional,
                            dropout=self.dropout)

    def setup(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        spec = self.spec
        sizes = spec.hidden
        self.sizes = sizes
        self.src_embedding = Embedder(self.src_vocab, self.embed)
        self.embed_dropout = nn.Dropout(self.dropout)
        self.encoder = spec.stacked()
        if spec.bidirectional:
            # one Dense per carry leaf and layer: bridge_h_{i} for h (the last leaf), bridge_c_{i}
            # for an LSTM's c, bridge_{j}_{i} for other leaves
            leaves = carry_leaves(spec, sizes[0])
            names = ["c" if leaves == 2 else str(j) for j in range(leaves - 1)] + ["h"]
            self.bridges = [[nn.Dense(h, name=f"bridge_{n}_{i}") for n in names] for i, h in enumerate(sizes)]
        self.decoder = Decoder(
            vocab=self.tgt_vocab, rnn=spec, embed=self.embed, attention=self.attention,
            attention_units=self.attention_units or sizes[-1], dropout=self.dropout,
        )

    def _bridge(self, carries: tuple) -> tuple:
        if not self.spec.bidirectional:
            return carries
        out = []
        for dense, (fwd, bwd) in zip(self.bridges, carries):
            leaves = [d(jnp.concatenate([f, b], -1)) for d, f, b in
                      zip(dense, jax.tree.leaves(fwd), jax.tree.leaves(bwd))]
            leaves[-1] = jnp.tanh(leaves[-1])
            out.append(jax.tree.unflatten(jax.tree.structure(fwd), leaves))
        return tuple(out)

    def encode(self, src: Array, src_lengths: Array, deterministic: bool = True) -> tuple[Memory, tuple]:
        """``src [B, S]`` ids, ``src_lengths [B]`` -> ``(memory, decoder carries)``.

        ``memory["mask"]`` is ``[B, S]`` (True on real tokens); with attention it also holds
        ``values`` (encoder outputs ``[B, S, De]``) and ``keys`` (projected, ``[B, S, A]``).
        Carries: one per decoder layer.
        """
        x = self.embed_dropout(self.src_embedding(src), deterministic=deterministic)
        outputs, carries = self.encoder(x, src_lengths, deterministic=deterministic)
        mask = jnp.arange(src.shape[1])[None, :] < src_lengths[:, None]
        return self.decoder.memory(outputs, mask), self._bridge(carries)

    def __call__(self, src: Array, src_lengths: Array, tgt_in: Array, *, deterministic: bool = True,
                 targets: Array | None = None, weights: Array | None = None):
        """Teacher forcing.

        Args:
          src: ``[B, S]`` source ids (padding after ``src_lengths``).
          src_lengths: ``[B]``.
          tgt_in: ``[B, T]`` decoder inputs ``<sos> y_1 .. y_{T-1}`` (gold tokens).
          targets, weights: optional ``[B, T]`` gold outputs ``y_1 .. y_T`` and their
            weights (0 on padding).

        Returns:
          ``(logits [B, T, V] float32, attention [B, T, S])`` (attention all 0 without
          attention, and exactly 0 on source padding); with ``targets``, ``((nll_sum,
          correct_sum), attention)`` instead: float32 scalars ``Σ weights·−log p(y_t)`` and
          ``Σ weights·[argmax == y_t]``, computed as ``head_chunk`` says (no ``[B, T, V]``
          logits when fused).
        """
        memory, carries = self.encode(src, src_lengths, deterministic)
        emb = self.embed_dropout(self.decoder.embed_tokens(tgt_in), deterministic=deterministic)
        xp = self.decoder.project_embeddings(jnp.swapaxes(emb, 0, 1))  # [T, B, G*H0], one matmul
        scan = nn.scan(
            _teacher_step, variable_broadcast="params", split_rngs={"params": False},
            in_axes=(0, nn.broadcast),
        )
        _, (h, context, attn) = scan(self.decoder, carries, xp, memory)
        h, context, attn = jnp.swapaxes(h, 0, 1), jnp.swapaxes(context, 0, 1), jnp.swapaxes(attn, 0, 1)
        chunk = resolve_chunk(self.head_chunk, self.tgt_vocab)
        if targets is not None and chunk > 0:
            flat = lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])  # noqa: E731  [B, T, ...] -> [B*T, ...]
            nll = self.decoder.nll(flat(h), flat(context), flat(targets), flat(weights).astype(jnp.float32),
                                   chunk, deterministic)
            return nll, attn
        logits = self.decoder.logits(h, context, deterministic)
        if targets is None:
            return logits, attn
        per = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        correct = jnp.sum((jnp.argmax(logits, -1) == targets) * weights)
        return (jnp.sum(per * weights), correct), attn

    def decode_step(self, memory: Memory, carries: tuple, tokens: Array):
        """One decoding step: previous tokens ``[N]`` -> ``(logits [N, V], carries, attention [N, S])``.

        ``memory`` and ``carries`` as returned by :meth:`encode` (rows may be repeated per beam).
        """
        xp = self.decoder.embed_and_project(tokens)
        carries, (h, context, weights) = self.decoder.step(carries, xp, memory)
        return self.decoder.logits(h, context), carries, weights
