"""Running a sweep: every run of the grid trained in its own directory, a finished one
skipped, an unfinished one resumed, a failed one recorded (``<run>/FAILED``) and retried by
the same command; all configs are checked before the first run trains."""

from __future__ import annotations

import json
import pathlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from seqjax import config as config_lib
from seqjax import importpath
from seqjax.app.sweep.grid import FAILED, SUMMARY, SWEEP_JSON, TRACEBACK, RunSpec, resolve_run
from seqjax.errors import UsageError


def default_sweep_dir(config: str, overrides: Sequence[str] = ()) -> pathlib.Path:
    cfg = config_lib.resolve(config, overrides)
    return pathlib.Path("ckpt") / f"sweep-{cfg.experiment}-{cfg.preset}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _check_existing(rundir: pathlib.Path, cfg) -> None:
    """Refuse to mix results: an existing run must have been made with the same config."""
    path = rundir / "config.json"
    if not path.is_file():
        return
    old = _flat(importpath.current_paths(json.loads(path.read_text())))  # old module paths: today's
    new = _flat(json.loads(config_lib.to_json(cfg)))
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise UsageError(
            f"{rundir}: made with a different config ({k}: {old.get(k)!r} there, {new.get(k)!r} now"
            + (f", and {len(diff) - 1} more" if len(diff) > 1 else "")
            + "); use another --sweep-dir or remove that run"
        )


def run_sweep(
    config: str,
    overrides: Sequence[str],
    runs: Sequence[RunSpec],
    sweep_dir: str | pathlib.Path,
    data_dir: str | None = None,
    *,
    train_fn: Callable | None = None,
    echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> list[dict]:
    """Train every run not finished yet; returns ``[{name, status, error}]`` in run order.

    ``status`` is ``done`` (trained now), ``skipped`` (had a summary.json) or ``failed``.
    ``train_fn(cfg, workdir, data_dir, echo=...)`` defaults to
    :func:`seqjax.training.loop.train` (looked up at call time).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    cfgs = [resolve_run(config, overrides, r) for r in runs]
    for run, cfg in zip(runs, cfgs):  # all checks before the first run trains
        _check_existing(sweep_dir / run.name, cfg)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _write_sweep_json(sweep_dir, config, overrides, runs)

    if train_fn is None:
        from seqjax.training import loop

        train_fn = loop.train
    results = []
    n = len(runs)
    for i, (run, cfg) in enumerate(zip(runs, cfgs), 1):
        rundir = sweep_dir / run.name
        if (rundir / SUMMARY).is_file():
            echo(f"[{i}/{n}] {run.name}: done before, skipped")
            results.append({"name": run.name, "status": "skipped", "error": ""})
            continue
        rundir.mkdir(parents=True, exist_ok=True)
        for stale in (FAILED, TRACEBACK):
            (rundir / stale).unlink(missing_ok=True)
        echo(f"[{i}/{n}] {run.name}: training in {rundir}")
        t0 = time.perf_counter()
        try:
            summary = train_fn(cfg, rundir, data_dir, echo=echo)
        except Exception as e:  # noqa: BLE001 — a failed run is recorded, the sweep goes on
            line = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
            (rundir / FAILED).write_text(line + "\n")
            (rundir / TRACEBACK).write_text(traceback.format_exc())
            echo(f"[{i}/{n}] {run.name}: FAILED: {line}")
            results.append({"name": run.name, "status": "failed", "error": line})
            continue
        finally:
            _clear_jax_caches()
        metric = summary.get("main_metric")
        best = summary.get("best", {})
        shown = " ".join(
            f"{split} {metric}={best[split][metric]:.4g}"
            for split in ("valid", "test")
            if metric in best.get(split, {})
        )
        echo(f"[{i}/{n}] {run.name}: done in {time.perf_counter() - t0:.1f}s {shown}")
        results.append({"name": run.name, "status": "done", "error": ""})
    return results


def _clear_jax_caches() -> None:
    """Each run builds fresh jitted steps; drop the old executables between runs."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()


def _write_sweep_json(sweep_dir: pathlib.Path, config, overrides, runs) -> None:
    """What the sweep is, for the table header and the run order; merged over reruns."""
    path = sweep_dir / SWEEP_JSON
    old = json.loads(path.read_text()) if path.is_file() else {}
    names = list(old.get("runs", []))
    names += [r.name for r in runs if r.name not in names]
    info = {
        "config": config,
        "overrides": list(overrides),
        "command": "seqjax sweep " + " ".join(_quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "sweep"
        else old.get("command", ""),
        "runs": names,
    }
    path.write_text(json.dumps(info, indent=2) + "\n")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
