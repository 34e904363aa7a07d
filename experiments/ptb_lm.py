"""Penn Treebank word-level language model (Zaremba, Sutskever & Vinyals 2014).

    seqjax train ptb_lm:zaremba-small        # test perplexity 114.5 in the paper
    seqjax eval ckpt/... --split test

The presets follow the paper: all parameters ~ U(+-init), SGD at lr 1 on the loss
summed over the BPTT steps and averaged over the batch (data.sum_over_time), gradient
clipping by global norm, lr x factor per epoch after `decay_after` epochs, dropout on
non-recurrent connections. Valid is evaluated with batch 20, test with one stream
(batch 1), as the reference implementations do. `tf-256-128` is the setup of the
TensorFlow PTB notebook this project reproduces (LSTM 256 then 128, embedding 200,
batch 60). LM keys: `seqjax.tasks.lm.lm_config`.
"""
from seqjax.config import Preset, with_preset
from seqjax.tasks.lm import lm_config

PRESETS = {
    "zaremba-small": Preset("2x200 LSTM, bptt 20, batch 20, no dropout, 13 epochs (paper: test ppl 114.5)"),
    "zaremba-medium": Preset(
        "2x650 LSTM, bptt 35, dropout 0.5, 39 epochs (paper: 82.7)",
        {"data.bptt": 35, "model.embed": 650, "model.hidden": 650, "model.dropout": 0.5,
         "model.init_scale": 0.05, "schedule.decay_after": 6, "schedule.factor": 0.8, "train.epochs": 39},
    ),
    "zaremba-large": Preset(
        "2x1500 LSTM, bptt 35, dropout 0.65, 55 epochs (paper: 78.4)",
        {"data.bptt": 35, "model.embed": 1500, "model.hidden": 1500, "model.dropout": 0.65,
         "model.init_scale": 0.04, "optim.clip_norm": 10.0, "schedule.decay_after": 14,
         "schedule.factor": 1 / 1.15, "train.epochs": 55},
    ),
    "variational-medium": Preset(
        "2x650 variational LSTM, tied embedding/softmax: dropout 0.5 with one mask per sequence on inputs, "
        "between layers and outputs, recurrent dropout 0.5 on h (one mask for all gates, Gal & Ghahramani's "
        "'tied' variant; paper: test ppl 79.7); schedule of zaremba-medium",
        {"data.bptt": 35, "model.embed": 650, "model.hidden": 650, "model.dropout": 0.5,
         "model.variational": True, "model.recurrent_dropout": 0.5, "model.tie_weights": True,
         "model.init_scale": 0.05, "schedule.decay_after": 6, "schedule.factor": 0.8, "train.epochs": 39},
    ),
    "tf-256-128": Preset(
        "the TensorFlow PTB notebook: LSTM 256 then 128, embedding 200, bptt 20, batch 60, 15 epochs",
        {"data.batch_size": 60, "data.eval_batch_size": 60, "model.hidden": [256, 128], "train.epochs": 15},
    ),
    "tiny": Preset(
        "seconds on CPU: 2x32 LSTM on the first 20k PTB tokens",
        {"model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
         "data.max_tokens": 20000, "data.batch_size": 8, "data.eval_batch_size": 8, "data.test_batch_size": 4,
         "model.embed": 32, "model.hidden": 32, "train.epochs": 1, "train.log_every": 20},
    ),
}


def base():
    """Zaremba-small: the shared starting point of every preset."""
    c = lm_config()
    c.data.update(dict(source="ptb", level="word", bptt=20, batch_size=20, eval_batch_size=20,
                       test_batch_size=1, sum_over_time=True))
    c.model.update(dict(cell="lstm", embed=200, hidden=200, layers=2, init="uniform", init_scale=0.1,
                        dropout=0.0))
    c.optim.update(dict(name="sgd", lr=1.0, clip_norm=5.0))
    c.schedule.update(dict(name="step", decay_after=4, factor=0.5))
    c.train.update(dict(epochs=13, log_every=200))
    return c


def get_config(preset: str = "zaremba-small"):
    return with_preset(base(), PRESETS, preset)
