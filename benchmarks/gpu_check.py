"""GPU correctness of the paths that only a GPU takes: the cuDNN LSTM kernel
(``model.backend=cudnn``, ``jax.experimental.rnn``) against the ``nn.scan`` cell, and the
bfloat16 model against float32. One JSON line per check; exit 1 if any check fails.

    python benchmarks/gpu_check.py            # on a GPU machine (on CPU the cuDNN path is absent:
                                               # every check runs the scan twice and must pass)

Checks (float32 at ``jax.default_matmul_precision("highest")``, so TF32 does not blur them):

1. ``Stacked("lstm", 2 layers, backend="cudnn")`` vs the scan, on [8, 50, 32] inputs with
   ragged lengths: outputs at the real time steps, final carries, and the gradients of a
   loss of both w.r.t. params and inputs.
2. The engine's PTB LM ``train_step`` (vocab 10,000 synthetic, hidden 200, batch 20,
   BPTT 35): params after 3 steps, cudnn vs scan, from the same initial state.
3. The same LM's ``eval_step`` loss (init params x 8) at default precision (TF32 on Hopper) and in bfloat16,
   against float32 at highest precision (relative difference). For full float32 matmuls on
   a GPU set ``JAX_DEFAULT_MATMUL_PRECISION=highest`` (jax's own switch).
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import config as config_lib
from seqjax.app.bench import synthetic_task
from seqjax.core import layers
from seqjax.training import loop
from seqjax.training import mesh as mesh_lib

FAILED = []


def record(name: str, value: float, tol: float, **extra) -> None:
    ok = bool(np.isfinite(value) and value <= tol)
    if not ok:
        FAILED.append(name)
    print(json.dumps({"check": name, "value": float(value), "tol": tol, "ok": ok, **extra}), flush=True)


def max_diff(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def count_cudnn_calls():
    """Wraps jax.experimental.rnn.lstm to count the calls (0 on CPU: the scan ran)."""
    from jax.experimental import rnn

    calls, real = [], rnn.lstm

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    rnn.lstm = counted
    return calls


def check_stacked(calls) -> None:
    kx, kl, kp, kw = jax.random.split(jax.random.PRNGKey(0), 4)
    B, T, D, H = 8, 50, 32, 64
    x = jax.random.normal(kx, (B, T, D))
    lengths = jax.random.randint(kl, (B,), 1, T + 1).at[0].set(T)
    mask = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
    w = jax.random.normal(kw, (B, T, H))
    scan = layers.Stacked("lstm", hidden=H, layers=2)
    cudnn = layers.Stacked("lstm", hidden=H, layers=2, backend="cudnn")
    params = scan.init(kp, x)

    def loss(model, p, x):
        y, carry = model.apply(p, x, lengths)
        return jnp.sum(jnp.where(mask, y, 0.0) * w) + sum(jnp.sum(c) for c in jax.tree.leaves(carry)), (
            y,
            carry,
        )

    with jax.default_matmul_precision("highest"):
        (l_ref, (y_ref, c_ref)), g_ref = jax.jit(
            jax.value_and_grad(lambda p, x: loss(scan, p, x), (0, 1), has_aux=True)
        )(params, x)
        before = len(calls)
        (l, (y, c)), g = jax.jit(jax.value_and_grad(lambda p, x: loss(cudnn, p, x), (0, 1), has_aux=True))(
            params, x
        )
        n_calls = len(calls) - before
    if jax.default_backend() == "gpu":
        record("stacked_lstm.cudnn_kernel_ran", 0.0 if n_calls > 0 else 1.0, 0.0, cudnn_calls=n_calls)
    record(
        "stacked_lstm.outputs",
        max_diff(jnp.where(mask, y, 0), jnp.where(mask, y_ref, 0)),
        1e-4,
        cudnn_calls=n_calls,
    )
    record("stacked_lstm.carry", max_diff(c, c_ref), 1e-4)
    record("stacked_lstm.grad_params", max_diff(g[0], g_ref[0]), 1e-3)
    record("stacked_lstm.grad_inputs", max_diff(g[1], g_ref[1]), 1e-4)
    record("stacked_lstm.loss_rel", abs(float(l - l_ref)) / abs(float(l_ref)), 1e-5)


def _engine(overrides):
    cfg = config_lib.resolve("ptb_lm:zaremba-small", ["data.bptt=35", "data.eval_batch_size=64", *overrides])
    task, make_batch = synthetic_task(cfg)
    return loop.make_engine(cfg, task=task), task, make_batch


def check_train_step(calls) -> None:
    runs = {}
    for backend in ("scan", "cudnn"):
        engine, task, make_batch = _engine([f"model.backend={backend}"])
        rng = np.random.default_rng(0)
        batches = [mesh_lib.shard_batch(make_batch(rng, "train"), engine.mesh) for _ in range(3)]
        before = len(calls)
        with jax.default_matmul_precision("highest"):
            state = engine.init_state()
            for b in batches:
                state = engine.train_step(state, b)
            runs[backend] = (jax.device_get(state.params), len(calls) - before)
    record(
        "lm_train_step.params_after_3_steps",
        max_diff(runs["cudnn"][0], runs["scan"][0]),
        1e-4,
        cudnn_calls=runs["cudnn"][1],
    )


def check_precision() -> None:
    losses = {}
    for name, overrides, precision in (
        ("f32-highest", [], "highest"),
        ("f32-default", [], "default"),
        ("bf16", ["model.dtype=bfloat16"], "default"),
    ):
        engine, task, make_batch = _engine(overrides)
        rng = np.random.default_rng(1)
        # init params x 8 (uniform +-0.8): logits far from uniform, so precision shows
        params = jax.tree.map(lambda p: p * 8, engine.init_state().params)
        batch = mesh_lib.shard_batch(make_batch(rng, "valid"), engine.mesh)
        carry = task.initial_carry(64)
        with jax.default_matmul_precision(precision):
            metrics, _ = engine.eval_step(params, batch, carry)
        m = jax.device_get(metrics)
        losses[name] = float(m["loss_sum"]) / float(m["count"])
    ref = losses["f32-highest"]
    # default precision is TF32 on Ampere/Hopper: ~1e-3 relative (experiments/results/bench.md)
    record(
        "lm_eval.f32_default_vs_highest_rel", abs(losses["f32-default"] - ref) / abs(ref), 5e-3, losses=losses
    )
    record("lm_eval.bf16_vs_f32_rel", abs(losses["bf16"] - ref) / abs(ref), 2e-2)


def main() -> int:
    print(
        json.dumps(
            {"device": str(jax.devices()[0]), "backend": jax.default_backend(), "jax": jax.__version__}
        )
    )
    calls = count_cudnn_calls()
    for check in (lambda: check_stacked(calls), lambda: check_train_step(calls), check_precision):
        try:
            check()
        except Exception as e:  # noqa: BLE001 — report every check, then fail
            FAILED.append(repr(e)[:300])
            print(json.dumps({"check": "error", "error": repr(e)[:300]}), flush=True)
    print(json.dumps({"failed": FAILED}))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
