"""Models built from the recurrent core: language model, classifier, many-to-one, seq2seq, and
torch weights in and out (``interop``)."""
