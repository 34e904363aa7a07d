"""Batched, jit-compilable greedy and beam-search decoding with ``lax.while_loop``.

A decoder is described by a pure step function::

    step_fn(memory, state, tokens [N]) -> (logits [N, V], new_state, attention [N, S])

where ``memory`` (e.g. encoder outputs, projected keys, source mask) and ``state`` (the
recurrent carries) are pytrees with a leading batch axis ``N``. ``Seq2Seq.decode_step``
is one (see :func:`seq2seq_step_fn`). The loops here run one step per iteration inside a
single ``lax.while_loop`` (no Python loop per token, so a batch of any content decodes
with one compiled program) and leave it as soon as every row is finished.

Both functions are pure and traceable: wrap the caller in ``jax.jit`` (with ``beam``,
``max_len``... static). Buffers are ``[.., max_len]`` so shapes never depend on data.

Scores are sums of token log-probabilities (``<eos>`` included). Beam search ranks
finished hypotheses by ``score / lp(length)`` where ``length`` counts the generated tokens
including ``<eos>`` and ``lp`` is

* ``"gnmt"`` (Wu et al. 2016): ``((5 + length) / 6) ** alpha``;
* ``"simple"``: ``length ** alpha``;
* ``"none"``: 1.

Beam search keeps K alive and K finished hypotheses per row (as tensor2tensor's
``beam_search``): each step takes the top 2K extensions of the alive beams; those ending in
``<eos>`` compete for the finished set, the others for the alive set. A row stops when its
best finished score cannot be beaten by any alive beam: alive log-probs only fall and
``lp`` is at most ``lp(max_len)`` (``alpha >= 0``), so ``alive_best / lp(max_len)`` bounds every
continuation. With ``beam=1`` and ``alpha=0`` the result equals :func:`greedy`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
StepFn = Callable[[Any, Any, Array], tuple[Array, Any, Array]]

PENALTIES = ("gnmt", "simple", "none")
NEG_INF = -jnp.inf


class Decoded(NamedTuple):
    """Decoder output. With beam search every field has an extra beam axis ``K`` after the
    batch axis, hypotheses sorted best first.

    Attributes:
      tokens: ``int32 [B, (K,) max_len]``: generated ids, ``<eos>`` included, ``pad_id`` after.
      lengths: ``int32 [B, (K)]``: generated tokens, ``<eos>`` included (``max_len`` if none).
      scores: ``float32 [B, (K)]``: summed log-probs (greedy) or length-penalised scores (beam).
      attention: ``float32 [B, (K,) max_len, S]``: the attention weights of each step (0 after
        the end).
      steps: ``int32 []``: loop iterations run (``< max_len`` when every row ended early).
    """

    tokens: Array
    lengths: Array
    scores: Array
    attention: Array
    steps: Array


def length_penalty(length: Array, alpha: float, kind: str = "gnmt") -> Array:
    """``lp(length)`` (see the module docstring); ``length`` counts ``<eos>``."""
    length = jnp.asarray(length, jnp.float32)
    if kind == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    if kind == "simple":
        return length**alpha
    if kind == "none":
        return jnp.ones_like(length)
    raise ValueError(f"length penalty must be one of {PENALTIES}, got {kind!r}")


def _batch_size(tree) -> int:
    return jax.tree.leaves(tree)[0].shape[0]


def _vocab_and_source_len(step_fn: StepFn, memory, state, n: int):
    """(V, S) from an abstract evaluation of one step (no compute)."""
    logits, _, attn = jax.eval_shape(step_fn, memory, state, jnp.zeros((n,), jnp.int32))
    return logits.shape[-1], attn.shape[-1]


# ----------------------------------------------------------------------------- greedy


def greedy(step_fn: StepFn, memory, state, *, sos_id: int, eos_id: int, max_len: int,
           pad_id: int = 0, active: Array | None = None) -> Decoded:
    """Greedy decoding of a batch: ``argmax`` at every step until ``<eos>`` or ``max_len``.

    Args:
      step_fn: see the module docstring.
      memory, state: pytrees with leading axis B.
      sos_id, eos_id, pad_id: special ids; ``max_len``: most tokens generated.
      active: ``[B]`` bool, False for filler rows of a padded batch: they count as finished
        from the start (so they never hold up the early exit) and output nothing.

    Returns:
      :class:`Decoded` with ``tokens [B, max_len]``, ``lengths [B]``, ``scores [B]`` (sum of
      log-probs), ``attention [B, max_len, S]``.
    """
    b = _batch_size(state)
    _, s = _vocab_and_source_len(step_fn, memory, state, b)
    init = dict(
        t=jnp.zeros((), jnp.int32),
        prev=jnp.full((b,), sos_id, jnp.int32),
        state=state,
        done=jnp.zeros((b,), bool) if active is None else ~jnp.asarray(active, bool),
        tokens=jnp.full((b, max_len), pad_id, jnp.int32),
        lengths=jnp.zeros((b,), jnp.int32),
        scores=jnp.zeros((b,), jnp.float32),
        attention=jnp.zeros((b, max_len, s), jnp.float32),
    )

    def cond(c):
        return (c["t"] < max_len) & ~jnp.all(c["done"])

    def body(c):
        t, done = c["t"], c["done"]
        logits, new_state, attn = step_fn(memory, c["state"], c["prev"])
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nxt = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        nxt_logp = jnp.take_along_axis(logp, nxt[:, None], axis=-1)[:, 0]
        tok = jnp.where(done, pad_id, nxt)
        return dict(
            t=t + 1,
            prev=tok,
            state=new_state,
            done=done | (nxt == eos_id),
            tokens=c["tokens"].at[:, t].set(tok),
            lengths=c["lengths"] + (~done).astype(jnp.int32),
            scores=c["scores"] + jnp.where(done, 0.0, nxt_logp),
            attention=c["attention"].at[:, t].set(jnp.where(done[:, None], 0.0, attn.astype(jnp.float32))),
        )

    out = jax.lax.while_loop(cond, body, init)
    return Decoded(out["tokens"], out["lengths"], out["scores"], out["attention"], out["t"])


# ----------------------------------------------------------------------------- beam search


def tile_beams(tree, beam: int):
    """Repeat every row ``beam`` times: leaves ``[B, ...]`` -> ``[B*beam, ...]`` (row-major)."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam, axis=0), tree)


