"""`seqjax bench`: one JSON object with positive numbers, for any task, without the datasets."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from seqjax import config
from seqjax.app import bench
from seqjax.app.cli import main
from seqjax.core.layers import hidden_sizes

NUMBERS = ("train_tokens_per_s", "eval_tokens_per_s", "compile_s", "step_ms", "peak_memory_mb")


def _check(out: dict) -> None:
    for key in NUMBERS:
        assert isinstance(out[key], (int, float)) and out[key] > 0, (key, out[key])
    assert out["device"] and out["batch"] > 0 and out["seq_len"] > 0
    # throughput and step time describe the same timed steps
    assert out["train_tokens_per_s"] == pytest.approx(
        1000 * out["tokens_per_step"] / out["step_ms"], rel=1e-2
    )


@pytest.mark.slow
def test_cli_prints_one_json_object_without_datasets_or_torch():
    """The CLI path in a fresh interpreter where `import datasets` / `import torch` fail."""
    code = (
        "import sys; sys.modules['datasets'] = None; sys.modules['torch'] = None\n"
        "from seqjax.app.cli import run; run(['bench', 'sequences:tiny', '--steps', '2'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "SEQJAX_TUNING")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    _check(out)
    assert out["config"] == "sequences:tiny" and out["steps"] == 2
    assert (
        out["xla_flags"] == "--xla_cpu_enable_concurrency_optimized_scheduler=false"
    )  # the executable's schedule


def test_lm_tiny_on_synthetic_tokens(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    # no dataset anywhere: the synthetic corpus replaces it
    rc = main(
        [
            "bench",
            "ptb_lm:tiny",
            "--steps",
            "2",
            "--set",
            "data.bptt=12",
            "--set",
            "data.eval_batch_size=4",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    _check(out)
    assert (out["task"], out["vocab"], out["batch"], out["eval_batch"], out["seq_len"]) == (
        "lm",
        10000,
        8,
        4,
        12,
    )
    assert out["tokens_per_step"] == 8 * 12
    # parameters of the 2x32 LSTM LM: embedding + 2 layers + softmax
    v, e, h = 10000, 32, 32
    assert out["params"] == v * e + (4 * h * (e + h) + 8 * h) + (4 * h * (h + h) + 8 * h) + h * v + v


def test_default_shapes_are_the_peers():
    """No CONFIG: PTB-small shapes (vocab 10k, 2x200 LSTM, batch 20, bptt 35, eval batch 64)."""
    cfg = config.resolve(bench.DEFAULT_CONFIG, bench.DEFAULT_OVERRIDES)
    task, make_batch = bench.synthetic_task(cfg)
    import numpy as np

    batch = make_batch(np.random.default_rng(0), "train")
    assert batch["inputs"].shape == (20, 35) and len(task.corpus.vocab) == 10000
    assert hidden_sizes(cfg.model.hidden, cfg.model.layers) == (200, 200) and cfg.model.cell == "lstm"
    assert make_batch(np.random.default_rng(0), "valid")["inputs"].shape == (64, 35)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["agnews:tiny", "translate:tiny"])
def test_other_tasks_without_data(spec, monkeypatch, capsys, tmp_path):
    module = {"agnews:tiny": "seqjax.tasks.classify", "translate:tiny": "seqjax.tasks.translate"}[spec]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not in this tree yet")
    monkeypatch.setitem(sys.modules, "datasets", None)
    rc = main(["bench", spec, "--steps", "1", "--data-dir", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    _check(out)
    cfg = config.resolve(spec)
    longest = cfg.data.max_len + (1 if cfg.task == "translate" else 0)
    assert out["seq_len"] == longest and out["batch"] == cfg.data.batch_size


def test_bad_steps_is_a_usage_error(capsys):
    assert main(["bench", "sequences:tiny", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


@pytest.mark.slow
def test_cudnn_path_matches_the_scan(monkeypatch):
    """The cuDNN LSTM path (GPU only) packs the cells' params in cuDNN's layout; checked on
    CPU by standing in jax.experimental.rnn's own reference LSTM for the cuDNN kernel."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import rnn

    from seqjax.core import layers, loops

    def fake_lstm(x, h0, c0, w, seq_lengths, input_size, hidden_size, num_layers, dropout, bidirectional):
        W_ih, W_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
            w, input_size, hidden_size, num_layers, bidirectional
        )
        return rnn.lstm_ref(
            x,
            h0,
            c0,
            W_ih,
            W_hh,
            b_ih,
            b_hh,
            seq_lengths,
            input_size,
            hidden_size,
            num_layers,
            dropout,
            bidirectional,
        )

    calls = []
    monkeypatch.setattr(rnn, "lstm", lambda *a, **k: calls.append(1) or fake_lstm(*a, **k))
    monkeypatch.setattr(loops, "_cudnn_available", lambda: True)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 5))
    lengths = jnp.array([7, 4, 7], jnp.int32)
    scan = layers.Stacked("lstm", hidden=6, layers=2)
    cudnn = layers.Stacked("lstm", hidden=6, layers=2, backend="cudnn")
    params = scan.init(jax.random.PRNGKey(1), x)
    carry0 = scan.initialize_carry(3)
    carry0 = tuple((c + 0.1, h - 0.2) for c, h in carry0)  # (c, h) told apart
    for sl in (None, lengths):
        y_ref, c_ref = scan.apply(params, x, sl, carry0)
        y, c = cudnn.apply(params, x, sl, carry0)
        np.testing.assert_allclose(y, y_ref, atol=1e-5)
        for a, b in zip(jax.tree.leaves(c), jax.tree.leaves(c_ref)):
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(calls) == 4  # 2 layers x 2 calls: the cuDNN path was taken
    # GRU and the backward direction fall back to the scan (no cuDNN call)
    for model in (
        layers.Stacked("gru", hidden=6, backend="cudnn"),
        layers.Stacked("lstm", hidden=6, bidirectional=True, backend="cudnn"),
    ):
        p = model.init(jax.random.PRNGKey(2), x)
        before = len(calls)
        model.apply(p, x, lengths)
        assert len(calls) == before + (1 if model.bidirectional else 0)


