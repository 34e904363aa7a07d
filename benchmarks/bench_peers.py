"""Side-by-side speed of seqjax and its peers, interleaved on one machine; medians and ratios.

    python benchmarks/bench_peers.py                        # PTB-small LSTM: seqjax, torch, flax
    python benchmarks/bench_peers.py --variant small --variant h650 --variant gru --variant rnn
    python benchmarks/bench_peers.py --variant small --xla "onednn=--xla_cpu_use_onednn=true"
    python benchmarks/bench_peers.py --compile-vs-length    # seqjax compile_s at T = 35, 350, 3500
    python benchmarks/bench_peers.py --variant agnews --variant seq2seq   # classifier, attention seq2seq

Each round runs every contestant once, as a fresh process, in the same order (A B C A B
C ...), so slow phases of a shared machine hit all of them alike; the table gives the
median over rounds of each figure and the ratio of the medians against seqjax. The
contestants are ``seqjax bench`` (this checkout), ``../shared/peers/torch_lm.py`` (PyTorch
``nn.RNN/LSTM/GRU``, skipped with a note when torch is not installed) and
``../shared/peers/flax_lm.py`` (flax's own ``nn.RNN``), at the same shapes: vocabulary,
embedding = hidden, layers, batch, BPTT, eval batch. ``--xla NAME=FLAGS`` adds seqjax run
under ``XLA_FLAGS=FLAGS`` as another contestant (repeatable); ``--env NAME=VAR=VALUE`` one run
with an environment variable set (e.g. ``"untuned=SEQJAX_TUNING=0"``).

Two more step types have a PyTorch peer only (``benchmarks/torch_peers.py``, whose
defaults are the presets' shapes): ``--variant agnews`` is ``seqjax bench
agnews:bilstm-2x64`` against a bidirectional ``nn.LSTM`` classifier, ``--variant seq2seq``
is ``seqjax bench translate:word-gru-attention`` against an ``nn.GRU`` encoder and an
``nn.GRUCell`` decoder loop with Bahdanau attention.

Raw JSON lines go to ``--jsonl`` (default /tmp/bench_peers.jsonl); the Markdown table is
printed (and appended to ``--md`` when given), headed by the commit, machine and load.

``--write FILE`` (``make bench``) runs every CPU step type (:data:`WRITE_VARIANTS`, unless
``--variant`` names others) and replaces the part of FILE between the ``bench_peers:begin``
and ``bench_peers:end`` markers with the tables, the commit, the machine (CPU model and
vector width) and the command that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = pathlib.Path(os.environ.get("SEQJAX_PEERS", ROOT.parent / "shared" / "peers"))

#: name -> (cell, hidden, layers, batch, bptt, eval batch); vocabulary 10,000 throughout
VARIANTS = {
    "small": ("lstm", 200, 2, 20, 35, 64),  # Zaremba small (BPTT 35, as the peers' default)
    "h650": ("lstm", 650, 2, 20, 35, 64),  # Zaremba medium width
    "gru": ("gru", 200, 2, 20, 35, 64),
    "gru650": ("gru", 650, 2, 20, 35, 64),  # GPU
    "rnn": ("rnn", 200, 2, 20, 35, 64),  # Elman tanh
    "large": ("lstm", 1500, 2, 20, 35, 64),  # Zaremba large width (GPU)
}
#: name -> (seqjax bench config, benchmarks/torch_peers.py subcommand, torch contestant, shapes,
#: the seqjax overrides that give the peer's shapes)
STEP_VARIANTS = {
    "agnews": (
        "agnews:bilstm-2x64",
        "classifier",
        "torch nn.LSTM",
        (
            "agnews:bilstm-2x64, vocab 20000, embed 128, 2 bidirectional LSTM layers of 64, last-state "
            "pooling, 4 classes, batch 64, T 128, eval batch 256, adam"
        ),
        (),
    ),
    "seq2seq": (
        "translate:word-gru-attention",
        "seq2seq",
        "torch nn.GRU + nn.GRUCell",
        (
            "translate:word-gru-attention, GRU 256 encoder and decoder, Bahdanau attention 256, "
            "embed 256, vocab 6000 -> 4000, batch 64, S = T = 13, eval batch 256, adam, clip 5"
        ),
        ("data.tgt_vocab_size=4000", "model.dropout=0.1"),
    ),
}
FIGURES = ("train_tokens_per_s", "eval_tokens_per_s", "compile_s")
#: the step types of experiments/results/bench.md (``--write``)
WRITE_VARIANTS = ("small", "h650", "gru", "rnn", "agnews", "seq2seq")
BEGIN, END = "<!-- bench_peers:begin -->", "<!-- bench_peers:end -->"


def seqjax_cmd(variant, steps, extra=()):
    if variant in STEP_VARIANTS:
        spec, sets = STEP_VARIANTS[variant][0], [*STEP_VARIANTS[variant][4], *extra]
    else:
        cell, h, layers, b, t, eb = VARIANTS[variant]
        spec = "ptb_lm:zaremba-small"
        sets = [
            f"model.cell={cell}",
            f"model.hidden={h}",
            f"model.embed={h}",
            f"model.layers={layers}",
            f"data.batch_size={b}",
            f"data.bptt={t}",
            f"data.eval_batch_size={eb}",
            *extra,
        ]
    cmd = [sys.executable, "-m", "seqjax", "bench", spec, "--steps", str(steps)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def compile_cmd(sets):
    """seqjax's train/eval step compile time alone (seqjax.app.bench.compile_times), PTB-small shapes."""
    code = (
        "import json, sys; from seqjax import config; from seqjax.app import bench; "
        "cfg = config.resolve(bench.DEFAULT_CONFIG, [*bench.DEFAULT_OVERRIDES, *sys.argv[1:]]); "
        "print(json.dumps(bench.compile_times(cfg)))"
    )
    return [sys.executable, "-c", code, *sets]


