"""Probes of the fused read-out's inner loop (one chunk of rows), interleaved in one process
(median ms over rounds), at PTB-small shapes.

    python benchmarks/readout_probes.py [--rounds 20]

- ``inner dim``: the three products of a chunk (``[350, K] x [K, 10000]``, ``d Wᵀ``,
  ``xᵀ d``) in one jitted function for K = 200, 201 (the bias row of :mod:`seqjax.core.losses`'
  augmented kernel), 208; and as three calls, one after the other (XLA:CPU runs the
  products of one function side by side: they do not depend on each other);
- ``chunk``: loss and both gradient products of one 350-row chunk as
  :mod:`seqjax.core.losses` computes them ("current": ``exp`` in the log-sum-exp and again in
  the softmax gradient), with the ``exp`` computed once and kept, and with the weight
  gradient's ``xᵀ`` made an explicit transposed copy (XLA then gives that product to
  YNNPACK instead of Eigen).

Results: the step analyses in the history of experiments/results/bench.md (git log -p).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import interleaved_ms, print_table  # benchmarks/timing.py (same directory)

N, H, V = 350, 200, 10_000


def inner_dim_cases():
    key = jax.random.PRNGKey(0)
    cases = {}
    for k in (200, 201, 208):
        a, w, d = (
            jax.random.normal(key, (N, k)),
            jax.random.normal(key, (k, V)),
            jax.random.normal(key, (N, V)),
        )

        def products(a, w, d):
            return a @ w, d @ w.T, a.T @ d

        cases[f"K = {k}: the three products"] = (jax.jit(products), (a, w, d))
    singles = [
        jax.jit(lambda a, w, d: a @ w),
        jax.jit(lambda a, w, d: d @ w.T),
        jax.jit(lambda a, w, d: a.T @ d),
    ]

    def one_at_a_time(a, w, d):
        return [jax.block_until_ready(f(a, w, d)) for f in singles]

    cases["K = 201: the three products, one call each in turn"] = (one_at_a_time, (a, w, d))
    return cases


def chunk_cases():
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jnp.concatenate([jax.random.normal(k[0], (N, H)), jnp.ones((N, 1))], axis=1)
    aug = jax.random.uniform(k[1], (H + 1, V), minval=-0.1, maxval=0.1)
    labels, w = jax.random.randint(k[2], (N,), 0, V), jnp.ones(N)

    def current(x, aug, labels, w):
        logits = x @ aug
        lse = jax.nn.logsumexp(logits, axis=-1)
        ce = lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        d = (jnp.exp(logits - lse[:, None]) - jax.nn.one_hot(labels, V)) * w[:, None]
        return jnp.sum(ce * w), d @ aug[:H].T, x.T @ d

    def exp_once(x, aug, labels, w):
        logits = x @ aug
        m = jnp.max(logits, axis=-1, keepdims=True)
        e = jnp.exp(logits - m)
        s = jnp.sum(e, axis=-1)
        ce = m[:, 0] + jnp.log(s) - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        d = e * (w / s)[:, None] - jax.nn.one_hot(labels, V) * w[:, None]
        return jnp.sum(ce * w), d @ aug[:H].T, x.T @ d

    def transposed_x(x, aug, labels, w):
        logits = x @ aug
        lse = jax.nn.logsumexp(logits, axis=-1)
        ce = lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        d = (jnp.exp(logits - lse[:, None]) - jax.nn.one_hot(labels, V)) * w[:, None]
        return jnp.sum(ce * w), d @ aug[:H].T, jax.lax.optimization_barrier(x.T) @ d

    args = (x, aug, labels, w)
    ref = current(*args)
    cases = {}
    for name, f in (("current", current), ("exp once", exp_once), ("transposed x for dW", transposed_x)):
        for a, b in zip(f(*args), ref):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        cases[f"chunk: {name}"] = (jax.jit(f), args)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    for title, cases in (("inner dim", inner_dim_cases()), ("chunk", chunk_cases())):
        print_table(title, interleaved_ms(cases, args.rounds), args.rounds)


if __name__ == "__main__":
    main()