@pytest.mark.parametrize("spec", ["ptb_lm:tiny", "agnews:tiny", "translate:tiny"])
def test_backend_key_reaches_the_recurrent_layers(spec, monkeypatch):
    """`--set model.backend=cudnn` is handed to every model's recurrent stack (the cuDNN
    kernel replaced by a recorder; on a CPU without it the scan runs and nothing changes)."""
    import jax
    from jax.experimental import rnn

    from seqjax.app.bench import synthetic_task
    from seqjax.core import loops

    seen = []
    recorder = [dataclasses.replace(lp, applies=lambda call: seen.append(call.layer.backend) or False)
                if lp.name == "cudnn" else lp for lp in loops.LOOPS]
    monkeypatch.setattr(loops, "LOOPS", recorder)
    monkeypatch.setattr(rnn, "lstm", lambda *a, **k: pytest.fail("no cuDNN on this machine"))
    task, _ = synthetic_task(config.resolve(spec, ["model.backend=cudnn"]))
    task.init_params(jax.random.PRNGKey(0))
    assert seen and set(seen) == {"cudnn"}
    with pytest.raises(Exception, match="model.backend='gpu': choose one of scan, flax_scan, cudnn"):
        config.resolve(spec, ["model.backend=gpu"])


@pytest.mark.gpu
def test_gpu_bench_and_the_real_cudnn_kernel():
    """On a GPU: `seqjax bench` runs there, and the cuDNN LSTM kernel gives the scan's outputs
    and gradients (float32 at highest matmul precision)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from seqjax.core import layers

    out = bench.run_bench(config.resolve("ptb_lm:tiny", ["data.bptt=12"]), steps=2)
    _check(out)
    assert "gpu" in out["device"]
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 8))
    lengths = jnp.array([9, 5, 9, 1], jnp.int32)
    scan = layers.Stacked("lstm", hidden=16, layers=2)
    cudnn = layers.Stacked("lstm", hidden=16, layers=2, backend="cudnn")
    params = scan.init(jax.random.PRNGKey(1), x)

    def loss(model, p):
        y, _ = model.apply(p, x, lengths)
        return (y**2).sum(), y

    with jax.default_matmul_precision("highest"):
        (_, y_ref), g_ref = jax.value_and_grad(lambda p: loss(scan, p), has_aux=True)(params)
        (_, y), g = jax.value_and_grad(lambda p: loss(cudnn, p), has_aux=True)(params)
    np.testing.assert_allclose(y, y_ref, atol=1e-4)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, atol=1e-3)