def peer_cmd(script, variant, steps):
    cell, h, layers, b, t, eb = VARIANTS[variant]
    return [
        sys.executable,
        str(PEERS / script),
        "--cell",
        cell,
        "--hidden",
        str(h),
        "--layers",
        str(layers),
        "--batch",
        str(b),
        "--bptt",
        str(t),
        "--eval-batch",
        str(eb),
        "--steps",
        str(steps),
    ]


def torch_peer(variant, steps, gpu=False) -> tuple[str, list[str]]:
    """(contestant name, command) of ``variant``'s PyTorch peer (``gpu``: the cuDNN LM peer,
    benchmarks/torch_lm_gpu.py)."""
    if variant in STEP_VARIANTS:
        _, sub, name, _, _ = STEP_VARIANTS[variant]
        return name, [sys.executable, str(ROOT / "benchmarks" / "torch_peers.py"), sub, "--steps", str(steps)]
    name = "torch nn." + {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[VARIANTS[variant][0]]
    if gpu:  # cuDNN
        cmd = peer_cmd("torch_lm.py", variant, steps)
        return name + " (cuDNN)", [cmd[0], str(ROOT / "benchmarks" / "torch_lm_gpu.py"), *cmd[2:]]
    return name, peer_cmd("torch_lm.py", variant, steps)


def describe(variant) -> str:
    """The shapes line of ``variant``'s table."""
    if variant in STEP_VARIANTS:
        return STEP_VARIANTS[variant][3]
    cell, h, layers, b, t, eb = VARIANTS[variant]
    return f"{cell}, vocab 10000, embed = hidden {h}, {layers} layers, batch {b}, bptt {t}, eval batch {eb}"


def have_torch() -> bool:
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


def run(cmd, env=None, timeout=900) -> dict | None:
    cwd = pathlib.Path(env["PYTHONPATH"]) if env and "PYTHONPATH" in env else ROOT  # --tree: its experiments/
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        print(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def cpu() -> str:
    """CPU model, vector width and core count, from /proc/cpuinfo (Linux)."""
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    field = lambda name: next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()  # noqa: E731
            if line.startswith(name)
        ),
        "",
    )
    flags = set(field("flags").split())
    width = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{field('model name') or platform.machine()} ({width}), {os.cpu_count()} CPUs"


