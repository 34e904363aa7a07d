"""English -> X translation on Tatoeba pairs: recurrent encoder-decoder, with and without
Bahdanau attention; greedy and beam-search decoding; BLEU / chrF with sacrebleu.

    seqjax train translate:char-lstm --set data.pair=spa-eng      # the Keras char-level example
    seqjax train translate:word-gru-attention --set data.pair=spa-eng --workdir ckpt/es-att
    seqjax translate ckpt/es-att "I liked that hair" --beam 5 --plot-attention att.png

Data: ``$SEQJAX_DATA/por-eng/por.txt`` (default, the Keras example's pair) or
``--set data.pair=spa-eng`` (``spa-eng/spa.txt``, the TensorFlow attention tutorial's
file). The files are sorted by length, so ``data.max_pairs`` keeps the shortest pairs,
as the Keras example (num_samples=10000) and the tutorial (num_examples=30000) do. Pairs
are split by source sentence (no test source is seen in training; seqjax/data/pairs.py).
Results: experiments/results/translate.md.

Presets: ``char-lstm`` is the Keras character-level seq2seq notebook (EN->PT) at its own
recipe: one-hot characters, LSTM 512 encoder and decoder, the encoder's final (h, c) handed
to the decoder, rmsprop (lr 1e-3, rho 0.9, eps 1e-7), batch 32, ``num_samples = 100000``
pairs (the shortest 100,000 of the file), 100 epochs, greedy decoding.
``char-lstm-attention`` is the same model with Bahdanau attention over the encoder outputs.
Where they deviate from the notebook, and why: the held-out pairs are carved by source
sentence (1,500 valid, 1,500 test: no test source is seen in training, the same rule and
sizes as the word-level presets) instead of Keras' ``validation_split=0.2`` (the *last* 20 %
of a length-sorted file: only the longest sentences, sharing sources with train); batches
are padded to length buckets, not to the longest pair (the same loss, fewer padded steps);
training stops early after 10 evaluations without a better valid loss, and the final report
scores the mean of the best and the kept checkpoints with beam 5 next to the notebook's
greedy decoding. ``data.max_len=80`` keeps every one of the 100,000 pairs.
``char-lstm-cpu`` / ``char-lstm-attention-cpu`` are the same data recipe sized for a
2-core CPU: LSTM 256, 5 epochs, an evaluation (and checkpoint) every 1,000 steps.
``word-gru-attention`` follows the
TensorFlow attention tutorial (30,000 pairs, word level, embeddings 256, GRU, Bahdanau
attention, adam, batch 64) with 256 GRU units instead of the tutorial's 1024 (1024 units
cost ~10x the time per step on a 2-core CPU), the full target vocabulary and dropout 0.2
(``--set model.hidden=1024 --set model.attention_units=1024`` restores the tutorial's size).
``word-gru`` is the same model without attention (the ablation).

Every preset reports its final test BLEU/chrF with ``train.final_params=average``: the mean
of the best-valid-loss params and the ``train.keep_checkpoints`` most recent checkpoints
(early stopping leaves those a few epochs past the best; the gain is in
experiments/results/translate.md). ``seqjax eval RUN --split test --checkpoint average``
gives the same figures, ``--checkpoint best`` the best checkpoint's.

Keys beyond the shared ones (seqjax/config.py OPTIONS):
  data.pair            por-eng | spa-eng (data.source=tatoeba); other pairs: data.source=csv|json|...
                       with data.source_column / data.target_column (seqjax/config.py OPTIONS)
  data.level           char | word (word: lowercased words and punctuation marks)
  data.max_pairs       read only the first (= shortest) N pairs of train (0: all)
  data.max_len         drop pairs whose source or target has more tokens than this
                       (<sos>/<eos> not counted); also the truncation length of inputs to
                       `seqjax translate`
  data.src_vocab_size  source vocabulary size, specials included (0: every training token)
  data.tgt_vocab_size  target vocabulary size, specials included (0: every training token)
  data.buckets         padded lengths of the batches (bucket boundaries) below
                       data.max_len + 1, which is always the last; [] = one shape
  model.embed          embedding width of source and target tokens (0: one-hot, as the Keras example)
  model.attention      none | bahdanau
  model.attention_units  Bahdanau attention size (0: the top hidden size)
  decode.beam          beam size for the final test report (greedy is always reported too)
  decode.alpha         length-penalty exponent (0: none)
  decode.penalty       gnmt ((5+len)/6)^alpha | simple len^alpha | none
  decode.max_len       most tokens generated (0: data.max_len + 1)
  decode.batch_size    sentences decoded per compiled batch (0: data.eval_batch_size)
"""
from seqjax.config import Preset, base_config, with_preset

