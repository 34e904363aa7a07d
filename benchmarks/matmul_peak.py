"""Matmul throughput (GFLOP/s) at the shapes of a PTB-small step, JAX and (if installed) torch.

    python benchmarks/matmul_peak.py [--torch]

The FLOP roof of experiments/results/bench.md: a step cannot run faster than its FLOPs at
these rates. Median of 30 calls per shape, in one process.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = [
    ((150, 200), (200, 10000), "read-out chunk x W"),
    ((150, 10000), (10000, 200), "read-out chunk dlogits Wᵀ"),
    ((200, 150), (150, 10000), "read-out chunk xᵀ dlogits"),
    ((700, 200), (200, 10000), "read-out, all 700 rows"),
    ((700, 200), (200, 800), "LSTM input projection"),
    ((20, 200), (200, 800), "LSTM recurrent step h W_hh"),
]


def median_s(fn, *args, n=30):
    fn(*args)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch", action="store_true", help="also time torch's matmul (CPU)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    dot = jax.jit(jnp.dot)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}\n")
    print("| shape | GFLOP | jax ms | jax GFLOP/s |" + (" torch ms | torch GFLOP/s |" if args.torch else ""))
    print("| --- | ---: | ---: | ---: |" + (" ---: | ---: |" if args.torch else ""))
    for a, b, name in SHAPES:
        x, y = rng.standard_normal(a, dtype=np.float32), rng.standard_normal(b, dtype=np.float32)
        flops = 2 * a[0] * a[1] * b[1]
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        tj = median_s(lambda p, q: dot(p, q).block_until_ready(), jx, jy)
        row = f"| {name} {a}x{b} | {flops / 1e9:.3f} | {1e3 * tj:.3f} | {flops / tj / 1e9:.0f} |"
        if args.torch:
            import torch

            tt = median_s(lambda p, q: p @ q, torch.from_numpy(x), torch.from_numpy(y))
            row += f" {1e3 * tt:.3f} | {flops / tt / 1e9:.0f} |"
        print(row)


if __name__ == "__main__":
    main()
