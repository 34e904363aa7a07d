"""minGRU layer: parallel-in-time (log-space) scan vs the sequential scan, side by side.

    python benchmarks/parallel_scan.py [--batch 16] [--hidden 256] [--lengths 64,512,4096] [--rounds 5]

For each T: compile time of the train step (forward + backward of a ``Recurrent(MinGRUCell)``
layer, ``jax.jit``) and its median step time over interleaved rounds (benchmarks/timing.py),
for ``parallel_scan="on"`` and ``"off"``. Prints a markdown table and the ratio.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from timing import interleaved_ms  # benchmarks/timing.py (same directory)

from seqjax.core.layers import Recurrent
from seqjax.core.mincells import MinGRUCell


def step_fn(layer):
    def loss(params, x):
        out, _ = layer.apply(params, x)
        return jnp.mean(out ** 2)

    return jax.jit(jax.value_and_grad(loss))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lengths", default="64,512,4096")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"device: {jax.devices()[0]}; B {args.batch}, H = in = {args.hidden}")
    print("\n| T | compile parallel (s) | compile sequential (s) | step parallel (ms) | step sequential (ms) "
          "| parallel / sequential |\n| ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in (int(v) for v in args.lengths.split(",")):
        x = jax.random.normal(jax.random.key(0), (args.batch, t, args.hidden))
        cases, compile_s = {}, {}
        for mode in ("on", "off"):
            layer = Recurrent(MinGRUCell(args.hidden), parallel_scan=mode)
            params = layer.init(jax.random.key(1), x[:, :2])
            fn = step_fn(layer)
            start = time.perf_counter()
            compiled = fn.lower(params, x).compile()
            compile_s[mode] = time.perf_counter() - start
            cases[mode] = (compiled, (params, x))
        ms = interleaved_ms(cases, args.rounds)
        print(f"| {t} | {compile_s['on']:.2f} | {compile_s['off']:.2f} | {ms['on']:.2f} | {ms['off']:.2f} "
              f"| {ms['on'] / ms['off']:.2f} |")


if __name__ == "__main__":
    main()
