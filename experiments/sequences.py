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
from seqjax.config import base_config

PRESETS = {
    "parity": "LSTM 64 on +-1 bit strings of length 1-20, tested up to 30 (held-out lengths), masked",
    "ar": "LSTM 32 one-step forecasting of an AR(3) process, context 30; MSE vs noise variance",
    "padding": "parity without masking: the RNN reads the zero padding to the end",
    "tiny": "seconds on CPU, for tests and smoke checks",
}


def get_config(preset: str):
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
    if preset == "ar":
        c.data.update(dict(problem="ar", max_len=30, n_train=20000))
        c.model.hidden = 32
        c.optim.lr = 3e-3
        c.schedule.update(dict(name="cosine", warmup_steps=100))
        c.train.epochs = 8
    elif preset == "padding":
        c.data.mask = False
    elif preset == "tiny":
        c.data.update(dict(n_train=512, n_eval=128, max_len=8, test_max_len=10, batch_size=32))
        c.model.hidden = 16
        c.train.update(dict(epochs=2, log_every=4))
    return c
