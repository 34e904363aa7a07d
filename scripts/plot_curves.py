"""Learning curves of run directories: the per-epoch train and valid metric.

python scripts/plot_curves.py ckpt/run-a ckpt/run-b --metric ppl --out curves.png [--labels A B]
python scripts/plot_curves.py RUN --table          # print the per-epoch table (Markdown)
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from seqjax.training.logger import read_metrics  # noqa: E402


def per_epoch(rows, split, metric):
    """``{epoch: value}``: the last row of ``split`` in each epoch."""
    return {r["epoch"]: r[metric] for r in rows if r["split"] == split and metric in r}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--metric", default="ppl")
    ap.add_argument("--labels", nargs="*")
    ap.add_argument("--out")
    ap.add_argument("--title", default="")
    ap.add_argument("--log", action="store_true", help="log-scale y axis")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    labels = args.labels or [pathlib.Path(r).name for r in args.runs]
    if args.table:
        for run, label in zip(args.runs, labels):
            rows = read_metrics(pathlib.Path(run))
            tr, va = per_epoch(rows, "train_epoch", args.metric), per_epoch(rows, "valid", args.metric)
            print(f"\n{label}\n\n| epoch | train {args.metric} | valid {args.metric} |\n| --- | --- | --- |")
            for e in sorted(va):
                print(f"| {e} | {tr.get(e, float('nan')):.2f} | {va[e]:.2f} |")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (run, label) in enumerate(zip(args.runs, labels)):
            rows = read_metrics(pathlib.Path(run))
            color = f"C{i}"
            for split, style in (("train_epoch", "--"), ("valid", "-")):
                pts = per_epoch(rows, split, args.metric)
                if pts:
                    name = "train" if split == "train_epoch" else "valid"
                    ax.plot(
                        list(pts), list(pts.values()), style, color=color, marker=".", label=f"{label} {name}"
                    )
        ax.set_xlabel("epoch")
        ax.set_ylabel(args.metric)
        if args.log:
            ax.set_yscale("log")
        ax.set_title(args.title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
