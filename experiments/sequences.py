"""Sequence basics: many-to-one recurrent models on float sequences [N, T, D] (no download).

    seqjax train                       # = sequences:parity, about a minute on a 2-core CPU
    seqjax train sequences:ar
    seqjax train sequences:padding     # parity without masking (zero padding read to the end)

Keys beyond the shared ones (seqjax/config.py OPTIONS):
  data.problem      parity | ar
  data.n_train      training examples generated (data.max_examples caps it)
  data.n_eval       examples in each of valid and test
  data.min_len      shortest training sequence
  data.max_len      longest training sequence (parity) or context window (ar)
  data.test_max_len parity: the test split also holds lengths max_len+1..test_max_len
  data.mask         feed true lengths to the RNN (masking) or read zero padding to the end
  data.ar_coeffs    AR coefficients a_1..a_n
  data.noise_std    AR innovation std (its square is the MSE floor)
"""
from seqjax.config import Preset, base_config, with_preset

PRESETS = {
    "parity": Preset("LSTM 64 on +-1 bit strings of length 1-20, tested up to 30 (held-out lengths), masked"),
    "ar": Preset(
        "LSTM 32 one-step forecasting of an AR(3) process, context 30; MSE vs noise variance",
        {"data.problem": "ar", "data.max_len": 30, "model.hidden": 32, "schedule.name": "cosine",
         "schedule.warmup_steps": 100, "train.epochs": 8},
    ),
    "padding": Preset(
        "parity without masking: the RNN reads the zero padding to the end", {"data.mask": False}
    ),
    "tiny": Preset(
        "seconds on CPU, for tests and smoke checks",
        {"model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
         "data.n_train": 512, "data.n_eval": 128, "data.max_len": 8, "data.test_max_len": 10,
         "data.batch_size": 32, "model.hidden": 16, "train.epochs": 2, "train.log_every": 4},
    ),
}


def base():
    """The parity preset: the shared starting point of every preset."""
    c = base_config()
    c.task = "sequences"
    c.data.update(
        dict(
            problem="parity", n_train=20000, n_eval=4000, min_len=1, max_len=20, test_max_len=30,
            mask=True, ar_coeffs=[0.6, -0.4, 0.2], noise_std=1.0, batch_size=64,
        )
    )
    c.model.update(dict(cell="lstm", hidden=64, layers=1))
    c.optim.update(dict(name="adam", lr=3e-3, clip_norm=1.0))
    c.train.update(dict(epochs=10, log_every=50))
    return c


def get_config(preset: str = "parity"):
    return with_preset(base(), PRESETS, preset)