def torch_version() -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else "not installed"


def write_section(path: pathlib.Path, text: str) -> None:
    """Replace what lies between :data:`BEGIN` and :data:`END` in ``path`` with ``text``."""
    doc = path.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers; add them where the tables go")
    head, rest = doc.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{text.strip()}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def header() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "seqjax"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    import jax  # noqa: PLC0415 — only for the version line

    return (
        f"commit {commit}{' (+ uncommitted seqjax changes)' if dirty else ''}; {cpu()}; "
        f"jax {jax.__version__}, torch {torch_version()}; {time.strftime('%Y-%m-%d %H:%M')}"
    )


def table(variant, results, rounds, load_before, load_after) -> str:
    names = list(results)
    med = {
        n: {
            f: statistics.median(r[f] for r in results[n])
            if results[n] and all(f in r for r in results[n])
            else None
            for f in FIGURES
        }
        for n in names
    }
    base = med.get("seqjax")
    lines = [
        (
            f"**{variant}**: {describe(variant)}; medians of {rounds} interleaved rounds; "
            f"load avg {load_before} -> {load_after}"
        ),
        "",
        "| contestant | train tok/s | eval tok/s | compile s | seqjax train × | seqjax eval × | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in names:
        m = med[n]
        if m["train_tokens_per_s"] is None:
            lines.append(f"| {n} | – | – | – | – | – | {len(results[n])} |")
            continue
        tr = (
            f"{base['train_tokens_per_s'] / m['train_tokens_per_s']:.2f}"
            if base and base["train_tokens_per_s"]
            else "–"
        )
        ev = (
            f"{base['eval_tokens_per_s'] / m['eval_tokens_per_s']:.2f}"
            if base and base["eval_tokens_per_s"]
            else "–"
        )
        comp = f"{m['compile_s']:.2f}" if m["compile_s"] is not None else "–"
        lines.append(
            f"| {n} | {m['train_tokens_per_s']:,.0f} | {m['eval_tokens_per_s']:,.0f} | {comp} | {tr} | {ev} "
            f"| {len(results[n])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--variant", action="append", choices=sorted({**VARIANTS, **STEP_VARIANTS}), help="default: small"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per run (the peers' default)")
    ap.add_argument(
        "--xla", action="append", default=[], metavar="NAME=FLAGS", help="extra seqjax contestant"
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VAR=VALUE",
        help="extra seqjax contestant with an environment variable set",
    )
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="extra seqjax contestant: another checkout (e.g. `git archive` of an older commit)",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra --set for every seqjax contestant",
    )
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="also run the torch peer with this many threads (1 sidesteps OpenMP spinning on a busy machine)",
    )
    ap.add_argument("--no-flax", action="store_true")
    ap.add_argument(
        "--gpu", action="store_true", help="LM variants against torch with cuDNN (benchmarks/gpu.sh)"
    )
    ap.add_argument("--compile-vs-length", action="store_true", help="seqjax compile_s at bptt 35, 350, 3500")
    ap.add_argument("--jsonl", default="/tmp/bench_peers.jsonl")
    ap.add_argument("--md", help="append the tables to this file")
    ap.add_argument(
        "--write",
        type=pathlib.Path,
        metavar="FILE",
        help="replace FILE's section between the bench_peers markers (default variants: all CPU step types)",
    )
    args = ap.parse_args()
    if args.write and not args.variant and not args.compile_vs_length:
        args.variant = list(WRITE_VARIANTS)

    command = " ".join(["python benchmarks/bench_peers.py", *sys.argv[1:]])
    out = [f"_{header()}_\n", f"Command: `{command}`\n"]
    raw = open(args.jsonl, "a")
    if args.compile_vs_length:
        rows = {35: [], 350: [], 3500: []}
        l0 = load()
        for _ in range(args.rounds):
            for t in rows:
                r = run(compile_cmd([f"data.bptt={t}", *args.sets]))
                if r:
                    rows[t].append(r)
                    raw.write(json.dumps({"contestant": f"seqjax-T{t}", **r}) + "\n")
                    raw.flush()
        base = statistics.median(r["compile_s"] for r in rows[35])
        out.append(
            f"**compile time vs sequence length** (PTB-small LSTM train and eval steps, "
            f"`seqjax.app.bench.compile_times` with data.bptt=T; medians of {args.rounds} interleaved "
            f"rounds; "
            f"load avg {l0} -> {load()})\n"
        )
        out.append(
            "| T | train step compile_s | eval step compile_s | train × T=35 |\n| ---: | ---: | ---: | ---: |"
        )
        for t, rs in rows.items():
            c = statistics.median(r["compile_s"] for r in rs)
            ec = statistics.median(r["eval_compile_s"] for r in rs)
            out.append(f"| {t} | {c:.2f} | {ec:.2f} | {c / base:.2f} |")
        out.append("")
    torch_ok = not args.no_torch and have_torch()
    if not args.no_torch and not torch_ok:
        out.append("(torch not installed: the PyTorch peer is skipped)\n")
    for variant in args.variant or ([] if args.compile_vs_length else ["small"]):
        contestants = {"seqjax": (seqjax_cmd(variant, args.steps, args.sets), None)}
        for spec in args.xla:
            name, _, flags = spec.partition("=")
            env = {**os.environ, "XLA_FLAGS": flags}
            contestants[f"seqjax {name}"] = (seqjax_cmd(variant, args.steps, args.sets), env)
        # --write: the executable's CPU tuning (SEQJAX_TUNING) A/B on the PTB-small step
        untuned = ["untuned=SEQJAX_TUNING=0"] if args.write and not args.env and variant == "small" else []
        for spec in [*args.env, *untuned]:
            name, _, assignment = spec.partition("=")
            var, _, value = assignment.partition("=")
            contestants[f"seqjax {name}"] = (
                seqjax_cmd(variant, args.steps, args.sets),
                {**os.environ, var: value},
            )
        for spec in args.tree:
            name, _, tree = spec.partition("=")
            env = {**os.environ, "PYTHONPATH": str(pathlib.Path(tree).resolve())}
            contestants[f"seqjax {name}"] = (seqjax_cmd(variant, args.steps, args.sets), env)
        if torch_ok:
            name, cmd = torch_peer(variant, args.steps, args.gpu)
            contestants[name] = (cmd, None)
            if args.torch_threads:
                contestants[f"torch ({args.torch_threads} thread{'s' if args.torch_threads > 1 else ''})"] = (
                    cmd + ["--threads", str(args.torch_threads)],
                    None,
                )
        if not args.no_flax and variant in VARIANTS:  # flax_lm.py: the LM variants only
            contestants["flax nn.RNN"] = (peer_cmd("flax_lm.py", variant, args.steps), None)
        results = {n: [] for n in contestants}
        l0 = load()
        for i in range(args.rounds):
            for name, (cmd, env) in contestants.items():
                r = run(cmd, env)
                if r:
                    results[name].append(r)
                    raw.write(
                        json.dumps({"contestant": name, "variant": variant, "round": i, "load": load(), **r})
                        + "\n"
                    )
                    raw.flush()
        out.append(table(variant, results, args.rounds, l0, load()))
    text = "\n".join(out)
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write(text + "\n")
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