def _gather(x: Array, idx: Array) -> Array:
    """``x [B, M, ...]``, ``idx [B, K]`` -> ``x[b, idx[b, k], ...]`` ``[B, K, ...]``."""
    return jax.vmap(lambda row, i: row[i])(x, idx)


class BeamState(NamedTuple):
    """The ``while_loop`` carry of :func:`beam_search` (exposed for the Python-loop
    reference in ``benchmarks/translate_decode_speed.py``)."""

    t: Array  # int32 []
    state: Any  # decoder state, leaves [B*K, ...]
    alive_tokens: Array  # int32 [B, K, max_len]
    alive_logp: Array  # float32 [B, K]
    alive_attn: Array  # float32 [B, K, max_len, S]
    fin_tokens: Array  # int32 [B, K, max_len]
    fin_scores: Array  # float32 [B, K] (length-penalised; -inf: empty slot)
    fin_lengths: Array  # int32 [B, K]
    fin_attn: Array  # float32 [B, K, max_len, S]


def beam_init(step_fn: StepFn, memory, state, *, beam: int, max_len: int, pad_id: int = 0):
    """Tiled memory and the initial :class:`BeamState`."""
    b = _batch_size(state)
    memory, state = tile_beams(memory, beam), tile_beams(state, beam)
    _, s = _vocab_and_source_len(step_fn, memory, state, b * beam)
    seq = jnp.full((b, beam, max_len), pad_id, jnp.int32)
    attn = jnp.zeros((b, beam, max_len, s), jnp.float32)
    # Only beam 0 is alive at first, so the first step's top-K are K different tokens.
    alive_logp = jnp.tile(jnp.array([0.0] + [NEG_INF] * (beam - 1), jnp.float32), (b, 1))
    return memory, BeamState(
        t=jnp.zeros((), jnp.int32), state=state, alive_tokens=seq, alive_logp=alive_logp,
        alive_attn=attn, fin_tokens=seq, fin_scores=jnp.full((b, beam), NEG_INF, jnp.float32),
        fin_lengths=jnp.zeros((b, beam), jnp.int32), fin_attn=attn,
    )


def beam_done(c: BeamState, *, max_len: int, alpha: float, penalty: str) -> Array:
    """``[B]`` bool: no alive hypothesis can beat the row's best finished one."""
    bound = c.alive_logp[:, 0] / length_penalty(max_len, alpha, penalty)
    return c.fin_scores[:, 0] >= bound


