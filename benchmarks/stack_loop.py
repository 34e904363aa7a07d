"""Why a stack's layers run faster in one time loop on CPU: loop timings, interleaved in one
process (median ms over rounds), at PTB-small's LSTM shapes (T 35, batch 20, hidden 200).

    python benchmarks/stack_loop.py [--rounds 30]

- ``chains``: one LSTM loop; two independent LSTM chains in one loop; the two as two
  loops one after the other (forward only, written out with ``lax.scan``);
- ``stack``: a 2-layer stack with seqjax's own kernels, layer by layer
  (:func:`seqjax.core.recurrence.recurrence` per layer) against one loop
  (:func:`seqjax.core.recurrence.stacked_recurrence`), forward alone and forward + gradients.

Results: the step analyses in the history of experiments/results/bench.md (git log -p).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import interleaved_ms, print_table  # benchmarks/timing.py (same directory)

from seqjax.core.cells import make_cell
from seqjax.core.recurrence import recurrence, stacked_recurrence

T, B, H = 35, 20, 200


def _lstm(h, c, z):
    i, f, g, o = jnp.split(z, 4, -1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def chains():
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    w1, w2 = (jax.random.normal(k[i], (H, 4 * H)) * 0.05 for i in range(2))
    xs = jax.random.normal(k[2], (T, B, 4 * H))
    zero = jnp.zeros((B, H))

    def one(w, xs):
        def body(carry, x):
            h, c = _lstm(*carry, x + carry[0] @ w)
            return (h, c), h

        return jax.lax.scan(body, (zero, zero), xs)[1]

    def two_in_one(w1, w2, xs):
        def body(carry, x):
            h, c, h2, c2 = carry
            h, c = _lstm(h, c, x + h @ w1)
            h2, c2 = _lstm(h2, c2, x + h2 @ w2)
            return (h, c, h2, c2), h2

        return jax.lax.scan(body, (zero,) * 4, xs)[1]

    def two_loops(w1, w2, xs):
        return one(w2, xs + jnp.tile(one(w1, xs), (1, 1, 4)))

    return {
        "one loop": (jax.jit(one), (w1, xs)),
        "two chains in one loop": (jax.jit(two_in_one), (w1, w2, xs)),
        "two loops in a row": (jax.jit(two_loops), (w1, w2, xs)),
    }


def stack():
    cells = [make_cell("lstm", H) for _ in range(2)]
    k = jax.random.split(jax.random.PRNGKey(1), 7)
    p = {
        "hk": [jax.random.normal(k[i], (H, 4 * H)) * 0.07 for i in range(2)],
        "hb": [jax.random.normal(k[2 + i], (4 * H,)) * 0.1 for i in range(2)],
        "ik": jax.random.normal(k[4], (H, 4 * H)) * 0.07,
        "ib": jnp.zeros(4 * H),
    }
    xp = jax.random.normal(k[5], (T, B, 4 * H))
    g = jax.random.normal(k[6], (T, B, H))
    zero = (jnp.zeros((B, H)),) * 2

    def layer_by_layer(p, xp):
        _, y = recurrence(cells[0].gates, cells[0].recurrent_input, p["hk"][0], p["hb"][0], xp, zero)
        x1 = y @ p["ik"] + p["ib"]
        return recurrence(cells[1].gates, cells[1].recurrent_input, p["hk"][1], p["hb"][1], x1, zero)[1]

    def one_loop(p, xp):
        return stacked_recurrence(
            tuple(c.gates for c in cells),
            tuple(c.recurrent_input for c in cells),
            p["hk"],
            p["hb"],
            (p["ik"],),
            (p["ib"],),
            xp,
            (zero, zero),
        )[1]

    np.testing.assert_allclose(layer_by_layer(p, xp), one_loop(p, xp), rtol=1e-5, atol=1e-6)
    out = {}
    for name, f in (("layer by layer", layer_by_layer), ("one loop", one_loop)):
        out[f"{name}, forward"] = (jax.jit(f), (p, xp))
        grad = jax.jit(jax.grad(lambda p, xp, f=f: jnp.sum(f(p, xp) * g), argnums=(0, 1)))
        out[f"{name}, forward + gradients"] = (grad, (p, xp))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    for title, cases in (("chains", chains()), ("stack", stack())):
        print_table(f"{title}: T {T}, batch {B}, hidden {H}", interleaved_ms(cases, args.rounds), args.rounds)


if __name__ == "__main__":
    main()
