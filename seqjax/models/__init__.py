"""Models built from the recurrent core: language model, classifier, seq2seq, regressor."""
