"""AG News topic classification (4 classes) with embedding + RNN classifiers.

    seqjax train agnews:simple-rnn          # the seed's first model: SimpleRNN, no masking
    seqjax train agnews:bilstm-2x64
    seqjax train agnews:best --workdir ckpt/agnews-best
    seqjax classify ckpt/agnews-best "Stocks fell as oil prices rose"

Data: ``$SEQJAX_DATA/ag_news/{train,test}.csv``; the offline train.csv is a 20,000-row
subset, so 18,000 train / 2,000 valid (held out with the seed) / 7,600 test.
Results and the TF-IDF baseline: experiments/results/agnews.md.

Keys beyond the shared ones (seqjax/config.py OPTIONS):
  data.vocab_size    vocabulary size, <pad> and <unk> included (0: no cap)
  data.min_freq      leave out training words rarer than this
  data.valid_size    training rows held out for validation (an int, or a fraction < 1)
  data.max_len       tokens kept per text (longer texts are truncated)
  data.buckets       padded lengths of the batches (bucket boundaries) below data.max_len;
                     data.max_len is always the last one. [] = one shape, no bucketing
  data.mask          feed the true lengths to the RNN (Keras mask_zero=True); false: the
                     RNN reads the right padding to the end of the batch
  data.on_error      malformed CSV rows: raise (file:line error, exit 3) | skip (counted)
  model.embed        embedding width
  model.embed_dropout  dropout on embedding channels, one mask per text (SpatialDropout1D)
  model.pooling      last (last valid state; bidirectional: forward at the last valid step
                     + backward at step 0) | mean | max (over the valid steps)
"""
from seqjax.config import base_config

PRESETS = {
    "simple-rnn": "embedding 64 -> SimpleRNN (Elman tanh) 16, last state, no masking (the seed's first model)",
    "simple-rnn-masked": "simple-rnn with masking (Keras mask_zero=True)",
    "lstm": "embedding 64 -> LSTM 8, masked",
    "bilstm-2x64": "embedding 128 -> two bidirectional LSTM layers of 64, masked",
    "best": "embedding 128 -> BiGRU 64, max pooling, dropout 0.5, adam + cosine, 3 epochs; the one to beat TF-IDF",
    "tiny": "seconds on CPU, for tests and smoke checks",
}


def get_config(preset: str):
    c = base_config()
    c.task = "classify"
    c.data.update(dict(
        batch_size=64, eval_batch_size=256, vocab_size=20000, min_freq=1, valid_size=2000,
        max_len=128, buckets=[32, 40, 48, 64], mask=True, on_error="raise",
    ))
    c.model.update(dict(cell="rnn", hidden=16, layers=1, embed=64, embed_dropout=0.0, pooling="last"))
    c.optim.update(dict(name="adam", lr=1e-3))
    c.train.update(dict(epochs=5, log_every=50))
    if preset == "simple-rnn":
        c.data.mask = False
    elif preset == "simple-rnn-masked":
        pass
    elif preset == "lstm":
        c.model.update(dict(cell="lstm", hidden=8))
    elif preset == "bilstm-2x64":
        c.model.update(dict(cell="lstm", hidden=64, layers=2, bidirectional=True, embed=128))
        c.train.epochs = 3
    elif preset == "best":
        c.data.update(dict(min_freq=2, vocab_size=30000))
        c.model.update(dict(cell="gru", hidden=64, bidirectional=True, embed=128, pooling="max",
                            dropout=0.5, embed_dropout=0.5))
        c.optim.update(dict(lr=3e-3, clip_norm=1.0))
        c.schedule.update(dict(name="cosine", warmup_steps=100))
        c.train.epochs = 3
    elif preset == "tiny":
        c.data.update(dict(max_examples=256, valid_size=64, vocab_size=2000, max_len=32, buckets=[16],
                           batch_size=16, eval_batch_size=64))
        c.model.update(dict(cell="lstm", hidden=16, embed=16))
        c.optim.lr = 1e-2
        c.train.update(dict(epochs=2, log_every=4))
    return c
