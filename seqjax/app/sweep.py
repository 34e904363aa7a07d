"""Ablation sweeps: a grid of config overrides x seeds, one run directory each, one table.

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
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from seqjax import config as config_lib
from seqjax.errors import UsageError

SUMMARY, FAILED, TRACEBACK, SWEEP_JSON = "summary.json", "FAILED", "traceback.txt", "sweep.json"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a grid point and a seed.

    ``point`` holds ``(key, text)`` pairs in ``--grid`` order, exactly as typed (the text
    is what ``--set key=text`` would get); ``values`` the same parsed with
    :func:`seqjax.config.parse_value`.
    """

    name: str  # run directory name, e.g. "model.cell=gru,seed=1"
    point: tuple[tuple[str, str], ...]
    seed: int

    @property
    def values(self) -> dict[str, Any]:
        return {k: config_lib.parse_value(v) for k, v in self.point}

    @property
    def overrides(self) -> list[str]:
        """``key=value`` strings for :func:`seqjax.config.resolve`, seed last."""
        return [f"{k}={v}" for k, v in self.point] + [f"seed={self.seed}"]

    @property
    def point_name(self) -> str:
        """The name without the seed: runs with the same point_name are averaged."""
        return ",".join(f"{k}={_safe(v)}" for k, v in self.point) or "(base)"


# --------------------------------------------------------------------------- the grid


def _split_values(text: str) -> list[str]:
    """``rnn,lstm`` -> [rnn, lstm]; commas inside brackets stay: ``[256,128],64`` -> 2 values."""
    out, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "[(") - (ch in ")]")
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _safe(text: str) -> str:
    """A grid value as it appears in a run name: no ``/``, ``,``, ``=``, brackets or spaces.

    ``[256, 128]`` -> ``256_128``; ``a/b`` -> ``a-b``.
    """
    s = re.sub(r"[\[\]()'\"\s]", "", text.strip())
    s = s.replace(",", "_")
    return re.sub(r"[^A-Za-z0-9._+\-]", "-", s) or "-"