_WORD = {
    "data.level": "word", "data.max_pairs": 30000, "data.max_len": 12, "data.buckets": [8],
    "data.valid_fraction": 1500, "data.test_fraction": 1500, "data.src_vocab_size": 6000,
    "data.tgt_vocab_size": 0,
    "model.cell": "gru", "model.hidden": 256, "model.embed": 256, "model.attention": "bahdanau",
    "model.dropout": 0.2, "optim.name": "adam", "optim.lr": 2e-3, "optim.clip_norm": 5.0, "optim.eps": 1e-8,
    "train.epochs": 12, "train.early_stop_patience": 3,
}

_CHAR_CPU = {"model.hidden": 256, "train.epochs": 5, "train.eval_every": 1000, "train.early_stop_patience": 4}

PRESETS = {
    "char-lstm": Preset(
        "the Keras character-level seq2seq notebook: one-hot, LSTM 512 enc+dec, rmsprop, batch 32, "
        "100k pairs, 100 epochs, no attention"
    ),
    "char-lstm-attention": Preset(
        "char-lstm with Bahdanau attention (keys/values: encoder outputs)", {"model.attention": "bahdanau"}
    ),
    "char-lstm-cpu": Preset("char-lstm's data recipe sized for a 2-core CPU: LSTM 256, 5 epochs", _CHAR_CPU),
    "char-lstm-attention-cpu": Preset(
        "char-lstm-cpu with Bahdanau attention", {**_CHAR_CPU, "model.attention": "bahdanau"}
    ),
    "word-gru-attention": Preset(
        "TF tutorial setup (30k pairs, word level, emb 256, Bahdanau) with GRU 256", _WORD
    ),
    "word-gru": Preset(
        "word-gru-attention without attention (the ablation)", {**_WORD, "model.attention": "none"}
    ),
    "tiny": Preset(
        "seconds on CPU, for tests and smoke checks",
        {"model.eval_unroll": 1,  # eval steps compile several times faster; compiling is most of a run
         "data.max_pairs": 600, "data.max_len": 12, "data.buckets": [], "data.valid_fraction": 50,
         "data.test_fraction": 50, "data.batch_size": 32, "data.eval_batch_size": 64, "model.cell": "gru",
         "model.hidden": 16, "model.embed": 8, "model.attention": "bahdanau", "optim.name": "adam",
         "optim.lr": 1e-2, "train.epochs": 2, "train.log_every": 5, "train.early_stop_patience": 0,
         "decode.beam": 3},
    ),
}


def base():
    """The char-lstm preset: the shared starting point of every preset."""
    c = base_config()
    c.task = "translate"
    c.data.update(dict(
        source="tatoeba", pair="por-eng", level="char", max_pairs=100000, max_len=80, valid_fraction=1500,
        test_fraction=1500, src_vocab_size=0, tgt_vocab_size=0, buckets=[16, 24, 32, 40, 48, 64],
        batch_size=32, eval_batch_size=256,
    ))
    c.model.update(dict(cell="lstm", hidden=512, layers=1, embed=0, attention="none", attention_units=0))
    c.optim.update(dict(name="rmsprop", lr=1e-3, eps=1e-7, momentum=0.0))
    c.train.update(dict(epochs=100, log_every=50, early_stop_patience=10, final_params="average"))
    c.decode = dict(beam=5, alpha=0.6, penalty="gnmt", max_len=0, batch_size=0)
    return c


def get_config(preset: str = "char-lstm"):
    return with_preset(base(), PRESETS, preset)
