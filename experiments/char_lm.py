"""Character-level language models with sampling: tinyshakespeare, PTB characters, a toy corpus.

    seqjax train char_lm:shakespeare
    seqjax sample ckpt/<run> --prompt "ROMEO:" --temperature 0.8
    seqjax train char_lm:toy && seqjax sample ckpt/<run> --prompt "seven grey" --temperature 0

Metrics: bits per character (bpc) and nats per character (loss). LM keys:
`seqjax.tasks.lm.lm_config`.
"""
from seqjax.config import Preset, with_preset
from seqjax.tasks.lm import lm_config

PRESETS = {
    "shakespeare": Preset(
        "2x512 LSTM on tinyshakespeare, bptt 128, adam, dropout 0.2 "
        "(nanoGPT's char baseline: valid 1.47 nats/char)"
    ),
    "ptb-char": Preset(
        "1x512 LSTM on PTB characters, bptt 100, adam",
        {"data.source": "ptb_char", "data.bptt": 100, "data.batch_size": 64, "data.eval_batch_size": 64,
         "data.test_batch_size": 64, "model.embed": 64, "model.layers": 1, "model.dropout": 0.0,
         "train.epochs": 3, "sample.prompt": "the company said", "sample.length": 300},
    ),
    "toy": Preset(
        "1x64 LSTM on the built-in sentences: prompt a prefix, get the sentence completed",
        {"data.source": "toy", "data.bptt": 16, "data.batch_size": 4, "data.eval_batch_size": 4,
         "data.test_batch_size": 1, "model.embed": 16, "model.hidden": 64, "model.layers": 1,
         "model.dropout": 0.0, "optim.lr": 1e-2, "schedule.name": "constant", "train.epochs": 0,
         "train.steps": 600, "train.eval_every": 100, "train.log_every": 50, "sample.prompt": "seven grey",
         "sample.length": 60, "sample.temperature": 0.0},
    ),
    "tiny": Preset(
        "seconds on CPU: 1x32 LSTM on the first 20k tinyshakespeare characters",
        {"model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
         "data.max_tokens": 20000, "data.bptt": 32, "data.batch_size": 8, "data.eval_batch_size": 8,
         "data.test_batch_size": 8, "model.embed": 16, "model.hidden": 32, "model.layers": 1,
         "model.dropout": 0.0, "train.epochs": 1, "train.log_every": 20, "sample.length": 40},
    ),
}


def base():
    """The shakespeare preset: the shared starting point of every preset."""
    c = lm_config()
    c.data.update(dict(source="shakespeare", level="char", valid_fraction=0.1, test_fraction=0, bptt=128,
                       batch_size=32, eval_batch_size=32, test_batch_size=32))
    c.model.update(dict(cell="lstm", embed=128, hidden=512, layers=2, dropout=0.2))
    c.optim.update(dict(name="adam", lr=2e-3, clip_norm=1.0))
    c.schedule.update(dict(name="cosine", warmup_steps=100, min_lr_ratio=0.1))
    c.train.update(dict(epochs=10, log_every=100))
    c.sample.update(dict(prompt="ROMEO:", length=400, temperature=0.8))
    return c


def get_config(preset: str = "shakespeare"):
    return with_preset(base(), PRESETS, preset)
