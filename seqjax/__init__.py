"""seqjax: recurrent sequence models in JAX/Flax with PyTorch-exact cells."""

from seqjax.attention import BahdanauAttention
from seqjax.cells import ElmanCell, GRUCell, LSTMCell, make_cell
from seqjax.layers import Bidirectional, Recurrent, Stacked, hidden_sizes, zero_carry

__version__ = "0.1.0"

__all__ = [
    "BahdanauAttention",
    "Bidirectional",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "Recurrent",
    "Stacked",
    "hidden_sizes",
    "make_cell",
    "zero_carry",
]
