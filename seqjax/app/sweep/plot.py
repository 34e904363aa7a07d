"""The plot of a sweep's table (matplotlib, imported when a plot is drawn: ``pip install
'seqjax[plot]'``)."""

from __future__ import annotations

import pathlib
import re
import sys

#: the figure formats :func:`plot_table` writes (raster for a quick look, vector for a paper)
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


def plot_table(table: dict, path: pathlib.Path) -> list[pathlib.Path]:
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
