"""The recurrent specification: every shared recurrent option of a model, as one value.

:class:`RecurrentSpec` is what ``model.*`` becomes (:func:`seqjax.models.build.recurrent_spec`)
and what every model takes whole. Its defaults are the config's (:data:`seqjax.config.SCHEMA`),
so a model built in Python without a config has the layers the command line builds.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from seqjax.config import default
from seqjax.core import cells as cells_lib
from seqjax.core.layers import Stacked, hidden_sizes, zero_carry
from seqjax.core.newton import NewtonOptions


@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """The recurrent layers of a model; hashable (models are static arguments of jit).

    Attributes (defaults: the config's ``model.*``):
      cell: registered name, "package.module:ClassName" or a cell class.
      hidden: one hidden size per layer.
      cell_options: the cell's constructor fields as sorted (key, value) pairs.
      dropout: between layers (and where the model places it: embeddings, outputs).
      variational: one dropout mask per sequence, reused at every step.
      bidirectional: each layer a forward and a backward ``Recurrent``.
      recurrent_dropout: on the recurrent state, one mask per sequence (Gal & Ghahramani).
      weight_drop: DropConnect on the recurrent weights, one mask per batch (``seqjax.core.weight_drop``).
      unroll, eval_unroll: scan unroll of train steps and of eval steps (0: ``unroll``).
      dtype: compute dtype (None: float32); parameters stay float32.
      backend: "scan" | "flax_scan" | "cudnn" (``seqjax.core.layers.Recurrent``).
      remat: recompute time steps in the backward pass.
      wavefront, eval_wavefront: a unidirectional stack as one loop in train / eval steps.
      parallel_scan: "auto" | "on" | "off" for linear cells (minGRU, minLSTM).
      newton: tolerance, iterations and damping of backend "newton" (``seqjax.core.newton``).
    """

    cell: Any = default("model.cell")
    hidden: tuple[int, ...] = hidden_sizes(default("model.hidden"), default("model.layers"))
    cell_options: tuple[tuple[str, Any], ...] = ()
    dropout: float = default("model.dropout")
    variational: bool = default("model.variational")
    bidirectional: bool = default("model.bidirectional")
    recurrent_dropout: float = default("model.recurrent_dropout")
    weight_drop: float = default("model.weight_drop")
    unroll: int = default("model.unroll")
    eval_unroll: int = default("model.eval_unroll")
    dtype: Any = None
    backend: str = default("model.backend")
    remat: bool = default("model.remat")
    wavefront: bool = default("model.wavefront")
    eval_wavefront: bool = default("model.eval_wavefront")
    parallel_scan: str = default("model.parallel_scan")
    newton: NewtonOptions = NewtonOptions(default("model.newton_tol"), default("model.newton_max_iters"),
                                          default("model.newton_damping"))

    def for_eval(self) -> RecurrentSpec:
        """The spec of eval steps: ``eval_unroll`` and ``eval_wavefront`` applied (same
        params, same numbers up to float rounding)."""
        return dataclasses.replace(self, unroll=self.eval_unroll or self.unroll,
                                   wavefront=self.wavefront or self.eval_wavefront)

    @property
    def cell_kwargs(self) -> dict:
        """Keyword arguments of ``seqjax.core.cells.make_cell``: the options plus ``dtype``."""
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
            newton=self.newton,
            recurrent_dropout=self.recurrent_dropout, parallel_scan=self.parallel_scan,
            weight_drop=self.weight_drop, **kw,
        )

    def zero_carry(self, batch: int) -> tuple:
        """Zero carries of the stack for ``batch`` rows (``seqjax.core.layers.zero_carry``)."""
        return zero_carry(self.cell, self.hidden, batch, self.bidirectional, cell_kwargs=self.cell_kwargs)


def resolve_spec(rnn: RecurrentSpec | None, cell: Any = None, hidden: Any = None, **kw) -> RecurrentSpec:
    """A model's spec: ``rnn``, or, when it is None, one made from the model's shorthand
    ``cell``, ``hidden`` (an int or one size per layer) and ``kw`` (e.g. ``bidirectional``,
    ``dropout``); what is not given takes :class:`RecurrentSpec`'s default."""
    if rnn is not None:
        if cell is not None or hidden is not None:
            raise ValueError("give the model either rnn=RecurrentSpec(...) or the shorthand cell/hidden, "
                             "not both")
        return rnn
    if cell is not None:
        kw["cell"] = cell
    if hidden is not None:
        kw["hidden"] = (int(hidden),) if isinstance(hidden, int) else tuple(int(h) for h in hidden)
    return RecurrentSpec(**kw)
