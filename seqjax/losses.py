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

Measured on the 2-core CPU dev box (``python experiments/_bench_readout.py``,
experiments/results/bench.md): read-out loss + gradients at PTB-small shapes (700 rows)
87.0 → 71.6 ms; the eval loss at 2,240 rows 132.7 → 73.6 ms.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

#: logits per chunk (rows x vocabulary) the CPU heuristic aims at: ~1.5 M floats = 6 MB,
#: which stays in this machine's cache (the measured sweet spot of 100-350 rows at V = 10k)
CHUNK_ELEMENTS = 1_500_000


def default_chunk(vocab_size: int) -> int:
    """Rows per chunk for a vocabulary of ``vocab_size``: ``CHUNK_ELEMENTS / V``, at least 8."""
    return max(8, CHUNK_ELEMENTS // max(vocab_size, 1))


def resolve_chunk(head_chunk: int, vocab_size: int) -> int:
    """A model's ``head_chunk`` setting -> rows per chunk, 0 meaning "materialise the logits".

    -1 (auto): :func:`default_chunk` on CPU, where the fused read-out measured 2x faster;
    0 on GPU/TPU, where the plain read-out is what was measured (experiments/results/bench.md).
    """
    if head_chunk < 0:
        return default_chunk(vocab_size) if jax.default_backend() == "cpu" else 0
    return int(head_chunk)


def linear_cross_entropy(x, kernel, bias, labels, weights, *, chunk: int, dtype=None, with_correct: bool = False):
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
    chunk = max(1, min(int(chunk), n))
    total, correct = _lce(x, kernel, bias, labels, weights.astype(jnp.float32), chunk, dtype, bool(with_correct))
    return (total, correct) if with_correct else total


def _chunks(x, labels, weights, chunk):
    n = x.shape[0]
    pad = -n % chunk
    if pad:
        x = jnp.pad(x, ((0, pad), (0, 0)))
        labels = jnp.pad(labels, (0, pad))
        weights = jnp.pad(weights, (0, pad))
    k = (n + pad) // chunk
    return x.reshape(k, chunk, x.shape[1]), labels.reshape(k, chunk), weights.reshape(k, chunk)


def _logits(xc, kernel, bias, dtype):
    if dtype is not None:
        xc, kernel = xc.astype(dtype), kernel.astype(dtype)
    return jnp.dot(xc, kernel, preferred_element_type=jnp.float32) + bias.astype(jnp.float32)


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

    def body(acc, inp):
        xc, lc, wc = inp
        logits = _logits(xc, kernel, bias, dtype)
        _, ce = _row_ce(logits, lc)
        return (acc[0] + jnp.sum(ce * wc), acc[1] + _correct(logits, lc, wc, with_correct)), None

    zero = jnp.zeros((), jnp.float32)
    return jax.lax.scan(body, (zero, zero), (xs, ls, ws))[0]


def _lce_fwd(x, kernel, bias, labels, weights, chunk, dtype, with_correct):
    n, v = x.shape[0], kernel.shape[1]
    xs, ls, ws = _chunks(x, labels, weights, chunk)
    mm = kernel if dtype is None else kernel.astype(dtype)

    def body(carry, inp):
        total, correct, dk, db = carry
        xc, lc, wc = inp
        logits = _logits(xc, kernel, bias, dtype)
        lse, ce = _row_ce(logits, lc)
        correct = correct + _correct(logits, lc, wc, with_correct)
        # d(Σ w·ce)/dlogits = w · (softmax − onehot)
        d = (jnp.exp(logits - lse[:, None]) - jax.nn.one_hot(lc, v, dtype=jnp.float32)) * wc[:, None]
        dm = d if dtype is None else d.astype(dtype)
        xm = xc if dtype is None else xc.astype(dtype)
        dx = jnp.dot(dm, mm.T, preferred_element_type=jnp.float32)
        dk = dk + jnp.dot(xm.T, dm, preferred_element_type=jnp.float32)
        return (total + jnp.sum(ce * wc), correct, dk, db + d.sum(0)), dx

    zero = jnp.zeros((), jnp.float32)
    (total, correct, dk, db), dx = jax.lax.scan(
        body, (zero, zero, jnp.zeros(kernel.shape, jnp.float32), jnp.zeros(v, jnp.float32)), (xs, ls, ws)
    )
    dx = dx.reshape(-1, x.shape[1])[:n]
    res = (dx.astype(x.dtype), dk.astype(kernel.dtype), db.astype(bias.dtype), labels, weights)
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
