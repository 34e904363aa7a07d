"""Config -> recurrent specification -> model: the one place where ``model.*`` keys are read.

:func:`recurrent_spec` builds the :class:`~seqjax.models.spec.RecurrentSpec` from ``cfg.model``
(rejecting, with one line, an option the chosen cell cannot take); every model takes it
whole, and :meth:`RecurrentSpec.stacked` hands it on to :class:`seqjax.core.layers.Stacked`. A new
recurrent option is an ``Option`` in ``seqjax.config.SCHEMA``, a field of ``RecurrentSpec``,
a line here and the layer that uses it. The model-specific keys (``model.embed``,
``model.pooling``, ``model.attention``, ...) are read here too, by the model's builder.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections

from seqjax.config import default
from seqjax.core import cells as cells_lib
from seqjax.core.layers import hidden_sizes
from seqjax.core.newton import NewtonOptions
from seqjax.errors import UsageError
from seqjax.models.classifier import POOLINGS, TextClassifier
from seqjax.models.language_model import LanguageModel
from seqjax.models.many_to_one import ManyToOne
from seqjax.models.seq2seq import ATTENTIONS, Seq2Seq
from seqjax.models.spec import RecurrentSpec, resolve_spec

__all__ = ["CELL_OPTIONS", "RecurrentSpec", "cell_options", "language_model", "many_to_one",
           "recurrent_spec", "resolve_spec", "seq2seq", "text_classifier"]

#: shared ``model.*`` keys that are constructor fields of the cell: key -> (field, default)
CELL_OPTIONS = {key: (field, default(f"model.{key}")) for key, field in
                (("init", "weight_init"), ("init_scale", "init_scale"), ("forget_bias", "forget_bias"),
                 ("dtype", "dtype"))}


def cell_options(model: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The cell's constructor options from ``model.cell_options`` and the shared cell keys
    (:data:`CELL_OPTIONS`). A shared key reaches a cell that has the field; a non-default
    value for a cell without it is a UsageError naming the key, except ``model.init`` /
    ``model.init_scale``, which then apply only to the model's other layers (the cell keeps
    its own initializers)."""
    try:
        fields = cells_lib.cell_fields(model["cell"])
    except ValueError as e:
        raise UsageError(f"model.cell={model['cell']!r}: {e}") from None
    given = dict(model.get("cell_options") or {})
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}  # hashable
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UsageError(f"model.cell_options: cell {model['cell']!r} has no field {unknown[0]!r}; "
                         f"its fields: {', '.join(sorted(fields - {'features'}))}")
    for key, (field, fallback) in CELL_OPTIONS.items():
        value = model[key]
        if key == "dtype":
            continue  # the spec's dtype (checked in recurrent_spec)
        if field in fields:
            options.setdefault(field, value)
        elif value != fallback and key not in ("init", "init_scale"):
            raise UsageError(f"model.{key}={value!r} does not apply to cell {model['cell']!r} (it has no "
                             f"{field} field); leave it at {fallback!r}")
    return tuple(sorted(options.items()))


def recurrent_spec(cfg: ml_collections.ConfigDict) -> RecurrentSpec:
    """``cfg.model`` -> the :class:`RecurrentSpec` every model of the experiment takes."""
    m = cfg.model
    dtype = None if m.dtype == "float32" else jnp.dtype(m.dtype)
    if dtype is not None and "dtype" not in cells_lib.cell_fields(m.cell):
        raise UsageError(f"model.dtype={m.dtype} does not apply to cell {m.cell!r} (it has no dtype field); "
                         "use float32")
    try:
        sizes = hidden_sizes(m.hidden, m.layers)
    except ValueError as e:
        raise UsageError(f"model.hidden={m.hidden}, model.layers={m.layers}: {e}") from None
    return RecurrentSpec(
        cell=m.cell, hidden=sizes, cell_options=cell_options(m), dropout=m.dropout,
        variational=bool(m.variational), bidirectional=bool(m.bidirectional),
        recurrent_dropout=float(m.recurrent_dropout), unroll=int(m.unroll), eval_unroll=int(m.eval_unroll),
        weight_drop=float(m.weight_drop),
        dtype=dtype, backend=m.backend, remat=bool(m.remat), wavefront=bool(m.wavefront),
        eval_wavefront=bool(m.eval_wavefront), parallel_scan=m.parallel_scan,
        newton=NewtonOptions(float(m.newton_tol), int(m.newton_max_iters), float(m.newton_damping)),
    )


# --------------------------------------------------------------------------- models


def language_model(cfg: ml_collections.ConfigDict, vocab_size: int):
    """The LM of ``cfg`` (``seqjax.models.language_model.LanguageModel``)."""
    m, spec = cfg.model, recurrent_spec(cfg)
    if spec.bidirectional:
        raise UsageError("model.bidirectional=true does not apply to a language model "
                         "(it reads left to right)")
    if m.tie_weights and m.embed != spec.hidden[-1]:
        raise UsageError(f"model.tie_weights needs model.embed ({m.embed}) == the last hidden size "
                         f"({spec.hidden[-1]})")
    return LanguageModel(vocab_size=vocab_size, embed=m.embed, rnn=spec, dropout=m.dropout,
                         tie_weights=m.tie_weights, init_scale=m.init_scale if m.init == "uniform" else 0.0,
                         head_chunk=m.head_chunk, input_dropout=_rate(m, "input_dropout"),
                         output_dropout=_rate(m, "output_dropout"),
                         word_dropout=_rate(m, "word_dropout") or 0.0)


def _rate(m: Mapping[str, Any], key: str) -> float | None:
    """An LM dropout key: None (use ``model.dropout``) when absent or -1; a UsageError
    (one line) outside [0, 1)."""
    value = m.get(key, -1.0)
    if value == -1:
        return None
    if not 0 <= value < 1:
        also = ", or -1 for model.dropout" if key != "word_dropout" else ""
        raise UsageError(f"model.{key}={value}: use a dropout rate in [0, 1){also}")
    return float(value)


def text_classifier(cfg: ml_collections.ConfigDict, vocab_size: int, num_classes: int):
    """The classifier of ``cfg`` (``seqjax.models.classifier.TextClassifier``)."""
    m = cfg.model
    if m.pooling not in POOLINGS:
        raise UsageError(f"model.pooling={m.pooling!r}: choose one of {', '.join(POOLINGS)}")
    return TextClassifier(vocab_size=vocab_size, num_classes=num_classes, embed_dim=m.embed,
                          rnn=recurrent_spec(cfg), dropout=m.dropout, embed_dropout=m.embed_dropout,
                          pooling=m.pooling)


def many_to_one(cfg: ml_collections.ConfigDict, out_features: int):
    """The sequence model of ``cfg`` (``seqjax.models.many_to_one.ManyToOne``)."""
    return ManyToOne(out_features=out_features, rnn=recurrent_spec(cfg))


def seq2seq(cfg: ml_collections.ConfigDict, src_vocab: int, tgt_vocab: int):
    """The encoder-decoder of ``cfg`` (``seqjax.models.seq2seq.Seq2Seq``)."""
    m = cfg.model
    if m.attention not in ATTENTIONS:
        raise UsageError(f"model.attention={m.attention!r}: choose one of {', '.join(ATTENTIONS)}")
    return Seq2Seq(src_vocab=src_vocab, tgt_vocab=tgt_vocab, rnn=recurrent_spec(cfg), embed=m.embed,
                   attention=m.attention, attention_units=m.attention_units, dropout=m.dropout,
                   head_chunk=m.head_chunk)