def beam_step(step_fn: StepFn, memory, c: BeamState, *, sos_id: int, eos_id: int, max_len: int,
              alpha: float, penalty: str) -> BeamState:
    """One step of beam search (the ``while_loop`` body)."""
    b, k = c.alive_logp.shape
    t = c.t
    prev = jnp.where(t == 0, sos_id, c.alive_tokens[:, :, jnp.maximum(t - 1, 0)])
    logits, new_state, attn = step_fn(memory, c.state, prev.reshape(b * k))
    v = logits.shape[-1]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, k, v)
    cand = (c.alive_logp[:, :, None] + logp).reshape(b, k * v)
    top_logp, top_idx = jax.lax.top_k(cand, 2 * k)  # [B, 2K]
    parent, tok = top_idx // v, (top_idx % v).astype(jnp.int32)
    seq = _gather(c.alive_tokens, parent).at[:, :, t].set(tok)  # [B, 2K, max_len]
    step_attn = _gather(attn.astype(jnp.float32).reshape(b, k, -1), parent)  # [B, 2K, S]
    seq_attn = _gather(c.alive_attn, parent).at[:, :, t].set(step_attn)
    is_eos = tok == eos_id

    # Alive: the best K extensions that did not end.
    alive_cand = jnp.where(is_eos, NEG_INF, top_logp)
    alive_logp, ai = jax.lax.top_k(alive_cand, k)
    flat_parent = (jnp.arange(b)[:, None] * k + _gather(parent, ai)).reshape(b * k)
    state = jax.tree.map(lambda x: x[flat_parent], new_state)

    # Finished: the best K of the old finished and the extensions that ended now.
    new_scores = jnp.where(is_eos, top_logp / length_penalty(t + 1, alpha, penalty), NEG_INF)
    all_scores = jnp.concatenate([c.fin_scores, new_scores], axis=1)  # [B, 3K]
    fin_scores, fi = jax.lax.top_k(all_scores, k)
    fin_tokens = _gather(jnp.concatenate([c.fin_tokens, seq], 1), fi)
    fin_attn = _gather(jnp.concatenate([c.fin_attn, seq_attn], 1), fi)
    fin_lengths = _gather(jnp.concatenate([c.fin_lengths, jnp.full((b, 2 * k), t + 1, jnp.int32)], 1), fi)
    return BeamState(
        t=t + 1, state=state, alive_tokens=_gather(seq, ai), alive_logp=alive_logp,
        alive_attn=_gather(seq_attn, ai), fin_tokens=fin_tokens, fin_scores=fin_scores,
        fin_lengths=fin_lengths, fin_attn=fin_attn,
    )


def beam_finalize(c: BeamState, *, max_len: int, alpha: float, penalty: str) -> Decoded:
    """Finished hypotheses; a row with none falls back to its alive ones (cut at max_len)."""
    none = c.fin_scores[:, :1] == NEG_INF  # [B, 1]
    alive_scores = c.alive_logp / length_penalty(max_len, alpha, penalty)
    pick = lambda f, a: jnp.where(none.reshape(none.shape + (1,) * (f.ndim - 2)), a, f)
    return Decoded(
        tokens=pick(c.fin_tokens, c.alive_tokens),
        lengths=pick(c.fin_lengths, jnp.full_like(c.fin_lengths, max_len)),
        scores=pick(c.fin_scores, alive_scores),
        attention=pick(c.fin_attn, c.alive_attn),
        steps=c.t,
    )


def beam_search(step_fn: StepFn, memory, state, *, beam: int, sos_id: int, eos_id: int,
                max_len: int, alpha: float = 0.6, penalty: str = "gnmt", pad_id: int = 0,
                active: Array | None = None) -> Decoded:
    """Beam search over a batch, in one ``lax.while_loop``.

    Args:
      step_fn: see the module docstring (called on ``B*beam`` rows).
      memory, state: pytrees with leading axis B (tiled to ``B*beam`` here).
      beam: K; needs ``K * 2 <= V``.
      alpha, penalty: length penalty (module docstring); ``alpha >= 0``.
      max_len: most tokens generated.
      active: ``[B]`` bool, False for filler rows: they do not hold up the early exit (their
        output is meaningless).

    Returns:
      :class:`Decoded` with a beam axis: ``tokens [B, K, max_len]``, ``scores [B, K]``
      (penalised), ``lengths [B, K]``, ``attention [B, K, max_len, S]``, best first.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"length penalty must be one of {PENALTIES}, got {penalty!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0 (the early-exit bound needs it), got {alpha}")
    memory, init = beam_init(step_fn, memory, state, beam=beam, max_len=max_len, pad_id=pad_id)
    kw = dict(max_len=max_len, alpha=alpha, penalty=penalty)

    idle = jnp.zeros((_batch_size(state),), bool) if active is None else ~jnp.asarray(active, bool)

    def cond(c):
        return (c.t < max_len) & ~jnp.all(beam_done(c, **kw) | idle)

    def body(c):
        return beam_step(step_fn, memory, c, sos_id=sos_id, eos_id=eos_id, **kw)

    return beam_finalize(jax.lax.while_loop(cond, body, init), **kw)


def seq2seq_step_fn(model, params) -> StepFn:
    """``Seq2Seq.decode_step`` of ``params`` as a :data:`StepFn`."""

    def step(memory, state, tokens):
        return model.apply({"params": params}, memory, state, tokens, method=type(model).decode_step)

    return step
