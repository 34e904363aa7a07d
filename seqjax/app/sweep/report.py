"""A sweep's report: every run's ``summary.json`` read into ``results.csv`` (a row per run),
``results.md`` (a row per grid point: mean ± sample std over seeds) and the plot."""

from __future__ import annotations

import csv
import json
import math
import pathlib
import statistics

from seqjax.app.sweep.grid import FAILED, SUMMARY, SWEEP_JSON, parse_run_name
from seqjax.app.sweep.plot import plot_table
from seqjax.errors import UsageError


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
    table["plots"] = plot_table(table, sweep_dir / "results.png") if plot and done else []
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
