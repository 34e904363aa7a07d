"""An example user hook module (docs/hooks.md): run it with
``--set 'train.hooks=["userhooks:every_two", "userhooks:at_end"]'``."""
from seqjax.training.hooks import hook

#: what the hooks saw, (event, step), in order (the tests read it)
SEEN: list[tuple[str, int]] = []


@hook(every=2)
def every_two(info):
    """A step hook: every second step."""
    SEEN.append(("step", info.step))


@hook(on="end")
def at_end(info):
    """Once, after the final evaluation: ``info.metrics`` is the summary."""
    SEEN.append(("end", info.metrics["steps"]))
