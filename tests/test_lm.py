"""Language models: uniform perplexity, carry threading, sampling, the sample/eval CLI."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import data_dir_or_skip

from seqjax import config as config_lib
from seqjax.core.layers import zero_carry
from seqjax.data.lm import LMCorpus
from seqjax.data.vocab import Vocab
from seqjax.models.language_model import LanguageModel
from seqjax.tasks.lm import LanguageModelTask, sample


def toy_task(*overrides):
    cfg = config_lib.resolve("char_lm:toy", ["train.progress=off", *overrides])
    return LanguageModelTask(cfg)


def test_uniform_model_perplexity_is_vocab_size():
    cfg = config_lib.resolve("ptb_lm:tiny")
    rng = np.random.default_rng(0)
    V = 97
    corpus = LMCorpus(*(rng.integers(0, V, n).astype(np.int32) for n in (2000, 500, 500)),
                      vocab=Vocab([f"w{i}" for i in range(V)]), level="word", name="synthetic")
    task = LanguageModelTask(cfg, corpus=corpus)
    params = task.init_params(jax.random.PRNGKey(0))
    params["out"] = jax.tree.map(jnp.zeros_like, params["out"])  # logits all 0 -> uniform
    sums = None
    for batch in task.eval_batches("valid"):
        _, (m, _) = task.loss(params, batch, task.initial_carry(len(batch["inputs"])), jax.random.PRNGKey(0),
                              False)
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
    metrics = task.summarize({k: float(v) for k, v in sums.items()})
    assert sums["count"] == 499  # every target of the split once
    assert metrics["ppl"] == pytest.approx(V, rel=1e-5)
    assert metrics["loss"] == pytest.approx(math.log(V), rel=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_threading_carry_across_windows_equals_one_long_unroll(cell):
    model = LanguageModel(vocab_size=50, embed=8, cell=cell, hidden=(12, 10))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (3, 24), 0, 50)
    carry0 = zero_carry(cell, (12, 10), 3)
    params = model.init(jax.random.PRNGKey(0), tokens, carry0)["params"]
    apply = jax.jit(lambda t, c: model.apply({"params": params}, t, c))
    full, full_carry = apply(tokens, carry0)
    pieces, carry = [], carry0
    for k in range(0, 24, 8):
        out, carry = apply(tokens[:, k : k + 8], carry)
        pieces.append(out)
    np.testing.assert_allclose(np.concatenate(pieces, 1), full, atol=1e-5)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(full_carry)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_sampling_is_reproducible_and_handles_unknown_prompts():
    task = toy_task()
    params = task.init_params(jax.random.PRNGKey(0))
    a = sample(task, params, "seven", 30, 1.0, seed=3)
    b = sample(task, params, "seven", 30, 1.0, seed=3)
    c = sample(task, params, "seven", 30, 1.0, seed=4)
    assert a == b and a != c and len(a) == 30
    greedy = sample(task, params, "seven", 20, 0.0, seed=0)
    assert greedy == sample(task, params, "seven", 20, 0.0, seed=99)  # temperature 0 ignores the seed
    assert len(sample(task, params, "ZZ\u00e9\u4e2d!", 10, 0.8, seed=0)) == 10  # unknown characters -> <unk>
    assert len(sample(task, params, "", 10, 0.8, seed=0)) == 10  # empty prompt: start state


def test_word_prompt_unknown_words_map_to_unk():
    root = data_dir_or_skip("ptb")
    task = LanguageModelTask(config_lib.resolve("ptb_lm:tiny"), str(root))
    params = task.init_params(jax.random.PRNGKey(0))
    text = sample(task, params, "the qwertyuiop company", 5, 1.0, seed=0)
    assert len(text.split()) >= 1


def test_zaremba_objective_is_summed_over_time():
    cfg = config_lib.resolve("char_lm:toy", ["data.sum_over_time=true"])
    summed = LanguageModelTask(cfg)
    mean = LanguageModelTask(config_lib.resolve("char_lm:toy"))
    params = mean.init_params(jax.random.PRNGKey(0))
    batch = mean.windows("train")[0]
    carry = mean.initial_carry(batch["inputs"].shape[0])
    obj_sum = summed.loss(params, batch, carry, jax.random.PRNGKey(0), False)[0]
    obj_mean = mean.loss(params, batch, carry, jax.random.PRNGKey(0), False)[0]
    assert float(obj_sum) == pytest.approx(float(obj_mean) * batch["inputs"].shape[1], rel=1e-5)


@pytest.mark.slow
def test_toy_model_completes_its_sentences(tmp_path, run_cli):
    code, out, err = run_cli("train", "char_lm:toy", "--workdir", str(tmp_path), "--set", "train.steps=400")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best"]["valid"]["bpc"] < 0.5
    code, out, _ = run_cli("sample", str(tmp_path), "--prompt", "seven grey", "--temperature", "0",
                           "--length", "41")
    assert code == 0
    assert out.strip() == "seven grey cats sleep under the warm bakery window."
    code, out, _ = run_cli("eval", str(tmp_path), "--split", "test")
    m = json.loads(out)
    assert code == 0 and m["split"] == "test" and m["bpc"] < 1.0
    code, _, err = run_cli("sample", str(tmp_path / "nope"), "--prompt", "x")
    assert code == 2 and "not a run directory" in err
