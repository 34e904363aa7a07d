"""Decode speed of one trained translation model: batched jit ``lax.while_loop`` decoding
vs per-token Python loops over the same model (the seed's way: one step call per token).

    python benchmarks/translate_decode_speed.py ckpt/es-word-att --sentences 200

Measured side by side in one process, on the first ``--sentences`` test sources:

* ``jit-greedy`` / ``jit-beam5``: ``TranslateTask.translate_ids`` (batches of
  ``decode.batch_size`` sentences, one ``lax.while_loop`` per batch, compiled once);
* ``python-greedy``: per sentence, per token a jitted ``Seq2Seq.decode_step`` call and a
  host ``argmax`` (the seed's ``decode_sequence``);
* ``python-beam5``: per sentence, per token a jitted ``seqjax.core.decoding.beam_step`` and a host
  check of ``beam_done`` (the same algorithm as ``jit-beam5``, without the ``while_loop``).

Each path is warmed up (compiled) first; times exclude compilation. The paths are timed
round-robin ``--repeats`` times and the fastest time of each is kept (the dev box is a
shared 2-core CPU, where a single timing swings by 2x). The outputs of the Python loops
are checked against the jit ones. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.core import decoding
from seqjax.data import pairs
from seqjax.models.seq2seq import Seq2Seq
from seqjax.training.inference import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir")
    args = ap.parse_args()

    run = load_run(args.workdir, task="translate")
    task, params = run.task, run.params
    cfg = task.cfg
    data = pairs.load_translation(cfg.data, args.data_dir, cfg.seed)
    assert data.src_vocab == task.src_vocab, "the dataset's vocabulary differs from the run's"
    src = [s for s, _ in data.test[: args.sentences]]
    model, v, d = task.model(), task.tgt_vocab, cfg.decode
    max_len, n_src, k = task.decode_max_len, cfg.data.max_len, args.beam
    kw = dict(max_len=max_len, alpha=d.alpha, penalty=d.penalty)

    encode = jax.jit(lambda s, l: model.apply({"params": params}, s, l, method=Seq2Seq.encode))
    step = jax.jit(lambda m, c, t: model.apply({"params": params}, m, c, t, method=Seq2Seq.decode_step))
    stepfn = decoding.seq2seq_step_fn(model, params)
    beam_init = jax.jit(
        functools.partial(decoding.beam_init, stepfn, beam=k, max_len=max_len, pad_id=v.pad_id)
    )
    beam_step = jax.jit(functools.partial(decoding.beam_step, stepfn, sos_id=v.sos_id, eos_id=v.eos_id, **kw))
    beam_done = jax.jit(functools.partial(decoding.beam_done, **kw))
    beam_final = jax.jit(functools.partial(decoding.beam_finalize, **kw))

    def one(ids):
        s = np.zeros((1, n_src), np.int32)
        s[0, : len(ids)] = ids[:n_src]
        return jnp.asarray(s), jnp.asarray([min(len(ids), n_src)], jnp.int32)

    def python_greedy(ids):
        memory, carry = encode(*one(ids))
        tok, out = jnp.asarray([v.sos_id], jnp.int32), []
        for _ in range(max_len):
            logits, carry, _ = step(memory, carry, tok)
            nxt = int(np.argmax(np.asarray(logits[0])))
            out.append(nxt)
            if nxt == v.eos_id:
                break
            tok = jnp.asarray([nxt], jnp.int32)
        return out

    def python_beam(ids):
        memory, carry = encode(*one(ids))
        memory, c = beam_init(memory, carry)
        while int(c.t) < max_len and not bool(beam_done(c)[0]):
            c = beam_step(memory, c)
        out = beam_final(c)
        return np.asarray(out.tokens[0, 0, : int(out.lengths[0, 0])]).tolist()

    def timed(fn):
        t0 = time.perf_counter()
        out = fn(src)
        return out, time.perf_counter() - t0

    def cut(tokens, lengths):
        return [t[:n].tolist() for t, n in zip(np.asarray(tokens), np.asarray(lengths))]

    paths = {
        "jit-greedy": lambda xs: cut(*task.translate_ids(params, xs, 1)[:2]),
        f"jit-beam{k}": lambda xs: cut(*task.translate_ids(params, xs, k)[:2]),
        "python-greedy": lambda xs: [python_greedy(x) for x in xs],
        f"python-beam{k}": lambda xs: [python_beam(x) for x in xs],
    }
    for fn in paths.values():
        fn(src[:2])  # warm-up: compile
    outputs, times = {}, {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            outputs[name], dt = timed(fn)
            times[name].append(dt)
    results = {
        name: {
            "ms_per_sentence": round(1000 * min(t) / len(src), 3),
            "all_ms_per_sentence": [round(1000 * x / len(src), 2) for x in t],
        }
        for name, t in times.items()
    }
    agree_g = np.mean([a == b for a, b in zip(outputs["jit-greedy"], outputs["python-greedy"])])
    agree_b = np.mean([a == b for a, b in zip(outputs[f"jit-beam{k}"], outputs[f"python-beam{k}"])])
    print(
        json.dumps(
            {
                "workdir": args.workdir,
                "sentences": len(src),
                "decode_batch_size": task.decode_batch_size,
                "device": f"{jax.device_count()}x {jax.devices()[0].device_kind}",
                "results": results,
                "speedup_greedy": round(
                    results["python-greedy"]["ms_per_sentence"] / results["jit-greedy"]["ms_per_sentence"], 1
                ),
                f"speedup_beam{k}": round(
                    results[f"python-beam{k}"]["ms_per_sentence"]
                    / results[f"jit-beam{k}"]["ms_per_sentence"],
                    1,
                ),
                "same_output_greedy": float(agree_g),
                f"same_output_beam{k}": float(agree_b),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
