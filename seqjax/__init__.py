"""seqjax: recurrent sequence models in JAX/Flax with PyTorch-exact cells."""

from seqjax.core.attention import BahdanauAttention
from seqjax.core.cells import ElmanCell, GRUCell, LSTMCell, make_cell, register_cell
from seqjax.core.layers import Bidirectional, Recurrent, Stacked, hidden_sizes, zero_carry
from seqjax.core.mincells import MinGRUCell, MinLSTMCell
from seqjax.models.build import RecurrentSpec

__version__ = "0.1.0"

#: the Python API (seqjax/app/api.py), imported on first use
_API = ("train", "load_run", "evaluate", "tune", "Run")


def __getattr__(name: str):
    if name in _API:
        from seqjax.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqjax' has no attribute {name!r}")

__all__ = [
    "BahdanauAttention",
    "Bidirectional",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "RecurrentSpec",
    "Recurrent",
    "Run",
    "Stacked",
    "evaluate",
    "hidden_sizes",
    "load_run",
    "make_cell",
    "register_cell",
    "train",
    "tune",
    "zero_carry",
]
