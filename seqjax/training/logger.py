"""Run-directory logging: ``metrics.jsonl``, TensorBoard events, a progress bar."""

from __future__ import annotations

import json
import math
import pathlib
import sys
from typing import Any


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


class MetricLogger:
    """Appends one JSON object a line to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    Rows: ``{"step", "epoch", "split", "loss", <task metrics>, "tokens_per_s", ...}``.
    """

    def __init__(self, workdir: pathlib.Path, enabled: bool = True):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self._tb = None
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
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{split}/{k}", v, step)
            self._tb.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint we restart from."""
        if not (self.enabled and self.path.exists()):
            return
        rows = [
            ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
        ]
        self.path.write_text("".join(r + "\n" for r in rows))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def progress_bar(total: int, initial: int, mode: str):
    """A tqdm bar on stderr (``mode``: auto = only when stderr is a terminal)."""
    from tqdm.auto import tqdm

    disable = mode == "off" or (mode == "auto" and not sys.stderr.isatty())
    return tqdm(total=total, initial=initial, disable=disable, dynamic_ncols=True, unit="step")


def read_metrics(workdir: pathlib.Path) -> list[dict]:
    p = pathlib.Path(workdir) / "metrics.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.exists() else []
