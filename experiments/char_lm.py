"""Character-level language models with sampling: tinyshakespeare, PTB characters, a toy corpus.

    seqjax train char_lm:shakespeare
    seqjax sample ckpt/<run> --prompt "ROMEO:" --temperature 0.8
    seqjax train char_lm:toy && seqjax sample ckpt/<run> --prompt "seven grey" --temperature 0

Metrics: bits per character (bpc) and nats per character (loss). LM keys: see
experiments/_lm_common.py.
"""
from _lm_common import lm_config  # noqa: E402  (experiments/ is on the import path)

PRESETS = {
    "shakespeare": "2x512 LSTM on tinyshakespeare, bptt 128, adam, dropout 0.2 (goal: valid <= 1.47 nats/char)",
    "ptb-char": "1x512 LSTM on PTB characters, bptt 100, adam",
    "toy": "1x64 LSTM on the built-in sentences: prompt a prefix, get the sentence completed",
    "tiny": "seconds on CPU: 1x32 LSTM on the first 20k tinyshakespeare characters",
}


def get_config(preset: str):
    c = lm_config()
    c.data.update(dict(corpus="shakespeare", bptt=128, batch_size=32, eval_batch_size=32, test_batch_size=32))
    c.model.update(dict(cell="lstm", embed=128, hidden=512, layers=2, dropout=0.2))
    c.optim.update(dict(name="adam", lr=2e-3, clip_norm=1.0))
    c.schedule.update(dict(name="cosine", warmup_steps=100, min_lr_ratio=0.1))
    c.train.update(dict(epochs=10, log_every=100))
    c.sample.update(dict(prompt="ROMEO:", length=400, temperature=0.8))
    if preset == "ptb-char":
        c.data.update(dict(corpus="ptb_char", bptt=100, batch_size=64, eval_batch_size=64, test_batch_size=64))
        c.model.update(dict(embed=64, hidden=512, layers=1, dropout=0.0))
        c.train.epochs = 3
        c.sample.update(dict(prompt="the company said", length=300))
    elif preset == "toy":
        c.data.update(dict(corpus="toy", bptt=16, batch_size=4, eval_batch_size=4, test_batch_size=1))
        c.model.update(dict(embed=16, hidden=64, layers=1, dropout=0.0))
        c.optim.lr = 1e-2
        c.schedule.update(dict(name="constant"))
        c.train.update(dict(epochs=0, steps=600, eval_every=100, log_every=50))
        c.sample.update(dict(prompt="seven grey", length=60, temperature=0.0))
    elif preset == "tiny":
        c.data.update(dict(max_tokens=20000, bptt=32, batch_size=8, eval_batch_size=8, test_batch_size=8))
        c.model.update(dict(embed=16, hidden=32, layers=1, dropout=0.0))
        c.train.update(dict(epochs=1, log_every=20))
        c.sample.update(dict(length=40))
    return c
