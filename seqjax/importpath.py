"""Import paths as config values name them (``package.module:attr``), and the modules of
seqjax that moved.

Config values name code by import path: ``model.cell``, ``train.hooks``, ``train.extra_loss``
and ``task``. A run directory's ``config.json`` keeps the path the run was started with, so
a module that moves keeps its old name in :data:`MOVED`. Every place that imports a path
from a config goes through :func:`import_module`, and the run directory compares recorded
and new configs after :func:`current_paths`: a run started as
``train.extra_loss={"seqjax.activation_reg:ar": 2.0}`` resumes under a preset that says
``seqjax.core.activation_reg:ar``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: old module -> the module that holds its code now (a submodule of an old name follows it)
MOVED: dict[str, str] = {
    **{f"seqjax.{m}": f"seqjax.core.{m}" for m in (
        "cellbase", "cells", "mincells", "paracells", "recurrence", "newton", "layers", "weight_drop",
        "embedding_dropout", "attention", "losses", "activation_reg", "decoding", "evaluation")},
    "seqjax.interop": "seqjax.models.interop",
    "seqjax.models.regressor": "seqjax.models.many_to_one",
    **{f"seqjax.{m}": f"seqjax.app.{m}" for m in ("cli", "commands", "api", "bench", "sweep")},
    "seqjax._malloc": "seqjax.runtime.malloc",
    "seqjax._xla_flags": "seqjax.runtime.xla_flags",
    "seqjax._supervisor": "seqjax.runtime.supervisor",
    "seqjax.data.tatoeba": "seqjax.data.pairs",
    "seqjax.tasks.sequences": "seqjax.tasks.many_to_one",
}


def current(module: str) -> str:
    """``module``'s name today: ``seqjax.cells`` -> ``seqjax.core.cells``; a name that did
    not move (a user's module, ``seqjax.config``) comes back as it is."""
    for _ in range(len(MOVED) + 1):  # a module that moved twice follows both entries
        head, rest = module, ""
        while head and head not in MOVED:
            head, _, tail = head.rpartition(".")
            rest = f".{tail}{rest}"
        if not head:
            return module
        module = MOVED[head] + rest
    raise ValueError(f"seqjax.importpath.MOVED has a cycle through {module!r}")


def current_path(path: str) -> str:
    """``package.module:attr`` with the module's name today (:func:`current`); a string that
    is no import path comes back as it is."""
    module, sep, attr = path.partition(":")
    if not (sep and module and attr):
        return path
    return f"{current(module)}:{attr}"


def current_paths(value: Any) -> Any:
    """A JSON value (a config as ``config.json`` holds it) with every import path in it,
    string values and mapping keys alike, named by :func:`current_path`."""
    if isinstance(value, str):
        return current_path(value)
    if isinstance(value, dict):
        return {current_path(k): current_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [current_paths(v) for v in value]
    return value


def import_module(module: str) -> ModuleType:
    """``importlib.import_module`` of ``module``'s name today (:func:`current`)."""
    return importlib.import_module(current(module))
