"""``seqjax bench``: throughput, compile time and memory of an experiment's real train and
eval steps, on synthetic batches.

    seqjax bench                                   # PTB-small LM step (the default shapes below)
    seqjax bench ptb_lm:zaremba-medium --steps 20
    seqjax bench agnews:bilstm-2x64 --set data.batch_size=128
    seqjax bench --set data.bptt=3500 --steps 2    # compile time against sequence length

The experiment's task is built on synthetic data (every task's ``synthetic`` and
``synthetic_batch``: a synthetic vocabulary and random batches of the real shapes) instead
of its dataset, so the command needs neither the data files nor ``datasets`` nor ``torch``.
The step that is timed is the engine's own (:func:`seqjax.training.loop.make_engine`): the
jit-compiled, state-donating ``train_step`` that ``seqjax train`` runs (forward, backward,
clipping, optimizer update, metric sums) and the ``eval_step`` of ``seqjax eval``.

Prints one JSON object:

- ``train_tokens_per_s`` / ``eval_tokens_per_s``: tokens (time steps of real rows) per
  second over ``--steps`` consecutive steps after warm-up, one host sync at the end (the
  statistic the peer implementations of ``benchmarks/bench_peers.py`` report);
- ``step_ms``: wall milliseconds per train step (the same run); ``eval_step_ms`` likewise;
- ``compile_s``: trace + lower + XLA compile of the train step (ahead-of-time, no run);
  ``eval_compile_s`` likewise;
- ``peak_memory_mb``: the device allocator's peak (GPU/TPU) or, on CPU, the process's
  peak resident set size; ``step_memory_mb``: what XLA reports the compiled train step
  needs (arguments + outputs + temporaries, ``compiled.memory_analysis()``);
- ``device``, ``xla_flags`` and the shapes (``config``, ``batch``, ``eval_batch``,
  ``seq_len``, ``vocab``, ``cell``, ``hidden``, ``layers``, ``params``).

Default shapes (no CONFIG): ``ptb_lm:zaremba-small`` with ``data.bptt=35`` and
``data.eval_batch_size=64`` — vocabulary 10,000, embedding and hidden 200, 2 LSTM layers,
batch 20, BPTT 35 — the default shapes of the PyTorch and Flax peer LMs, so
``benchmarks/bench_peers.py`` can put them side by side.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

import jax
import numpy as np

from seqjax import config as config_lib
from seqjax.errors import UsageError
from seqjax.models.build import recurrent_spec
from seqjax.tasks import task_class

DEFAULT_CONFIG = "ptb_lm:zaremba-small"
DEFAULT_OVERRIDES = ("data.bptt=35", "data.eval_batch_size=64")

WARMUP = 2


def synthetic_task(cfg):
    """``(task, make_batch)``: the task of ``cfg`` on synthetic data (:meth:`Task.synthetic`:
    the real model, loss and metrics) and ``make_batch(rng, split)``, one random host batch
    of the train (``split="train"``) or eval batch size."""
    task = task_class(cfg.task).synthetic(cfg)
    size = {"train": cfg.data.batch_size, "valid": cfg.data.get("eval_batch_size", 0) or cfg.data.batch_size}
    return task, lambda rng, split: task.synthetic_batch(rng, size[split])


def _device() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{jax.device_count()}x {d.platform}:{kind}"


def _peak_memory_mb() -> tuple[float, str]:
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 — backends without allocator stats
        pass
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20, "device_peak_bytes_in_use"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process_max_rss"


def _step_memory_mb(compiled) -> float | None:
    try:
        m = compiled.memory_analysis()
        total = (
            m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
        )
        return total / 2**20
    except Exception:  # noqa: BLE001 — not every backend reports it
        return None


def _block(tree) -> None:
    jax.block_until_ready(tree)


def run_bench(cfg, steps: int = 20) -> dict[str, Any]:
    """Measures ``cfg``'s train and eval steps on synthetic batches; returns the JSON dict."""
    from seqjax.training import loop
    from seqjax.training import mesh as mesh_lib

    if steps < 1:
        raise UsageError(f"--steps {steps}: must be >= 1")
    task, make_batch = synthetic_task(cfg)
    engine = loop.make_engine(cfg, task=task)
    mesh = engine.mesh
    rng = np.random.default_rng(cfg.seed)
    shard = lambda b: mesh_lib.shard_batch(b, mesh)  # noqa: E731

    # ---- train step: AOT compile, warm up, then `steps` steps with one sync at the end
    state = engine.init_state()
    host = make_batch(rng, "train")
    tokens_per_step = task.tokens(host)
    shaped = next(x for x in host.values() if np.ndim(x) >= 2)  # the first [B, T, ...] array
    train_batches = [shard(host)] + [shard(make_batch(rng, "train")) for _ in range(min(steps, 4) - 1)]
    t0 = time.perf_counter()
    train_step = engine.train_step.lower(state, train_batches[0]).compile()
    compile_s = time.perf_counter() - t0
    for i in range(WARMUP):
        state = train_step(state, train_batches[i % len(train_batches)])
    _block(state)
    t0 = time.perf_counter()
    for i in range(steps):
        state = train_step(state, train_batches[i % len(train_batches)])
    _block(state)
    train_s = time.perf_counter() - t0

    # ---- eval step
    params = state.params
    host = make_batch(rng, "valid")
    eval_tokens, eval_b = task.tokens(host), len(next(iter(host.values())))
    eval_batches = [shard(host)] + [shard(make_batch(rng, "valid")) for _ in range(min(steps, 4) - 1)]
    carry = shard(task.initial_carry(eval_b)) if task.stateful else None
    t0 = time.perf_counter()
    eval_step = engine.eval_step.lower(params, eval_batches[0], carry).compile()
    eval_compile_s = time.perf_counter() - t0
    for i in range(WARMUP):
        out = eval_step(params, eval_batches[i % len(eval_batches)], carry)
    _block(out)
    t0 = time.perf_counter()
    for i in range(steps):
        out = eval_step(params, eval_batches[i % len(eval_batches)], carry)
    _block(out)
    eval_s = time.perf_counter() - t0

    peak, peak_source = _peak_memory_mb()
    spec = recurrent_spec(cfg)
    return {
        "config": f"{cfg.experiment}:{cfg.preset}",
        "task": cfg.task,
        "device": _device(),
        "train_tokens_per_s": round(steps * tokens_per_step / train_s, 1),
        "eval_tokens_per_s": round(steps * eval_tokens / eval_s, 1),
        "step_ms": round(1000 * train_s / steps, 3),
        "eval_step_ms": round(1000 * eval_s / steps, 3),
        "compile_s": round(compile_s, 3),
        "eval_compile_s": round(eval_compile_s, 3),
        "peak_memory_mb": round(peak, 1),
        "peak_memory_source": peak_source,
        "step_memory_mb": None if (s := _step_memory_mb(train_step)) is None else round(s, 1),
        "steps": steps,
        "cell": spec.cell,
        "hidden": list(spec.hidden),
        "layers": len(spec.hidden),
        "bidirectional": spec.bidirectional,
        "unroll": spec.unroll,
        "dtype": str(spec.dtype or "float32"),
        "vocab": _vocab_size(task),
        "batch": int(shaped.shape[0]),
        "eval_batch": eval_b,
        "seq_len": int(shaped.shape[1]),
        "tokens_per_step": tokens_per_step,
        "params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(params))),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax": jax.__version__,
    }


