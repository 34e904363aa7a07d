"""Softmax cross-entropy through a linear read-out, fused and chunked over rows.

A language model's step is dominated by its read-out: ``logits = x W + b`` over a large
vocabulary, the softmax cross-entropy, and in training the two matmuls of the backward
pass (``dx = dlogits Wᵀ``, ``dW = xᵀ dlogits``). Written plainly, XLA materialises the
``[N, V]`` logits (28 MB at PTB-small's N = 700 rows, V = 10,000) and its gradient, and
walks over them several times in main memory (bias add, max, exp-sum, softmax, the label
scatter, the bias reduction). :func:`linear_cross_entropy` computes the same numbers in
chunks of rows whose logits stay in cache, and in training computes the gradients in the
same pass as the loss (the loss is a weighted *sum*, so its gradient for a unit cotangent
is known in the forward pass; the backward pass only scales it), so the ``[N, V]`` arrays
never exist. Same FLOPs, same math; the summation order differs (float32 rounding).
``python benchmarks/readout.py`` times it against the plain read-out.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

#: logits per chunk (rows x vocabulary) the CPU heuristic aims at: ~3.5 M floats = 14 MB, a
#: chunk that stays in a core's cache hierarchy (350 rows at V = 10k)
CHUNK_ELEMENTS = 3_500_000


def default_chunk(vocab_size: int) -> int:
    """Rows per chunk for a vocabulary of ``vocab_size``: ``CHUNK_ELEMENTS / V``, at least 8."""
    return max(8, CHUNK_ELEMENTS // max(vocab_size, 1))


def resolve_chunk(head_chunk: int, vocab_size: int) -> int:
    """A model's ``head_chunk`` setting -> rows per chunk, 0 meaning "materialise the logits".

    -1 (auto): :func:`default_chunk` on CPU, where memory traffic over the logits dominates;
    0 on GPU/TPU, whose bandwidth makes the plain read-out the safe default.
    """
    if head_chunk < 0:
        return default_chunk(vocab_size) if jax.default_backend() == "cpu" else 0
    return int(head_chunk)


def even_chunk(n: int, chunk: int) -> int:
    """Rows per chunk for ``n`` rows and at most ``chunk`` rows per chunk, spread evenly over
    the same number of chunks so that the padding is less than one row per chunk (2,240 rows
    at 350: 7 chunks of 320, not 6 of 350 and a seventh of 140 padded to 350)."""
    chunk = max(1, min(int(chunk), n))
    k = -(-n // chunk)
    return -(-n // k)


def linear_cross_entropy(x, kernel, bias, labels, weights, *, chunk: int, dtype=None,
                         with_correct: bool = False):
    """``Σₙ weightsₙ · CE(softmax(xₙ W + b), labelsₙ)`` without materialising the logits.

    Args:
      x: ``[N, H]`` features (any float dtype).
      kernel: ``[H, V]`` read-out weights (for tied embeddings pass ``embedding.T``).
      bias: ``[V]`` or None.
      labels: ``[N]`` int targets in ``[0, V)``.
      weights: ``[N]`` float per-row weights (0 for padding).
      chunk: rows per chunk (``N`` need not be a multiple: the last chunk is padded with
        zero-weight rows).
      dtype: compute dtype of the matmuls (e.g. bfloat16); the softmax is always float32.
      with_correct: also return ``Σₙ weightsₙ · [argmax logitsₙ == labelsₙ]`` (accuracy
        numerator; not differentiated).

    Returns:
      The weighted sum, a float32 scalar (and the weighted correct count when
      ``with_correct``). Differentiable in ``x``, ``kernel`` and ``bias`` (reverse mode);
      ``labels`` and ``weights`` get zero cotangents.
    """
    if bias is None:
        bias = jnp.zeros(kernel.shape[1], jnp.float32)
    n = x.shape[0]
    if labels.shape != (n,) or weights.shape != (n,) or x.ndim != 2:
        raise ValueError(
            f"linear_cross_entropy: want x [N, H], labels [N], weights [N]; got x {x.shape}, "
            f"labels {labels.shape}, weights {weights.shape}"
        )
    chunk = even_chunk(n, chunk)
    total, correct = _lce(x, kernel, bias, labels, weights.astype(jnp.float32), chunk, dtype,
                          bool(with_correct))
    return (total, correct) if with_correct else total


def _chunks(x, labels, weights, chunk):
    """``x [N, H]`` -> ``[k, chunk, H + 1]`` with a column of ones appended (the bias row of
    the augmented kernel, see :func:`_augment`), labels and weights -> ``[k, chunk]``; padding
    rows have weight 0."""
    n = x.shape[0]
    x = jnp.concatenate([x, jnp.ones((n, 1), x.dtype)], axis=1)
    pad = -n % chunk
    if pad:
        x = jnp.pad(x, ((0, pad), (0, 0)))
        labels = jnp.pad(labels, (0, pad))
        weights = jnp.pad(weights, (0, pad))
    k = (n + pad) // chunk
    return x.reshape(k, chunk, x.shape[1]), labels.reshape(k, chunk), weights.reshape(k, chunk)


def _augment(kernel, bias, dtype):
    """``[H + 1, V]``: the kernel with the bias as its last row, so ``[x, 1] @ it = x W + b``
    in one matmul (no separate pass over the logits for the bias, and in training the bias
    gradient is the last row of the kernel gradient instead of a reduction over rows)."""
    aug = jnp.concatenate([kernel.astype(jnp.float32), bias.astype(jnp.float32)[None, :]], axis=0)
    return aug if dtype is None else aug.astype(dtype)


def _logits(xc, aug, dtype):
    if dtype is not None:
        xc = xc.astype(dtype)
    return jnp.dot(xc, aug, preferred_element_type=jnp.float32)


def _row_ce(logits, labels):
    lse = jax.nn.logsumexp(logits, axis=-1)
    return lse, lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def _correct(logits, labels, weights, with_correct):
    if not with_correct:
        return jnp.zeros((), jnp.float32)
    return jnp.sum((jnp.argmax(logits, axis=-1) == labels) * weights)


@partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _lce(x, kernel, bias, labels, weights, chunk, dtype, with_correct):
    xs, ls, ws = _chunks(x, labels, weights, chunk)
    aug = _augment(kernel, bias, dtype)

    def body(acc, inp):
        xc, lc, wc = inp
        logits = _logits(xc, aug, dtype)
        _, ce = _row_ce(logits, lc)
        return (acc[0] + jnp.sum(ce * wc), acc[1] + _correct(logits, lc, wc, with_correct)), None

    zero = jnp.zeros((), jnp.float32)
    return jax.lax.scan(body, (zero, zero), (xs, ls, ws))[0]


def _lce_fwd(x, kernel, bias, labels, weights, chunk, dtype, with_correct):
    n, (h, v) = x.shape[0], kernel.shape
    xs, ls, ws = _chunks(x, labels, weights, chunk)
    aug = _augment(kernel, bias, dtype)
    mm = kernel if dtype is None else kernel.astype(dtype)

    def chunk_grads(xc, lc, wc):
        """Loss, correct count, ``dx [chunk, H]`` and ``d[W; b] [H + 1, V]`` of one chunk."""
        logits = _logits(xc, aug, dtype)
        lse, ce = _row_ce(logits, lc)
        # d(Σ w·ce)/dlogits = w · (softmax − onehot)
        d = (jnp.exp(logits - lse[:, None]) - jax.nn.one_hot(lc, v, dtype=jnp.float32)) * wc[:, None]
        dm = d if dtype is None else d.astype(dtype)
        xm = xc if dtype is None else xc.astype(dtype)
        dx = jnp.dot(dm, mm.T, preferred_element_type=jnp.float32)
        daug = jnp.dot(xm.T, dm, preferred_element_type=jnp.float32)
        return jnp.sum(ce * wc), _correct(logits, lc, wc, with_correct), dx, daug

    def body(carry, inp):
        total, correct, daug = carry
        t, c, dx, dc = chunk_grads(*inp)
        return (total + t, correct + c, daug + dc), dx

    # the first chunk outside the loop: its gradient starts the sum (no zero-filled [H+1, V])
    total, correct, dx0, daug = chunk_grads(xs[0], ls[0], ws[0])
    (total, correct, daug), dx = jax.lax.scan(body, (total, correct, daug), (xs[1:], ls[1:], ws[1:]))
    dx = jnp.concatenate([dx0, dx.reshape(-1, h)])[:n]
    res = (dx.astype(x.dtype), daug[:h].astype(kernel.dtype), daug[h].astype(bias.dtype), labels, weights)
    return (total, correct), res


def _lce_bwd(chunk, dtype, with_correct, res, cotangents):
    g, _ = cotangents  # the correct count is a metric: no gradient
    dx, dk, db, labels, weights = res
    return (
        (g * dx).astype(dx.dtype),
        (g * dk).astype(dk.dtype),
        (g * db).astype(db.dtype),
        np.zeros(labels.shape, jax.dtypes.float0),
        jnp.zeros_like(weights),
    )


_lce.defvjp(_lce_fwd, _lce_bwd)
