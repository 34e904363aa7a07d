"""Task adapters: how each kind of experiment feeds the one training loop.

Task modules are imported lazily so that ``import seqjax`` stays light.
"""
from __future__ import annotations

from seqjax import importpath
from seqjax.errors import DataError, UsageError

#: ``cfg.task`` -> "module:Class" (or the class itself, see :func:`register`); ``cfg.task`` may
#: also be any ``package.module:ClassName`` import path of a Task subclass
TASKS: dict[str, str | type] = {
    "sequences": "seqjax.tasks.many_to_one:SequenceTask",
    "lm": "seqjax.tasks.lm:LanguageModelTask",
    "classify": "seqjax.tasks.classify:ClassifyTask",
    "translate": "seqjax.tasks.translate:TranslateTask",
    "longrange": "seqjax.tasks.longrange:LongRangeTask",
}


def register(cls: type) -> str:
    """Register a user's Task subclass under its import path ``module:QualName`` (the value
    ``cfg.task`` then takes, and what ``config.json`` records); returns that name."""
    name = f"{cls.__module__}:{cls.__qualname__}"
    TASKS[name] = cls
    return name


def task_class(name: str):
    """The Task subclass registered as ``name``, or at the import path ``package.module:Class``."""
    target = TASKS.get(name) or TASKS.get(importpath.current_path(name), name if ":" in name else None)
    if target is None:
        raise UsageError(f"task={name!r}: choose one of {', '.join(t for t in TASKS if ':' not in t)} "
                         "or give a Task subclass as package.module:ClassName")
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    try:
        obj = importpath.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"task={name!r}: cannot import it ({err}); pass the class to seqjax.app.api.train / "
                         "load_run(task=...) or make the module importable") from None
    return obj


def make_task(cfg, data_dir=None):
    """Instantiate the task named by ``cfg.task`` (loads its data). An empty ``valid`` or
    ``test`` split is refused here, before any training (:class:`DataError`, exit 3): its
    metrics would be fake (a loss of 0) or crash the final report."""
    task = task_class(cfg.task)(cfg, data_dir)
    for split in ("valid", "test"):
        if next(iter(task.eval_batches(split)), None) is None:
            source = f"data.source={cfg.data.source}" if cfg.data.get("source") else cfg.get("experiment", "")
            raise DataError(
                f"{source}: the {split} split has no examples; give data.files.{split}, raise "
                f"data.{split}_fraction or the generator's size (e.g. data.n_eval), or relax data.max_len"
            )
    return task
