"""Task adapters: how each kind of experiment feeds the one training loop.

Task modules are imported lazily so that ``import seqjax`` stays light.
"""
from __future__ import annotations

import importlib

from seqjax.errors import UsageError

#: ``cfg.task`` -> "module:Class"
TASKS = {
    "sequences": "seqjax.tasks.sequences:SequenceTask",
    "lm": "seqjax.tasks.lm:LanguageModelTask",
    "classify": "seqjax.tasks.classify:ClassifyTask",
    "translate": "seqjax.tasks.translate:TranslateTask",
}


def task_class(name: str):
    """The Task subclass registered as ``name``."""
    if name not in TASKS:
        raise UsageError(f"task={name!r}: choose one of {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_task(cfg, data_dir=None):
    """Instantiate the task named by ``cfg.task`` (loads its data)."""
    return task_class(cfg.task)(cfg, data_dir)
