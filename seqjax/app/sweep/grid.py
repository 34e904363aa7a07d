"""A sweep's grid: ``--grid`` axes x seeds as :class:`RunSpec` objects, each named by its point
(``model.cell=gru,seed=1``, the run directory's name), and the names of the files a sweep
writes."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from seqjax import config as config_lib
from seqjax.errors import UsageError

#: a run directory's summary, failure line and traceback; the sweep directory's record of itself
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
        return ",".join(f"{k}={safe_value(v)}" for k, v in self.point) or "(base)"


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


def safe_value(text: str) -> str:
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
        names = [safe_value(v) for v in values]
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
            name = ",".join([f"{k}={safe_value(v)}" for k, v in point] + [f"seed={seed}"])
            runs.append(RunSpec(name=name, point=tuple(point), seed=seed))

    if config is not None:
        for run in runs[: len(points)]:  # seeds cannot make a point invalid
            resolve_run(config, overrides, run)
    return runs


def resolve_run(config: str, overrides: Sequence[str], run: RunSpec):
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
