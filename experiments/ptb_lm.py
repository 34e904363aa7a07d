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

`awd`, `awd-small` and `awd-wt2` are AWD-LSTM (Merity et al. 2018), built from plug-ins:
weight-drop, embedding and locked dropout, AR/TAR, variable BPTT and NT-ASGD
(docs/awd.md).
"""
from seqjax.config import Preset, with_preset
from seqjax.tasks.lm import lm_config

#: AWD-LSTM on PTB, the settings of the authors' repository (salesforce/awd-lstm-lm) with the batch
#: of the issue (80; the paper: 40 for PTB, the repository's command: 20) and 500 epochs (the paper: 750)
AWD = {
    "data.bptt": 70, "data.variable_bptt": 1, "data.batch_size": 80, "data.eval_batch_size": 10,
    "data.test_batch_size": 1, "data.sum_over_time": False,
    "model.embed": 400, "model.hidden": [1150, 1150, 400], "model.layers": 3, "model.tie_weights": True,
    "model.init": "uniform", "model.init_scale": 0.1, "model.cell_options": {"weight_init": "torch"},
    "model.variational": True, "model.input_dropout": 0.4, "model.dropout": 0.25, "model.output_dropout": 0.4,
    "model.word_dropout": 0.1, "model.weight_drop": 0.5,
    "optim.name": "sgd", "optim.lr": 30.0, "optim.clip_norm": 0.25, "optim.weight_decay": 1.2e-6,
    "schedule.name": "constant", "train.epochs": 500, "train.eval_every": 0, "train.log_every": 100,
    "train.ntasgd": 5,
    "train.extra_loss": {"seqjax.core.activation_reg:ar": 2.0, "seqjax.core.activation_reg:tar": 1.0},
}

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
    "awd": Preset(
        "AWD-LSTM (Merity et al. 2018) on PTB: 3 LSTM layers 1150/1150/400, embedding 400 tied to the "
        "softmax, locked dropout 0.4 (embedded words) / 0.25 (between layers) / 0.4 (output), embedding "
        "dropout 0.1, weight-drop 0.5, AR 2, TAR 1, variable BPTT around 70, batch 80, SGD lr 30, clip 0.25, "
        "weight decay 1.2e-6, NT-ASGD (n 5), 500 epochs (paper: test ppl 58.8, 57.3 fine-tuned)",
        AWD,
    ),
    "awd-wt2": Preset(
        "AWD-LSTM on WikiText-2 (paper: test ppl 65.8): awd with the repository's WikiText-2 dropouts "
        "(0.65 embedded words, 0.2 between layers); the files are not shipped: --set "
        "data.files.train=.../wiki.train.tokens (and .valid, .test; docs/awd.md)",
        {**AWD, "data.source": "text", "data.level": "word", "model.input_dropout": 0.65,
         "model.dropout": 0.2},
    ),
    "awd-small": Preset(
        "AWD-LSTM sized for a 2-core CPU: 3 LSTM layers 400/400/200, embedding 200 tied, the AWD "
        "pieces with lighter dropout (0.3/0.2/0.3, embedding 0.05, weight-drop 0.3), batch 40, "
        "BPTT around 70 (lengths in multiples of 5), NT-ASGD (n 5), 20 epochs",
        {**AWD, "data.batch_size": 40, "data.variable_bptt": 5, "model.embed": 200,
         "model.hidden": [400, 400, 200], "model.input_dropout": 0.3, "model.dropout": 0.2,
         "model.output_dropout": 0.3, "model.word_dropout": 0.05, "model.weight_drop": 0.3,
         "train.epochs": 20},
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