def parse_grid(grid_specs: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``["model.cell=rnn,gru", ...]`` -> ``[("model.cell", ["rnn", "gru"]), ...]``."""
    axes: list[tuple[str, list[str]]] = []
    for spec in grid_specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UsageError(f"--grid {spec!r}: expected key=v1,v2,..., e.g. --grid model.cell=rnn,lstm,gru")
        values = _split_values(raw)
        if any(v == "" for v in values):
            raise UsageError(f"--grid {spec!r}: empty value; separate values with single commas")
        if any(key == k for k, _ in axes):
            raise UsageError(f"--grid {key}: given twice; put all its values in one --grid")
        names = [_safe(v) for v in values]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UsageError(f"--grid {key}: value {dup[0]!r} appears twice")
        axes.append((key, values))
    return axes


def expand_grid(
    grid_specs: Sequence[str],
    seeds: int = 1,
    *,
    config: str | None = None,
    overrides: Sequence[str] = (),
) -> list[RunSpec]:
    """The Cartesian product of the ``--grid`` axes, times ``seeds`` seeds.

    Runs are ordered seed-major (every point for the first seed, then the second, ...)
    so that a sweep cut short still has one complete comparison. Seeds are
    ``base, base+1, ...`` with ``base`` the config's ``seed`` (0 unless ``--set seed=``);
    a ``--grid seed=3,7`` axis gives the seeds explicitly instead (then ``seeds`` must be 1).

    With ``config`` ("name:preset"), every point is resolved up front, so an unknown key
    or a bad value raises :class:`UsageError` (exit 2) before anything trains.
    """
    import itertools

    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: must be >= 1")
    axes = parse_grid(grid_specs)
    seed_axis = [vals for key, vals in axes if key == "seed"]
    axes = [(k, v) for k, v in axes if k != "seed"]
    base_cfg = None
    if config is not None:
        base_cfg = config_lib.resolve(config, overrides)
        known = config_lib.flat_keys(base_cfg)
        for key, _ in axes:
            if key not in known:
                raise config_lib.unknown_key("--grid", key, known)
    if seed_axis:
        if seeds != 1:
            raise UsageError("--grid seed=... and --seeds N both give the seeds; use one of them")
        try:
            seed_list = [int(s) for s in seed_axis[0]]
        except ValueError:
            raise UsageError(f"--grid seed={','.join(seed_axis[0])}: seeds are integers") from None
    else:
        base = int(base_cfg.seed) if base_cfg is not None else 0
        seed_list = list(range(base, base + seeds))

    points = list(itertools.product(*[[(k, v) for v in vals] for k, vals in axes]))
    runs = []
    for seed in seed_list:
        for point in points:
            name = ",".join([f"{k}={_safe(v)}" for k, v in point] + [f"seed={seed}"])
            runs.append(RunSpec(name=name, point=tuple(point), seed=seed))

    if config is not None:
        for run in runs[: len(points)]:  # seeds cannot make a point invalid
            _resolve_run(config, overrides, run)
    return runs


def _resolve_run(config: str, overrides: Sequence[str], run: RunSpec):
    """The config of one run; errors about a grid key say ``--grid``, not ``--set``."""
    try:
        return config_lib.resolve(config, [*overrides, *run.overrides])
    except UsageError as e:
        msg = str(e)
        if any(msg.startswith(f"--set {k}") for k, _ in run.point):
            msg = "--grid " + msg[len("--set ") :]
        elif not msg.startswith("--"):
            msg = f"--grid point {run.point_name}: {msg}"
        raise UsageError(msg) from None


# --------------------------------------------------------------------------- running


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
    old = _flat(json.loads(path.read_text()))
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
    cfgs = [_resolve_run(config, overrides, r) for r in runs]
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


# --------------------------------------------------------------------------- aggregation


def parse_run_name(name: str) -> tuple[list[tuple[str, str]], int] | None:
    """``model.cell=gru,seed=1`` -> ``([("model.cell", "gru")], 1)``; None if not a run name."""
    pairs = []
    for part in name.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            return None
        pairs.append((key, value))
    if not pairs or pairs[-1][0] != "seed" or not re.fullmatch(r"-?\d+", pairs[-1][1]):
        return None
    return pairs[:-1], int(pairs[-1][1])


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1); std is None for fewer than two values."""
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def _num(x: float | None, ref: float | None = None) -> str:
    """1 decimal from 100 (perplexities), 4 down to 1e-3 (accuracies, losses), then 3 significant.

    ``ref`` (the mean, for a std) sets the scale, so ``0.9500 ± 0.0012`` lines up.
    """
    if x is None:
        return ""
    scale = abs(ref if ref is not None else x)
    if scale >= 100:
        return f"{x:.1f}"
    return f"{x:.4f}" if scale >= 1e-3 or scale == 0 else f"{x:.2e}"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return _num(mean) + (f" ± {_num(std, mean)}" if std is not None else "")


def collect(sweep_dir: str | pathlib.Path) -> list[dict]:
    """One record per run directory under ``sweep_dir``, in sweep order.

    Record: ``name, point [(key, text)], seed, status (ok|failed|unfinished), error,
    summary (dict or None)``.
    """
    sweep_dir = pathlib.Path(sweep_dir)
    order: list[str] = []
    if (sweep_dir / SWEEP_JSON).is_file():
        order = json.loads((sweep_dir / SWEEP_JSON).read_text()).get("runs", [])
    dirs = {d.name: d for d in sweep_dir.iterdir() if d.is_dir() and parse_run_name(d.name)}
    names = [n for n in order if n in dirs] + sorted(n for n in dirs if n not in order)
    records = []
    for name in names:
        d = dirs[name]
        point, seed = parse_run_name(name)
        rec = {"name": name, "point": point, "seed": seed, "summary": None, "error": ""}
        if (d / SUMMARY).is_file():
            rec["status"], rec["summary"] = "ok", json.loads((d / SUMMARY).read_text())
        elif (d / FAILED).is_file():
            rec["status"] = "failed"
            rec["error"] = ((d / FAILED).read_text().splitlines() or ["failed"])[0]
        else:
            rec["status"] = "unfinished"
        records.append(rec)
    return records


def aggregate(sweep_dir: str | pathlib.Path, metric: str | None = None, *, plot: bool = True) -> dict:
    """Write results.csv, results.md and results.png in ``sweep_dir``; returns the table.

    Returns ``{"metric", "keys", "runs": [csv rows], "points": [one dict per point with
    valid/test metric and loss mean/std, wall_s, tokens_per_s, n, failed, unfinished]}``.
    ``metric`` defaults to the task's main metric (``summary["main_metric"]``).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UsageError(f"sweep dir {sweep_dir} not found")
    records = collect(sweep_dir)
    if not records:
        raise UsageError(f"{sweep_dir}: no run directories (named like model.cell=gru,seed=0)")
    done = [r for r in records if r["summary"]]
    if metric is None:
        metric = next(
            (r["summary"].get("main_metric") for r in done if r["summary"].get("main_metric")), "loss"
        )
    available = sorted({k for r in done for s in ("valid", "test") for k in r["summary"]["best"].get(s, {})})
    if done and metric not in available:
        raise UsageError(f"--metric {metric}: not in the runs' summaries; available: {', '.join(available)}")

    keys: list[str] = []
    for r in records:
        keys += [k for k, _ in r["point"] if k not in keys]

    # results.csv: one row per run, every best-checkpoint metric
    metric_cols = [
        f"{split}_{k}"
        for split in ("valid", "test")
        for k in available
        if k != "tokens_per_s" and any(k in r["summary"]["best"].get(split, {}) for r in done)
    ]
    rows = []
    for r in records:
        s = r["summary"] or {}
        point = dict(r["point"])
        row = {
            "run": r["name"],
            **{k: point.get(k, "") for k in keys},
            "seed": r["seed"],
            "status": r["status"],
        }
        best = s.get("best", {})
        for col in metric_cols:
            split, _, k = col.partition("_")
            row[col] = best.get(split, {}).get(k, "")
        row.update(
            best_step=best.get("step", ""),
            steps=s.get("steps", ""),
            wall_s=s.get("wall_s", ""),
            train_tokens_per_s=s.get("train_tokens_per_s", ""),
            error=r["error"],
        )
        rows.append(row)
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # one entry per grid point, in sweep order
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        point = dict(r["point"])
        groups.setdefault(tuple(point.get(k, "") for k in keys), []).append(r)
    points = []
    for values, recs in groups.items():
        ok = [r["summary"] for r in recs if r["summary"]]
        entry = {
            "point": dict(zip(keys, values)),
            "n": len(ok),
            "failed": sum(r["status"] == "failed" for r in recs),
            "unfinished": sum(r["status"] == "unfinished" for r in recs),
            "seeds": [r["seed"] for r in recs if r["summary"]],
        }
        for split in ("valid", "test"):
            for k in dict.fromkeys([metric, "loss"]):
                vals = [s["best"].get(split, {}).get(k) for s in ok]
                entry[f"{split}_{k}"] = [v for v in vals if v is not None]
                entry[f"{split}_{k}_mean"], entry[f"{split}_{k}_std"] = _mean_std(vals)
        entry["wall_s_mean"], entry["wall_s_std"] = _mean_std([s.get("wall_s") for s in ok])
        entry["tokens_per_s_mean"], _ = _mean_std([s.get("train_tokens_per_s") for s in ok])
        points.append(entry)

    info = json.loads((sweep_dir / SWEEP_JSON).read_text()) if (sweep_dir / SWEEP_JSON).is_file() else {}
    experiment = next((r["summary"].get("experiment") for r in done), info.get("config", ""))
    table = {"metric": metric, "keys": keys, "runs": rows, "points": points, "experiment": experiment}
    (sweep_dir / "results.md").write_text(_markdown(table, info))
    table["plots"] = _plot(table, sweep_dir / "results.png") if plot and done else []
    return table


def _markdown(table: dict, info: dict) -> str:
    metric, keys = table["metric"], table["keys"]
    cols = [f"valid {metric}", f"test {metric}"] + (["valid loss", "test loss"] if metric != "loss" else [])
    head = (keys or ["point"]) + cols + ["train time (s)", "train tokens/s", "seeds", "failed"]
    lines = [
        f"Sweep `{table['experiment']}`"
        + (f", extra settings `{' '.join(info['overrides'])}`" if info.get("overrides") else "")
        + f": {metric} and loss of the best-validation checkpoint,"
        " mean ± sample std (ddof=1) over seeds.",
        "",
    ]
    if info.get("command"):
        lines += [f"Command: `{info['command']}`", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in table["points"]:
        cells = [p["point"][k] for k in keys] if keys else ["(base)"]
        for split in ("valid", "test"):
            cells.append(_pm(p[f"{split}_{metric}_mean"], p[f"{split}_{metric}_std"]))
        if metric != "loss":
            for split in ("valid", "test"):
                cells.append(_pm(p[f"{split}_loss_mean"], p[f"{split}_loss_std"]))
        t, dt = p["wall_s_mean"], p["wall_s_std"]
        cells.append("—" if t is None else f"{t:.1f}" + (f" ± {dt:.1f}" if dt is not None else ""))
        cells.append(f"{p['tokens_per_s_mean']:.0f}" if p["tokens_per_s_mean"] is not None else "—")
        cells.append(str(p["n"]) + (f" (+{p['unfinished']} unfinished)" if p["unfinished"] else ""))
        cells.append(str(p["failed"]))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in table["runs"] if r["status"] == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- `{r['run']}`: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


#: the figure formats :func:`_plot` writes (raster for a quick look, vector for a paper)
PLOT_FORMATS = ("png", "pdf", "svg")
PLOT_DPI = 200


def _wrap(text: str, width: int = 16) -> str:
    """``text`` broken after ``,`` ``=`` ``:`` ``.`` ``_`` ``/`` (a part longer than ``width``
    anywhere) into lines of at most ``width`` characters, so long grid values (import paths
    of cells) stay readable."""
    parts = [q for part in re.findall(r"[^,=:._/]*[,=:._/]?", text) if part
             for q in (part[i:i + width] for i in range(0, len(part), width))]
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _plot(table: dict, path: pathlib.Path) -> list[pathlib.Path]:
    """The metric per grid point, one panel per split (valid, test): the first grid axis on
    x, the second (and further) axes as series with a legend; each seed a point, the mean
    over seeds a marker with ± 1 std error bars. Written as ``path`` in every format of
    :data:`PLOT_FORMATS` (PNG at :data:`PLOT_DPI` dpi); returns the files written (none
    without matplotlib: one line says so)."""
    try:
        import matplotlib
    except ImportError:
        print("seqjax: matplotlib not installed; no plot (pip install 'seqjax[plot]')", file=sys.stderr)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, keys, points = table["metric"], table["keys"], table["points"]
    x_key, series_keys = (keys[0], keys[1:]) if keys else (None, [])
    xs = list(dict.fromkeys(p["point"][x_key] for p in points)) if x_key else ["(base)"]
    series = list(dict.fromkeys(tuple(p["point"][k] for k in series_keys) for p in points))
    width = 0.7 / max(len(series), 1)  # the series of one x value side by side within 0.7
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks = [_wrap(str(x)) for x in xs]
    longest = max((len(line) for t in ticks for line in t.splitlines()), default=0)
    rotate = longest > 8 or len(xs) > 6
    rows = max((t.count("\n") + 1 for t in ticks), default=1)
    panel_w = 0.8 + 0.55 * len(xs) * max(1.0, 0.5 * len(series))
    height = 3.6 + 0.15 * rows + (0.06 * longest if rotate else 0)
    fig, axes = plt.subplots(1, 2, sharey=True, layout="constrained", figsize=(max(6.4, 2 * panel_w), height))
    for ax, split in zip(axes, ("valid", "test")):
        for j, values in enumerate(series):
            color = colors[j % len(colors)]
            label = ", ".join(map(str, values)) if series_keys else "mean ± std over seeds"
            first = True
            for i, x in enumerate(xs):
                match = [p for p in points if (not x_key or p["point"][x_key] == x)
                         and tuple(p["point"][k] for k in series_keys) == values]
                if not match:
                    continue
                p, at = match[0], i + (j - (len(series) - 1) / 2) * width
                seeds = p[f"{split}_{metric}"]
                if seeds:
                    ax.scatter([at + width * 0.25] * len(seeds), seeds, s=12, color=color, alpha=0.45,
                               linewidths=0, zorder=2)
                mean, std = p[f"{split}_{metric}_mean"], p[f"{split}_{metric}_std"]
                if mean is not None:
                    ax.errorbar([at], [mean], yerr=[std or 0.0], fmt="o", color=color, capsize=4,
                                markersize=6, zorder=3, label=label if first else None)
                    first = False
        ax.set_xticks(range(len(xs)), ticks,
                      rotation=30 if rotate else 0, ha="right" if rotate else "center",
                      rotation_mode="anchor" if rotate else "default", fontsize=8)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_xlabel(x_key or "")
        ax.set_title(split, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    n = max((p["n"] for p in points), default=0)
    fig.suptitle(f"{table['experiment']}: {metric} of the best-validation checkpoint\n"
                 f"dots: the {n} seed{'s' if n != 1 else ''} of a point; marker and bars: mean ± std",
                 fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        title = ", ".join(series_keys) if series_keys else None
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8,
                   title=title, title_fontsize=8, frameon=False)
    written = []
    for fmt in PLOT_FORMATS:
        out = path.with_suffix(f".{fmt}")
        fig.savefig(out, dpi=PLOT_DPI)
        written.append(out)
    plt.close(fig)
    return written


# --------------------------------------------------------------------------- CLI


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
