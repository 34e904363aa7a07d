"""Checkpoint averaging for a translate run: score single checkpoints and their averages.

    python scripts/translate_average.py WORKDIR [--split valid] [--beam 5]

Scores (BLEU per pair and multi-reference, chrF) the run's best checkpoint, each kept
``checkpoints/<step>`` and the element-wise mean of the params of (a) the kept checkpoints
and (b) the kept checkpoints plus the best one. One JSON line per candidate. Choose on
``--split valid``, then score the chosen one on test.
"""

from __future__ import annotations

import argparse
import json

from seqjax.training.checkpoint import CheckpointReader, average_params
from seqjax.training.inference import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--split", default="valid", choices=["valid", "test"])
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--only", default="", help="candidate names to score, separated by ';' (default: all)")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    run = load_run(args.workdir, data_dir=args.data_dir)
    task = run.engine.task
    readable = CheckpointReader(run.workdir).all_readable("latest", run.params)
    kept = dict(sorted((step, params) for step, params, _ in readable))

    cands = {f"best@{run.step}": run.params, **{f"step{s}": p for s, p in kept.items()}}
    if len(kept) > 1:
        cands["avg(" + ",".join(map(str, kept)) + ")"] = average_params(list(kept.values()))
    cands["avg(best," + ",".join(map(str, kept)) + ")"] = average_params([run.params, *kept.values()])
    only = set(filter(None, args.only.split(";")))
    for name, params in cands.items():
        if only and name not in only:
            continue
        r = task.evaluate_translation(params, args.split, (args.beam,))[
            f"beam{args.beam}" if args.beam > 1 else "greedy"
        ]
        print(json.dumps({"candidate": name, "split": args.split, "beam": args.beam, **r}), flush=True)


if __name__ == "__main__":
    main()
