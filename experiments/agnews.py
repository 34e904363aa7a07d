"""AG News topic classification (4 classes) with embedding + RNN classifiers.

    seqjax train agnews:simple-rnn          # the Keras notebook's first model: SimpleRNN, no masking
    seqjax train agnews:bilstm-2x64
    seqjax train agnews:best --workdir ckpt/agnews-best
    seqjax classify ckpt/agnews-best "Stocks fell as oil prices rose"

Data: ``$SEQJAX_DATA/ag_news/{train,test}.csv``; the offline train.csv is a 20,000-row
subset, so 18,000 train / 2,000 valid (held out by `seed`) / 7,600 test.
Results and the TF-IDF baseline: experiments/results/agnews.md.

Keys beyond the shared ones (seqjax/config.py OPTIONS):
  data.vocab_size    vocabulary size, <pad> and <unk> included (0: no cap)
  data.min_freq      leave out training words rarer than this
  data.max_len       tokens kept per text (longer texts are truncated)
  data.buckets       padded lengths of the batches (bucket boundaries) below data.max_len;
                     data.max_len is always the last one. [] = one shape, no bucketing
  data.mask          feed the true lengths to the RNN (Keras mask_zero=True); false: the
                     RNN reads the right padding to the end of the batch
  data.on_error      rows without text or unreadable CSV lines: raise (file and row, exit 3) |
                     skip (left out, counted)
  model.embed        embedding width
  model.embed_dropout  dropout on embedding channels, one mask per text (SpatialDropout1D)
  model.pooling      last (last valid state; bidirectional: forward at the last valid step
                     + backward at step 0) | mean | max (over the valid steps)
"""
from seqjax.config import Preset, base_config, with_preset

PRESETS = {
    "simple-rnn": Preset(
        "embedding 64 -> SimpleRNN (Elman tanh) 16, last state, no masking "
        "(the Keras notebook's first model)",
        {"data.mask": False},
    ),
    "simple-rnn-masked": Preset("simple-rnn with masking (Keras mask_zero=True)"),
    "lstm": Preset("embedding 64 -> LSTM 8, masked", {"model.cell": "lstm", "model.hidden": 8}),
    "bilstm-2x64": Preset(
        "embedding 128 -> two bidirectional LSTM layers of 64, masked",
        {"model.cell": "lstm", "model.hidden": 64, "model.layers": 2, "model.bidirectional": True,
         "model.embed": 128, "train.epochs": 3},
    ),
    "best": Preset(
        "embedding 128 -> BiGRU 64, max pooling, dropout 0.5, adam + cosine, 3 epochs; "
        "the one to beat TF-IDF",
        {"data.min_freq": 2, "data.vocab_size": 30000, "model.cell": "gru", "model.hidden": 64,
         "model.bidirectional": True, "model.embed": 128, "model.pooling": "max", "model.dropout": 0.5,
         "model.embed_dropout": 0.5, "optim.lr": 3e-3, "optim.clip_norm": 1.0, "schedule.name": "cosine",
         "schedule.warmup_steps": 100, "train.epochs": 3},
    ),
    "tiny": Preset(
        "seconds on CPU, for tests and smoke checks",
        {"model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
         "data.max_examples": 256, "data.valid_fraction": 64, "data.vocab_size": 2000, "data.max_len": 32,
         "data.buckets": [16], "data.batch_size": 16, "data.eval_batch_size": 64, "model.cell": "lstm",
         "model.hidden": 16, "model.embed": 16, "optim.lr": 1e-2, "train.epochs": 2, "train.log_every": 4},
    ),
}


def base():
    """The simple-rnn-masked preset: the shared starting point of every preset."""
    c = base_config()
    c.task = "classify"
    c.data.update(dict(
        source="ag_news", batch_size=64, eval_batch_size=256, vocab_size=20000, min_freq=1,
        valid_fraction=2000, max_len=128, buckets=[32, 40, 48, 64], mask=True, on_error="raise",
    ))
    c.model.update(dict(cell="rnn", hidden=16, layers=1, embed=64, embed_dropout=0.0, pooling="last"))
    c.optim.update(dict(name="adam", lr=1e-3))
    c.train.update(dict(epochs=5, log_every=50))
    return c


def get_config(preset: str = "simple-rnn"):
    return with_preset(base(), PRESETS, preset)
