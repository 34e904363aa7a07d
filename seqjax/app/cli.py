"""The ``seqjax`` command (also ``python -m seqjax``).

Errors a user can act on print one line and exit 2 (usage/config) or 3 (data); see
seqjax/errors.py. ``SEQJAX_DEBUG=1`` shows full tracebacks. :func:`main` is pure;
:func:`run`, the executable's entry point, first applies the process-wide CPU settings
(:func:`tune_process`, off with ``SEQJAX_TUNING=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from seqjax.errors import SeqjaxError

DEFAULT_EXPERIMENT = "sequences:parity"


def _add_config_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "config",
        nargs=None if required else "?",
        default=None if required else DEFAULT_EXPERIMENT,
        metavar="CONFIG[:PRESET]",
        help="experiment file in experiments/ or its short name, e.g. ptb_lm:zaremba-small"
        + ("" if required else f" (default: {DEFAULT_EXPERIMENT})"),
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.hidden=128 (repeatable)",
    )
    p.add_argument("--data-dir", help="dataset root (default: $SEQJAX_DATA, else ./data)")


def _add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        default="best",
        metavar="{best,latest,average,ema}",
        help="best params, latest checkpoint, the mean of the best and every kept checkpoint, or params a "
        "train-state extension keeps (ema: the EMA of a train.ema run)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="seqjax", description="Recurrent sequence models in JAX/Flax.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train an experiment (no argument: the embedded default)")
    _add_config_args(p, required=False)
    p.add_argument(
        "--workdir",
        help="run directory (default: ckpt/<config>-<preset>-<time>); "
        "the same command on the same workdir resumes",
    )
    p.add_argument(
        "--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)"
    )
    p.add_argument(
        "--move-aside", action="store_true",
        help="start afresh: a run already in the workdir (another config, say) is moved into "
        "WORKDIR/previous-<time>/; nothing is deleted",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run; prints one JSON object")
    p.add_argument("workdir")
    p.add_argument("--split", choices=["valid", "test"], default="valid")
    _add_checkpoint_arg(p)
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="sample text from a language model run")
    p.add_argument("workdir")
    p.add_argument("--prompt", default="")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.set_defaults(func=lambda a: _lazy("seqjax.app.commands", "sample_command")(a))

    p = sub.add_parser("translate", help="translate with a seq2seq run (stdin lines when no TEXT)")
    p.add_argument("workdir")
    p.add_argument("text", nargs="*")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--plot-attention", metavar="PNG", help="write an attention heatmap of the first input")
    _add_checkpoint_arg(p)
    p.add_argument("--data-dir")
    p.set_defaults(func=lambda a: _lazy("seqjax.app.commands", "translate_command")(a))

    p = sub.add_parser("classify", help="classify texts with a classifier run (stdin lines when no TEXT)")
    p.add_argument("workdir")
    p.add_argument("text", nargs="*")
    p.add_argument("--data-dir")
    p.set_defaults(func=lambda a: _lazy("seqjax.app.commands", "classify_command")(a))

    p = sub.add_parser("bench", help="throughput / compile time / memory of a train and eval step (JSON)")
    _add_config_args(p, required=False)
    p.set_defaults(config=None)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.set_defaults(func=lambda a: _lazy("seqjax.app.bench", "bench_command")(a))

    p = sub.add_parser("sweep", help="run a grid of configs x seeds; results.csv, results.md, a plot")
    _add_config_args(p, required=True)
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis (repeatable)"
    )
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--sweep-dir", help="default: ckpt/sweep-<config>-<preset>")
    p.add_argument("--metric", help="metric shown in the table and plot (default: the task's main metric)")
    p.set_defaults(func=lambda a: _lazy("seqjax.app.sweep", "sweep_command")(a))

    p = sub.add_parser("data", help="datasets: fetch NAME | check")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser("fetch", help="download a dataset (checksummed)")
    f.add_argument("name")
    f.add_argument("--data-dir")
    f.set_defaults(func=cmd_data_fetch)
    c = dsub.add_parser("check", help="show which datasets are present")
    c.add_argument("--data-dir")
    c.set_defaults(func=cmd_data_check)

    p = sub.add_parser("experiments", help="list experiment configs and their presets")
    p.add_argument("--keys", action="store_true", help="also list every shared config key")
    p.set_defaults(func=cmd_experiments)
    return ap


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------- commands


def cmd_train(args) -> int:
    from seqjax import config as config_lib
    from seqjax.data.sources import absolute_files
    from seqjax.training import loop, mesh, rundir

    def resolve():
        cfg = config_lib.resolve(args.config, args.overrides)
        absolute_files(cfg)  # config.json names the data from any directory
        return cfg

    mesh.initialize_distributed(args.distributed)
    # several processes: a config error on any, or configs that differ, stop all of them
    cfg, workdir = rundir.resolve_together(resolve, args.workdir, loop.default_workdir)
    print(f"training {cfg.experiment}:{cfg.preset} in {workdir}", file=sys.stderr)
    summary = loop.train(cfg, workdir, args.data_dir, echo=lambda s: print(s, file=sys.stderr),
                         move_aside=args.move_aside)
    best = summary["best"]
    out = {  # the metrics are the best checkpoint's, labelled with its step (summary.json: all of them)
        "workdir": workdir,
        "steps": summary["steps"],
        "wall_s": summary["wall_s"],
        "best": {"step": best["step"], "valid": best["valid"], "test": best["test"]},
    }
    if "average" in summary:
        out["average"] = summary["average"]
    print(json.dumps(out))
    return 0


def cmd_eval(args) -> int:
    from seqjax.training.inference import load_run

    run = load_run(args.workdir, args.checkpoint, data_dir=args.data_dir)
    print(f"evaluating the {run.kind} checkpoint of step {run.step} on {args.split}", file=sys.stderr)
    metrics = run.evaluate(args.split)
    which = {"checkpoint": run.kind, "checkpoint_step": run.step}
    if "averaged_steps" in run.meta:
        which["averaged_steps"] = run.meta["averaged_steps"]
    print(json.dumps({"workdir": args.workdir, "split": args.split, **which, **metrics}))
    return 0


def cmd_data_fetch(args) -> int:
    from seqjax.data import fetch

    path = fetch.fetch(args.name, fetch.data_dir(args.data_dir))
    print(f"{args.name}: ready in {path}")
    return 0


def cmd_data_check(args) -> int:
    from seqjax.data import fetch

    root = fetch.data_dir(args.data_dir)
    for name, present, path in fetch.check(root):
        sums = ""
        if present:  # ok: the pinned or fetch-time sha256 matches; changed; unpinned: nothing to compare
            status = fetch.verify(name, root)
            bad = [f"{s} {rel}" for rel, s in status.items() if s != "ok"]
            sums = "  sha256 " + (", ".join(bad) if bad else "ok")
        print(f"{name:14s} {'present' if present else 'missing'}  {path}{sums}")
    return 0


def cmd_experiments(args) -> int:
    from seqjax import config as config_lib

    for name, presets in config_lib.list_experiments().items():
        print(name)
        for preset, desc in presets.items():
            print(f"  {name}:{preset:22s} {desc}")
    if args.keys:
        print("\nconfig keys (--set KEY=VALUE; default or the tasks that have it, allowed values):")
        for opt in config_lib.ALL_OPTIONS.values():
            print(config_lib.describe(opt))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    No process-wide settings: tests, notebooks and ``seqjax sweep`` call it in-process.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "text") and not any(e.startswith("-") for e in extra):
        args.text = [*args.text, *extra]  # `translate WORKDIR --beam 5 TEXT...`: options before the texts
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except SeqjaxError as e:
        print(f"seqjax: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `seqjax experiments | head -3`: the reader has all it wanted
        _stdout_to_devnull()
        return 0
    except Exception as e:  # noqa: BLE001 — one line unless debugging
        if os.environ.get("SEQJAX_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(
            f"seqjax: error: {type(e).__name__}: {first} (SEQJAX_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush after a closed pipe
    reports nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass
    finally:
        os.close(devnull)


def tune_process() -> dict[str, bool]:
    """The ``seqjax`` executable's process-wide CPU settings, unless ``SEQJAX_TUNING=0``:
    glibc keeps freed memory (faster steps; the resident size stays at its peak, see
    seqjax/runtime/malloc.py) and XLA:CPU schedules depth-first (seqjax/runtime/xla_flags.py; a choice in
    ``XLA_FLAGS`` wins). Call it before JAX starts its backend. Returns what was applied."""
    if os.environ.get("SEQJAX_TUNING", "1") == "0":
        return {"malloc": False, "xla_schedule": False}
    from seqjax.runtime.malloc import keep_freed_memory
    from seqjax.runtime.xla_flags import prefer_depth_first_schedule

    return {"malloc": keep_freed_memory(), "xla_schedule": prefer_depth_first_schedule()}


def run(argv: list[str] | None = None) -> None:
    """Entry point of the ``seqjax`` executable and ``python -m seqjax``: :func:`tune_process`,
    then :func:`main`; exits with its code. A multi-process command runs under
    seqjax/runtime/supervisor.py, which turns JAX's abort when a peer dies into one line."""
    from seqjax.runtime import logs, supervisor

    argv = sys.argv[1:] if argv is None else list(argv)
    if supervisor.wanted(argv):
        sys.exit(supervisor.run(argv))
    tune_process()
    logs.drop_closed_loop_reports()
    logs.plain_lines()
    sys.exit(main(argv))


if __name__ == "__main__":
    run()
