"""Hooks that end a run once its validation metric reaches a target, so a solved run
does not spend the rest of its step budget (docs/hooks.md)::

    seqjax train longrange:adding --set data.length=800 --set train.steps=3000 \\
        --set 'train.hooks=["experiments.hooks.stop_at:adding_solved"]'

The run stops after the evaluation that reaches the target, with a checkpoint; the final
test report then scores the params of ``train.final_params`` (the best evaluation's by
default), as after early stopping.
"""
from seqjax.training.hooks import Hook


def stop_at(target: float, metric: str = "loss") -> Hook:
    """An ``eval`` hook: request a stop once the validation ``metric`` (a key of the valid
    metrics, a float) is <= ``target``. A metric the task does not report never stops."""

    def fn(info):
        value = (info.metrics or {}).get(metric)
        if value is not None and float(value) <= target:
            info.request_stop(f"stop_at: valid {metric} {float(value):.4g} <= {target:g} at step {info.step}")

    return Hook(fn, on="eval", name=f"stop_at({metric}<={target:g})")


#: the adding problem counted as solved (experiments/longrange.py): valid MSE <= 0.01,
#: against the trivial predictor's 1/6
adding_solved = stop_at(0.01, "mse")
