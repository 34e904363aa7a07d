"""Long-range tasks, generated (no files): the adding problem, copy memory, selective copying.

    seqjax train longrange                    # = longrange:adding, T = 200
    seqjax train longrange:adding --set model.cell=paragru --set model.backend=newton
    seqjax train longrange:copy --set data.length=1000
    seqjax sweep longrange:adding --grid model.cell=lstm,gru,mingru,paragru --grid model.backend=scan,newton

Every report carries ``baseline``, the loss of the trivial predictor: adding 1/6 (MSE),
copy 10 log 8 / (T + 20) (cross-entropy over all steps), selective-copy log 8 (per answer
symbol). seqjax/tasks/longrange.py defines the problems; backend=newton solves the
recurrence parallel in time (seqjax/core/newton.py); results: experiments/results/longrange.md.

Keys beyond the shared ones (seqjax/config.py SCHEMA):
  data.problem    adding | copy | selective-copy
  data.length     T, the span to remember (posed for 100..16384)
  data.n_tokens   copy tasks: symbols to recall (copy 10, selective-copy 16)
  data.n_symbols  copy tasks: alphabet size A (8)
  data.n_train    training rows per epoch, drawn fresh every epoch
  data.n_eval     rows of each of valid and test
"""
from seqjax.config import Preset, base_config, with_preset

PRESETS = {
    "adding": Preset("adding problem at T = 200: GRU 64, Adam 3e-3; test MSE against the 1/6 baseline"),
    "copy": Preset(
        "copy memory: recall 10 symbols of 8 after T = 100 blanks; baseline 10 log 8 / (T + 20)",
        {"data.problem": "copy", "data.length": 100, "data.n_tokens": 10},
    ),
    "selective-copy": Preset(
        "selective copying: 16 symbols of 8 scattered among T = 200 blanks, recalled in order; "
        "baseline log 8",
        {"data.problem": "selective-copy", "data.length": 200, "data.n_tokens": 16},
    ),
    "tiny": Preset(
        "seconds on CPU, for tests and smoke checks: the adding problem at T = 16",
        {"model.eval_unroll": 1, "data.length": 16, "data.n_train": 256, "data.n_eval": 64,
         "data.batch_size": 32, "model.hidden": 8, "train.epochs": 1, "train.log_every": 4},
    ),
}


def base():
    """The adding preset: the shared starting point of every preset."""
    c = base_config()
    c.task = "longrange"
    c.data.update(dict(problem="adding", length=200, n_tokens=10, n_symbols=8, n_train=6400, n_eval=1000,
                       batch_size=64))
    c.model.update(dict(cell="gru", hidden=64, layers=1))
    c.optim.update(dict(name="adam", lr=3e-3, clip_norm=1.0))
    c.train.update(dict(epochs=10, log_every=50))
    return c


def get_config(preset: str = "adding"):
    return with_preset(base(), PRESETS, preset)
