"""seqjax.core.evaluation: corpus BLEU/chrF with one or several references per hypothesis."""

import pytest

from seqjax.core import evaluation

HYPS = ["estoy cansado .", "el gato come ."]


def test_multi_reference_score():
    """A hypothesis equal to one of several references scores 100 against all of them."""
    single = evaluation.bleu_chrf(HYPS, ["estoy cansada .", "el gato come ."])
    multi = evaluation.bleu_chrf(HYPS, [["estoy cansada .", "estoy cansado ."], ["el gato come ."]])
    assert multi == {"bleu": 100.0, "chrf": 100.0}
    assert single["bleu"] < 100.0 and single["chrf"] < 100.0
    assert evaluation.bleu_chrf(HYPS, [["estoy cansada ."], ["el gato come ."]]) == single


def test_reference_streams_pad_with_none():
    assert evaluation.reference_streams(["a", ["b", "c"]]) == [["a", "b"], [None, "c"]]


def test_lowercase_and_sacrebleu_numbers():
    """Matches sacrebleu's own corpus_bleu / corpus_chrf; lowercase makes case irrelevant."""
    import sacrebleu

    refs = ["The cat sat on the mat .", "A dog ran in the park ."]
    hyps = ["the cat sat on a mat .", "A dog runs in the park ."]
    got = evaluation.bleu_chrf(hyps, refs)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.005)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=0.005)
    upper = [h.upper() for h in hyps]
    assert evaluation.bleu_chrf(upper, refs, lowercase=True) == evaluation.bleu_chrf(
        hyps, refs, lowercase=True
    )
    assert evaluation.bleu_chrf(upper, refs)["bleu"] < got["bleu"]


def test_per_source_counts_each_source_once():
    """Pairs (source, ref): the first hypothesis of each source against all its refs."""
    sources = ["I am tired.", "I am tired.", "The cat eats."]
    refs = ["estoy cansada .", "estoy cansado .", "el gato come ."]
    hyps = ["estoy cansado .", "ignored for the second pair", "el gato come ."]
    assert evaluation.bleu_chrf_per_source(sources, hyps, refs) == {"bleu": 100.0, "chrf": 100.0}
