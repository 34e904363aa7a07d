"""Micro-benchmark of the LM read-out: plain (materialised logits + optax cross-entropy) vs
the fused, chunked :func:`seqjax.core.losses.linear_cross_entropy`, at PTB-small shapes.

    python benchmarks/readout.py [--rounds 15] [--chunks 50,150,350,700]
    git show 8ded8c0:seqjax/core/losses.py > /tmp/old_losses.py
    python benchmarks/readout.py --chunks 150 --baseline "8ded8c0=/tmp/old_losses.py"

Times, in one process and interleaved round by round (median ms over rounds):

- ``train``: loss and gradients w.r.t. ``x [700, 200]``, ``W [200, 10000]``, ``b`` (one
  PTB-small train step's read-out: batch 20 x BPTT 35 rows);
- ``eval``: the loss alone at 2,240 rows (eval batch 64 x 35).

Also checks that every variant gives the plain loss (rtol 1e-5) and gradients (rtol 1e-3).
Results: experiments/results/bench.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.core.losses import linear_cross_entropy

H, V = 200, 10_000


def problem(n: int, seed: int = 0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(k[0], (n, H))
    w = jax.random.uniform(k[1], (H, V), minval=-0.1, maxval=0.1)
    y = jax.random.randint(k[2], (n,), 0, V)
    return x, w, jnp.zeros(V), y, jnp.ones(n)


def plain(x, w, b, y, wt):
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y) * wt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--chunks", default="50,150,350,700")
    ap.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="another losses.py (e.g. an older commit's) whose fused read-out runs as a contestant",
    )
    args = ap.parse_args()
    others = {}
    for spec in args.baseline:
        name, path = spec.split("=", 1)
        module = {}
        exec(compile(open(path).read(), path, "exec"), module)  # noqa: S102 — a local file the user names
        others[name] = module["linear_cross_entropy"]
    chunks = [int(c) for c in args.chunks.split(",")]

    cases = {}
    for mode, n in (("train", 700), ("eval", 2240)):
        x, w, b, y, wt = problem(n)
        variants = {"plain": lambda x, w, b, y=y, wt=wt: plain(x, w, b, y, wt)}
        for c in chunks:
            variants[f"fused chunk={c}"] = lambda x, w, b, c=c, y=y, wt=wt: linear_cross_entropy(
                x, w, b, y, wt, chunk=c
            )
            for other, fn in others.items():
                variants[f"{other} chunk={c}"] = lambda x, w, b, c=c, y=y, wt=wt, fn=fn: fn(
                    x, w, b, y, wt, chunk=c
                )
        want = None
        for name, f in variants.items():
            fn = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)) if mode == "train" else f)
            out = jax.block_until_ready(fn(x, w, b))
            if want is None:
                want = out
            else:  # same numbers as the plain read-out
                for got, ref in zip(jax.tree.leaves(out), jax.tree.leaves(want)):
                    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-6)
            cases[(mode, n, name)] = (fn, (x, w, b))

    times = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, (fn, a) in cases.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*a))
            times[k].append(time.perf_counter() - t0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, median of {args.rounds} interleaved rounds\n")
    print("| step | rows | read-out | ms | × plain |\n| --- | ---: | --- | ---: | ---: |")
    for (mode, n, name), ts in times.items():
        base = statistics.median(times[(mode, n, "plain")])
        med = statistics.median(ts)
        what = "loss + grads" if mode == "train" else "loss"
        print(f"| {mode} ({what}) | {n} | {name} | {1e3 * med:.1f} | {base / med:.2f} |")


if __name__ == "__main__":
    main()
