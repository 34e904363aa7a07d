"""Scoring of generated text: corpus BLEU and chrF with sacrebleu.

Hypotheses and references are detokenized strings. A hypothesis may have several
references (Tatoeba often lists several correct translations of one sentence); sacrebleu
takes them as reference streams, ``None`` where a hypothesis has fewer (``nrefs:var``).
"""

from __future__ import annotations

from collections.abc import Sequence


def reference_streams(refs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-hypothesis references (a string or a list each) -> sacrebleu's reference streams:
    stream ``k`` holds every hypothesis's ``k``-th reference, ``None`` where it has fewer."""
    per_hyp = [[r] if isinstance(r, str) else list(r) for r in refs]
    width = max((len(r) for r in per_hyp), default=1)
    return [[r[k] if k < len(r) else None for r in per_hyp] for k in range(width)]


def bleu_chrf(
    hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]], lowercase: bool = False
) -> dict[str, float]:
    """Corpus ``{"bleu", "chrf"}`` (0-100, two decimals) of ``hyps`` against ``refs``: one
    reference string per hypothesis, or one list of references per hypothesis."""
    from sacrebleu.metrics import BLEU, CHRF

    streams = reference_streams(refs)
    bleu = BLEU(lowercase=lowercase).corpus_score(list(hyps), streams)
    chrf = CHRF(lowercase=lowercase).corpus_score(list(hyps), streams)
    return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2)}


def bleu_chrf_per_source(
    sources: Sequence[str], hyps: Sequence[str], refs: Sequence[str], lowercase: bool = False
) -> dict[str, float]:
    """Multi-reference ``{"bleu", "chrf"}`` of pairs ``(sources[i], refs[i])``: each distinct
    source counts once, its first hypothesis scored against the references of all its pairs."""
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        groups.setdefault(source, []).append(i)
    return bleu_chrf(
        [hyps[idx[0]] for idx in groups.values()],
        [[refs[i] for i in idx] for idx in groups.values()],
        lowercase,
    )
