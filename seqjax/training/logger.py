"""Run-directory logging: ``metrics.jsonl``, TensorBoard events, a progress bar."""

from __future__ import annotations

import json
import math
import pathlib
import sys
from collections.abc import Callable
from typing import Any


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def parse_rows(path: pathlib.Path, warn: Callable[[str], None] | None = _warn) -> tuple[list[dict], bool]:
    """The rows of a ``metrics.jsonl`` and whether it was whole. A line that is not a JSON
    row (the torn last line of a process killed mid-write, a full disk) is dropped, with a
    one-line ``warn``ing."""
    rows, torn = [], []
    lines = path.read_text(errors="replace").split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if isinstance(row, dict) and "step" in row and "split" in row:
                rows.append(row)
                continue
        except ValueError:
            pass
        torn.append(i)
    if torn and warn is not None:
        last = len(lines) - (lines[-1] == "")
        where = "its last line" if torn == [last] else f"line(s) {', '.join(map(str, torn))}"
        warn(f"{path}: {where} is not a whole JSON row (a write cut short); dropped")
    return rows, not torn and lines[-1] == ""


class MetricLogger:
    """Appends one JSON object a line to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    Rows: ``{"step", "epoch", "split", "loss", <task metrics>, "tokens_per_s", ...}``, one
    per ``(step, split)``: writing a row again (a rerun of a finished run's final
    evaluation, an evaluation redone on resume) replaces the earlier one. A torn line left
    by a killed process is dropped when the logger opens the file.
    """

    def __init__(self, workdir: pathlib.Path, enabled: bool = True, warn: Callable[[str], None] = _warn):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self._tb = None
        self._keys: set[tuple[int, str]] = set()  # (step, split) of the rows in the file
        if enabled and self.path.exists():
            rows, whole = parse_rows(self.path, warn)
            if not whole:
                self._rewrite(rows)
            self._keys = {(r["step"], r["split"]) for r in rows}
        if enabled:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(workdir / "tb"))
            except ImportError:  # TensorBoard is optional
                self._tb = None

    def write(self, step: int, epoch: int, split: str, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "epoch": epoch, "split": split, **{k: _clean(v) for k, v in metrics.items()}}
        if (step, split) in self._keys:
            rows, _ = parse_rows(self.path, None)
            self._rewrite([r for r in rows if (r["step"], r["split"]) != (step, split)])
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self._keys.add((step, split))
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{split}/{k}", v, step)
            self._tb.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint we restart from (all of them
        when there is none: ``step`` 0)."""
        if not (self.enabled and self.path.exists()):
            return
        rows, whole = parse_rows(self.path, None)
        kept = [r for r in rows if r["step"] <= step]
        if len(kept) < len(rows) or not whole:
            self._rewrite(kept)
        self._keys = {(r["step"], r["split"]) for r in kept}

    def _rewrite(self, rows: list[dict]) -> None:
        """``metrics.jsonl`` replaced by ``rows`` at once (a kill leaves the old file or the new)."""
        from seqjax.training.rundir import atomic_write

        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def progress_bar(total: int, initial: int, mode: str):
    """A tqdm bar on stderr (``mode``: auto = only when stderr is a terminal)."""
    from tqdm.auto import tqdm

    disable = mode == "off" or (mode == "auto" and not sys.stderr.isatty())
    return tqdm(total=total, initial=initial, disable=disable, dynamic_ncols=True, unit="step")


def read_metrics(workdir: pathlib.Path) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (a torn line dropped with a warning)."""
    p = pathlib.Path(workdir) / "metrics.jsonl"
    return parse_rows(p)[0] if p.exists() else []
