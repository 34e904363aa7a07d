"""Penn Treebank word-level language model (Zaremba, Sutskever & Vinyals 2014).

    seqjax train ptb_lm:zaremba-small        # test perplexity 114.5 in the paper
    seqjax eval ckpt/... --split test

The presets follow the paper: all parameters ~ U(+-init), SGD at lr 1 on the loss
summed over the BPTT steps and averaged over the batch (data.sum_over_time), gradient
clipping by global norm, lr x factor per epoch after `decay_after` epochs, dropout on
non-recurrent connections. Valid is evaluated with batch 20, test with one stream
(batch 1), as the reference implementations do. LM keys: see experiments/_lm_common.py.
"""
from _lm_common import lm_config  # noqa: E402  (experiments/ is on the import path)

PRESETS = {
    "zaremba-small": "2x200 LSTM, bptt 20, batch 20, no dropout, 13 epochs (paper: test ppl 114.5)",
    "zaremba-medium": "2x650 LSTM, bptt 35, dropout 0.5, 39 epochs (paper: 82.7)",
    "zaremba-large": "2x1500 LSTM, bptt 35, dropout 0.65, 55 epochs (paper: 78.4)",
    "seed": "the seed notebook: LSTM 256 then 128, embedding 200, bptt 20, batch 60, 15 epochs",
    "tiny": "seconds on CPU: 2x32 LSTM on the first 20k PTB tokens",
}


def get_config(preset: str):
    c = lm_config()
    c.data.update(dict(corpus="ptb", bptt=20, batch_size=20, eval_batch_size=20, test_batch_size=1, sum_over_time=True))
    c.model.update(dict(cell="lstm", embed=200, hidden=200, layers=2, init="uniform", init_scale=0.1, dropout=0.0))
    c.optim.update(dict(name="sgd", lr=1.0, clip_norm=5.0))
    c.schedule.update(dict(name="step", decay_after=4, factor=0.5))
    c.train.update(dict(epochs=13, log_every=200))
    if preset == "zaremba-medium":
        c.data.bptt = 35
        c.model.update(dict(embed=650, hidden=650, dropout=0.5, init_scale=0.05))
        c.schedule.update(dict(decay_after=6, factor=0.8))
        c.train.epochs = 39
    elif preset == "zaremba-large":
        c.data.bptt = 35
        c.model.update(dict(embed=1500, hidden=1500, dropout=0.65, init_scale=0.04))
        c.optim.clip_norm = 10.0
        c.schedule.update(dict(decay_after=14, factor=1 / 1.15))
        c.train.epochs = 55
    elif preset == "seed":
        c.data.update(dict(batch_size=60, eval_batch_size=60))
        c.model.update(dict(embed=200, hidden=[256, 128], forget_bias=0.0))
        c.train.epochs = 15
    elif preset == "tiny":
        c.data.update(dict(max_tokens=20000, batch_size=8, eval_batch_size=8, test_batch_size=4))
        c.model.update(dict(embed=32, hidden=32))
        c.train.update(dict(epochs=1, log_every=20))
    return c
