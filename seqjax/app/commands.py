"""The inference commands of the CLI: ``seqjax sample``, ``classify`` and ``translate``.

Each loads a run directory read-only (config, assets, checkpoint; no dataset, nothing
written: :func:`seqjax.training.inference.load_run`), calls the task's own inference method
and prints one line per input. ``args`` is the :mod:`argparse` namespace of :mod:`seqjax.app.cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import jax
import numpy as np

from seqjax.errors import UsageError
from seqjax.tasks.lm import sample
from seqjax.training.inference import load_run


def _texts(args) -> list[str]:
    """The TEXT arguments, else the lines of stdin."""
    return list(args.text) if args.text else [line.rstrip("\r\n") for line in sys.stdin]


def sample_command(args) -> int:
    """``seqjax sample WORKDIR --prompt TEXT [--length N] [--temperature T] [--seed S]``: the
    prompt and its continuation."""
    run = load_run(args.workdir, task="lm")
    text = sample(run.task, jax.device_get(run.params), args.prompt, args.length, args.temperature, args.seed)
    sep = "" if run.task.corpus.level == "char" or not args.prompt else " "
    sys.stdout.write(args.prompt + sep + text + "\n")
    return 0


def classify_command(args) -> int:
    """``seqjax classify WORKDIR [TEXT]...``: one ``label<TAB>probability`` line per text."""
    texts = _texts(args)
    run = load_run(args.workdir, task="classify")
    task, params = run.task, run.params
    labels, probs = task.predict(params, texts)
    for label, p in zip(labels.tolist(), probs):
        print(f"{task.class_names[label]}\t{p[label]:.4f}")
    return 0


def translate_command(args) -> int:
    """``seqjax translate WORKDIR [TEXT]... [--beam K] [--plot-attention PNG]``: one
    translation per line; with ``--plot-attention`` a heatmap of the first input."""
    if args.beam < 1:
        raise UsageError(f"--beam {args.beam}: must be >= 1")
    texts = _texts(args)
    run = load_run(args.workdir, args.checkpoint, task="translate")
    task, params = run.task, run.params
    warn = lambda msg: print(f"warning: {msg}", file=sys.stderr)  # noqa: E731
    hyps, out = task.translate(params, texts, args.beam, warn=warn)
    for h in hyps:
        print(h)
    if args.plot_attention and texts:
        if task.model().attention == "none":
            warn(f"{args.workdir} has no attention (model.attention=none); no heatmap written")
        else:
            src = task.src_vocab.decode(task.encode_sources(texts[:1])[0])
            n = int(out.lengths[0])
            tgt = task.tgt_vocab.decode(out.tokens[0, :n])
            plot_attention(
                args.plot_attention,
                src,
                tgt,
                np.asarray(out.attention[0, :n, : len(src)]),
                title=f"{texts[0]} -> {hyps[0]}",
            )
            print(f"attention heatmap: {args.plot_attention}", file=sys.stderr)
    return 0


def plot_attention(
    path: str, src_tokens: Sequence[str], tgt_tokens: Sequence[str], weights: np.ndarray, title: str = ""
) -> None:
    """Heatmap of ``weights [len(tgt_tokens), len(src_tokens)]`` (rows: output tokens) with a
    colour bar of the attention weight; the title (e.g. ``input -> translation``) is wrapped
    to the figure's width, never cut. The format follows the file's suffix (``.png`` at 200
    dpi, ``.pdf``, ``.svg``)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = len(tgt_tokens), len(src_tokens)
    width = max(4.0, 0.45 * w + 2.2)
    lines = textwrap.wrap(title, max(20, int(width * 11))) if title else []
    fig, ax = plt.subplots(figsize=(width, max(2.8, 0.4 * h + 1.4 + 0.18 * len(lines))), layout="constrained")
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-9), aspect="auto")
    shown = lambda toks: ["␣" if t == " " else t for t in toks]  # noqa: E731 — a space token stays visible
    ax.set_xticks(range(w), shown(src_tokens), rotation=90)
    ax.set_yticks(range(h), shown(tgt_tokens))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax, label="attention weight", fraction=0.05, pad=0.02)
    if lines:
        ax.set_title("\n".join(lines), fontsize=9)
    fig.savefig(path, dpi=200)
    plt.close(fig)