def compile_times(cfg) -> dict[str, Any]:
    """Trace + lower + compile time of ``cfg``'s train and eval steps, without running them
    (``compile_s``, ``eval_compile_s``, ``seq_len``): compile time against sequence length
    without paying for a step at T = 3500."""
    from seqjax.training import loop
    from seqjax.training import mesh as mesh_lib

    task, make_batch = synthetic_task(cfg)
    engine = loop.make_engine(cfg, task=task)
    rng = np.random.default_rng(cfg.seed)
    state = engine.init_state()
    host = make_batch(rng, "train")
    t0 = time.perf_counter()
    engine.train_step.lower(state, mesh_lib.shard_batch(host, engine.mesh)).compile()
    compile_s = time.perf_counter() - t0
    eval_host = make_batch(rng, "valid")
    eval_b = len(next(iter(eval_host.values())))
    carry = task.initial_carry(eval_b) if task.stateful else None
    t0 = time.perf_counter()
    engine.eval_step.lower(state.params, mesh_lib.shard_batch(eval_host, engine.mesh), carry).compile()
    return {
        "compile_s": round(compile_s, 3),
        "eval_compile_s": round(time.perf_counter() - t0, 3),
        "seq_len": int(next(x for x in host.values() if np.ndim(x) >= 2).shape[1]),
        "device": _device(),
    }


def _vocab_size(task) -> int | None:
    for attr in ("corpus", "vocab", "tgt_vocab"):
        v = getattr(task, attr, None)
        if v is not None:
            return len(v.vocab) if attr == "corpus" else len(v)
    return None


def bench_command(args) -> int:
    """``seqjax bench [CONFIG[:PRESET]] [--set k=v]... [--steps N]``: one JSON object."""
    if args.config is None:
        spec, overrides = DEFAULT_CONFIG, [*DEFAULT_OVERRIDES, *args.overrides]
    else:
        spec, overrides = args.config, list(args.overrides)
    cfg = config_lib.resolve(spec, overrides)
    print(json.dumps(run_bench(cfg, args.steps)))
    return 0
