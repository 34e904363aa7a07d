"""Ablation sweeps (``seqjax sweep``): a grid of config overrides x seeds, one run directory
each, one table.

    seqjax sweep sequences:parity --grid model.cell=rnn,lstm,gru --seeds 3
    seqjax sweep ptb_lm:zaremba-small --grid model.hidden=200,650 --grid model.dropout=0,0.5

Each grid point x seed is an ordinary run (``seqjax.training.loop.train``) in
``<sweep dir>/<run name>``, where the run name spells out the point, e.g.
``model.cell=gru,seed=1``. Because the engine resumes from the checkpoints in a run
directory, a killed sweep is continued by running the same command again: runs with a
``summary.json`` are skipped, unfinished runs resume, failed runs are retried. A run that
raises is recorded (one line in ``<run>/FAILED``, the traceback in ``<run>/traceback.txt``)
and the sweep goes on.

At the end :func:`aggregate` reads every run's ``summary.json`` into

- ``results.csv``: one row per run, every best-checkpoint metric on valid and test;
- ``results.md``: one row per grid point, mean ± sample std (ddof=1) over seeds of the
  chosen metric and the loss on valid and test, training time, tokens/s, seeds, failures;
- ``results.png`` (200 dpi), ``results.pdf``, ``results.svg``: the metric per grid point,
  valid and test side by side, the first grid axis on x and the others as series, each
  seed a point and the mean ± 1 std as error bars (with matplotlib installed).

Metrics are those of the best-validation checkpoint (``summary["best"]``), as the
training loop reports them.

The parts: :mod:`~seqjax.app.sweep.grid` (the grid and run names),
:mod:`~seqjax.app.sweep.runner` (training the runs), :mod:`~seqjax.app.sweep.report` (the
tables) and :mod:`~seqjax.app.sweep.plot` (the figure).
"""

from __future__ import annotations

import pathlib
import sys

from seqjax.app.sweep.grid import RunSpec, expand_grid, parse_grid, parse_run_name, safe_value
from seqjax.app.sweep.plot import PLOT_DPI, PLOT_FORMATS, plot_table
from seqjax.app.sweep.report import aggregate, collect
from seqjax.app.sweep.runner import default_sweep_dir, run_sweep

__all__ = ["PLOT_DPI", "PLOT_FORMATS", "RunSpec", "aggregate", "collect", "default_sweep_dir", "expand_grid",
           "parse_grid", "parse_run_name", "plot_table", "run_sweep", "safe_value", "sweep_command"]


def sweep_command(args) -> int:
    """``seqjax sweep CONFIG[:PRESET] --grid k=v1,v2 [--seeds N] [--sweep-dir D] [--metric M]``.

    Prints results.md on stdout; exit 1 when a run failed (the others still ran).
    """
    overrides = list(args.overrides or [])
    runs = expand_grid(args.grid, args.seeds, config=args.config, overrides=overrides)
    sweep_dir = pathlib.Path(args.sweep_dir) if args.sweep_dir else default_sweep_dir(args.config, overrides)
    print(f"sweep {args.config}: {len(runs)} runs in {sweep_dir}", file=sys.stderr)
    results = run_sweep(args.config, overrides, runs, sweep_dir, args.data_dir)
    table = aggregate(sweep_dir, args.metric)
    print((sweep_dir / "results.md").read_text(), end="")
    names = ["results.csv", "results.md", *(p.name for p in table["plots"])]
    print(f"results: {sweep_dir}/{', '.join(names)}", file=sys.stderr)
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        print(
            f"seqjax: {len(failed)} of {len(runs)} runs failed (see <run>/FAILED in {sweep_dir}); "
            "the same command retries them",
            file=sys.stderr,
        )
        return 1
    return 0
