"""Synthetic seq2seq on digit strings: copy, reverse, addition (generated, no files).

    seqjax train seq2seq                     # = seq2seq:reverse, a minute on a laptop CPU
    seqjax train seq2seq:addition --workdir ckpt/add
    seqjax translate ckpt/add "123+45"

The fast seq2seq smoke test (docs/design.md; flax's seq2seq example trains on addition): a GRU
encoder-decoder with Bahdanau attention at character level, through the translate task.
The test report's ``exact_match`` is the fraction of test strings decoded exactly (greedy
and beam ``decode.beam``); BLEU/chrF come along.

Keys beyond the shared ones (seqjax/config.py OPTIONS; the translate keys in
experiments/translate.py):
  data.problem     copy | reverse | addition (seqjax/data/synthetic.py)
  data.digits      most digits of a string (addition: of each operand)
  data.min_digits  fewest digits
  data.n_train     training pairs generated
  data.n_eval      pairs in each of valid and test
"""

from seqjax.config import Preset, base_config, with_preset

PRESETS = {
    "reverse": Preset("reverse strings of 1-8 digits: GRU 64 + Bahdanau attention, char level"),
    "copy": Preset("copy strings of 1-8 digits", {"data.problem": "copy"}),
    "addition": Preset(
        "add two numbers of 1-4 digits ('123+45' -> '168'), flax's seq2seq example task",
        {"data.problem": "addition", "data.digits": 4, "data.n_train": 20000, "train.epochs": 6},
    ),
    "tiny": Preset(
        "seconds on CPU, for tests and smoke checks",
        {
            "model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
            "data.digits": 4,
            "data.n_train": 512,
            "data.n_eval": 64,
            "model.hidden": 16,
            "model.embed": 8,
            "train.epochs": 2,
            "train.log_every": 8,
            "decode.beam": 2,
        },
    ),
}


def base():
    """The reverse preset: the shared starting point of every preset."""
    c = base_config()
    c.task = "translate"
    c.data.update(
        dict(
            source="synthetic",
            problem="reverse",
            digits=8,
            min_digits=1,
            n_train=10000,
            n_eval=500,
            pair="",
            level="char",
            max_pairs=0,
            max_len=9,
            src_vocab_size=0,
            tgt_vocab_size=0,
            buckets=[],
            batch_size=64,
            eval_batch_size=256,
        )
    )
    c.model.update(dict(cell="gru", hidden=64, layers=1, embed=16, attention="bahdanau", attention_units=0))
    c.optim.update(dict(name="adam", lr=3e-3, clip_norm=1.0))
    c.train.update(dict(epochs=4, log_every=50))
    c.decode = dict(beam=1, alpha=0.0, penalty="none", max_len=0, batch_size=0)
    return c


def get_config(preset: str = "reverse"):
    return with_preset(base(), PRESETS, preset)
