"""Config -> recurrent specification -> model: the one place where ``model.*`` keys are read.

:class:`RecurrentSpec` holds every shared recurrent option. :func:`recurrent_spec` builds
it from ``cfg.model`` (rejecting, with one line, an option the chosen cell cannot take),
every model takes it whole, and :meth:`RecurrentSpec.stacked` hands it on to
:class:`seqjax.layers.Stacked`. A new recurrent option is a field here, a line in
:meth:`RecurrentSpec.stacked` and the layer that uses it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections

from seqjax import cells as cells_lib
from seqjax.errors import UsageError
from seqjax.layers import Stacked, hidden_sizes, zero_carry

#: shared ``model.*`` keys that are constructor fields of the cell: key -> (field, default)
CELL_OPTIONS = {"init": ("weight_init", "torch"), "init_scale": ("init_scale", 0.1),
                "forget_bias": ("forget_bias", 0.0), "dtype": ("dtype", "float32")}


@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """The recurrent layers of a model; hashable (models are static arguments of jit).

    Attributes:
      cell: registered name, "package.module:ClassName" or a cell class.
      hidden: one hidden size per layer.
      cell_options: the cell's constructor fields as sorted (key, value) pairs.
      dropout: between layers (and where the model places it: embeddings, outputs).
      variational: one dropout mask per sequence, reused at every step.
      bidirectional: each layer a forward and a backward ``Recurrent``.
      recurrent_dropout: on the recurrent state, one mask per sequence (Gal & Ghahramani).
      unroll, eval_unroll: scan unroll of train steps and of eval steps (0: ``unroll``).
      dtype: compute dtype (None: float32); parameters stay float32.
      backend: "scan" | "flax_scan" | "cudnn" (``seqjax.layers.Recurrent``).
      remat: recompute time steps in the backward pass.
      wavefront, eval_wavefront: a unidirectional stack as one loop in train / eval steps.
      parallel_scan: "auto" | "on" | "off" for linear cells (minGRU, minLSTM).
    """

    cell: Any = "lstm"
    hidden: tuple[int, ...] = (128,)
    cell_options: tuple[tuple[str, Any], ...] = ()
    dropout: float = 0.0
    variational: bool = False
    bidirectional: bool = False
    recurrent_dropout: float = 0.0
    unroll: int = 1
    eval_unroll: int = 0
    dtype: Any = None
    backend: str = "scan"
    remat: bool = False
    wavefront: bool = False
    eval_wavefront: bool = False
    parallel_scan: str = "auto"

    def for_eval(self) -> RecurrentSpec:
        """The spec of eval steps: ``eval_unroll`` and ``eval_wavefront`` applied (same
        params, same numbers up to float rounding)."""
        return dataclasses.replace(self, unroll=self.eval_unroll or self.unroll,
                                   wavefront=self.wavefront or self.eval_wavefront)

    @property
    def cell_kwargs(self) -> dict:
        """Keyword arguments of ``seqjax.cells.make_cell``: the options plus ``dtype``."""
        kw = dict(self.cell_options)
        if self.dtype is not None:
            kw["dtype"] = self.dtype
        return kw

    def make_cell(self, features: int, **kw):
        """One cell of hidden size ``features``."""
        return cells_lib.make_cell(self.cell, features, **{**self.cell_kwargs, **kw})

    def stacked(self, **kw) -> Stacked:
        """The ``Stacked`` layers (``kw``: module arguments such as ``name``)."""
        return Stacked(
            cell=self.cell, hidden=self.hidden, dropout=self.dropout, variational=self.variational,
            bidirectional=self.bidirectional, cell_kwargs=tuple(sorted(self.cell_kwargs.items())),
            unroll=self.unroll, backend=self.backend, remat=self.remat, wavefront=self.wavefront,
            recurrent_dropout=self.recurrent_dropout, parallel_scan=self.parallel_scan, **kw,
        )

    def zero_carry(self, batch: int) -> tuple:
        """Zero carries of the stack for ``batch`` rows (``seqjax.layers.zero_carry``)."""
        return zero_carry(self.cell, self.hidden, batch, self.bidirectional, cell_kwargs=self.cell_kwargs)


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
    for key, (field, default) in CELL_OPTIONS.items():
        value = model[key]
        if key == "dtype":
            continue  # the spec's dtype (checked in recurrent_spec)
        if field in fields:
            options.setdefault(field, value)
        elif value != default and key not in ("init", "init_scale"):
            raise UsageError(f"model.{key}={value!r} does not apply to cell {model['cell']!r} (it has no "
                             f"{field} field); leave it at {default!r}")
    return tuple(sorted(options.items()))


def recurrent_spec(cfg: ml_collections.ConfigDict) -> RecurrentSpec:
    """``cfg.model`` -> the :class:`RecurrentSpec` every model of the experiment takes."""
    m = cfg.model
    dtype = None if m.dtype == "float32" else jnp.dtype(m.dtype)
    if dtype is not None and "dtype" not in cells_lib.cell_fields(m.cell):
        raise UsageError(f"model.dtype={m.dtype} does not apply to cell {m.cell!r} (it has no dtype field); "
                         "use float32")
    if not 0.0 <= m.get("recurrent_dropout", 0.0) < 1.0:
        raise UsageError(f"model.recurrent_dropout={m.recurrent_dropout}: must be in [0, 1)")
    return RecurrentSpec(
        cell=m.cell, hidden=hidden_sizes(m.hidden, m.layers), cell_options=cell_options(m), dropout=m.dropout,
        variational=bool(m.variational), bidirectional=bool(m.bidirectional),
        recurrent_dropout=float(m.get("recurrent_dropout", 0.0)), unroll=int(m.unroll),
        eval_unroll=int(m.get("eval_unroll", 0)), dtype=dtype, backend=m.backend, remat=bool(m.remat),
        wavefront=bool(m.wavefront), eval_wavefront=bool(m.get("eval_wavefront", False)),
        parallel_scan=m.get("parallel_scan", "auto"),
    )


# --------------------------------------------------------------------------- models


def language_model(cfg: ml_collections.ConfigDict, vocab_size: int):
    """The LM of ``cfg`` (``seqjax.models.language_model.LanguageModel``)."""
    from seqjax.models.language_model import LanguageModel

    m, spec = cfg.model, recurrent_spec(cfg)
    if spec.bidirectional:
        raise UsageError("model.bidirectional=true does not apply to a language model "
                         "(it reads left to right)")
    if m.tie_weights and m.embed != spec.hidden[-1]:
        raise UsageError(f"model.tie_weights needs model.embed ({m.embed}) == the last hidden size "
                         f"({spec.hidden[-1]})")
    return LanguageModel(vocab_size=vocab_size, embed=m.embed, rnn=spec, dropout=m.dropout,
                         tie_weights=m.tie_weights, init_scale=m.init_scale if m.init == "uniform" else 0.0,
                         head_chunk=m.head_chunk)


def text_classifier(cfg: ml_collections.ConfigDict, vocab_size: int, num_classes: int):
    """The classifier of ``cfg`` (``seqjax.models.classifier.TextClassifier``)."""
    from seqjax.models.classifier import TextClassifier

    m = cfg.model
    return TextClassifier(vocab_size=vocab_size, num_classes=num_classes, embed_dim=m.embed,
                          rnn=recurrent_spec(cfg), dropout=m.dropout, embed_dropout=m.embed_dropout,
                          pooling=m.pooling)


def many_to_one(cfg: ml_collections.ConfigDict, out_features: int):
    """The sequence model of ``cfg`` (``seqjax.models.regressor.ManyToOne``)."""
    from seqjax.models.regressor import ManyToOne

    return ManyToOne(out_features=out_features, rnn=recurrent_spec(cfg))


def seq2seq(cfg: ml_collections.ConfigDict, src_vocab: int, tgt_vocab: int):
    """The encoder-decoder of ``cfg`` (``seqjax.models.seq2seq.Seq2Seq``)."""
    from seqjax.models.seq2seq import Seq2Seq

    m = cfg.model
    return Seq2Seq(src_vocab=src_vocab, tgt_vocab=tgt_vocab, rnn=recurrent_spec(cfg), embed=m.embed,
                   attention=m.attention, attention_units=m.attention_units, dropout=m.dropout,
                   head_chunk=m.head_chunk)


def resolve_spec(rnn: RecurrentSpec | None, cell: Any = None, hidden: Any = None, default_hidden=(128,),
                 **kw) -> RecurrentSpec:
    """A model's spec: ``rnn``, or, when it is None, one made from the model's shorthand
    ``cell`` (default "lstm"), ``hidden`` (an int or one size per layer) and ``kw``
    (e.g. ``bidirectional``, ``dropout``)."""
    if rnn is not None:
        if cell is not None or hidden is not None:
            raise ValueError("give the model either rnn=RecurrentSpec(...) or the shorthand cell/hidden, "
                             "not both")
        return rnn
    hidden = default_hidden if hidden is None else hidden
    sizes = (int(hidden),) if isinstance(hidden, int) else tuple(int(h) for h in hidden)
    return RecurrentSpec(cell="lstm" if cell is None else cell, hidden=sizes, **kw)
