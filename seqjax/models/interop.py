"""Import weights and states from ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

torch is not a dependency: ``from_torch`` imports it lazily, and everything
else works on NumPy arrays (e.g. a saved ``state_dict``).

The result is a ``seqjax.core.layers.Stacked`` whose ``apply(variables, x,
seq_lengths)`` on batch-major ``x`` [batch, time, features] reproduces the
torch module's outputs (zero past each length, as ``pad_packed_sequence``
gives them) and final states. A time-major torch module
(``batch_first=False``) maps to the same layer: transpose its inputs.

torch keeps one weight per layer and direction; seqjax stores its transpose::

    weight_ih_l{k}[_reverse].T -> params["layer_k"][("forward"|"backward")]["cell"]["ih"]["kernel"]
    bias_ih_l{k}[_reverse]     -> ...["cell"]["ih"]["bias"]         (same for hh)

Final states: torch's h_n (and c_n) are [layers * directions, batch, H],
ordered layer 0 forward, layer 0 backward, layer 1 forward, ...; seqjax
carries are one entry per layer, a (fwd, bwd) pair when bidirectional, with
an LSTM carry being (c, h).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from seqjax.core.cells import make_cell
from seqjax.core.layers import Stacked

MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


def _numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy/JAX array or a torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def from_torch_state_dict(
    state_dict: Mapping[str, Any],
    mode: str,
    num_layers: int,
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> tuple[Stacked, dict]:
    """Builds a ``Stacked`` layer and its variables from a torch state_dict.

    Args:
      state_dict: ``weight_ih_l0``, ``bias_hh_l1_reverse``, ... as arrays.
      mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU" (torch's ``module.mode``).
      num_layers: torch's ``num_layers``.
      bidirectional: torch's ``bidirectional``.
      dropout: torch's ``dropout`` (between layers, as in ``Stacked``).

    Returns:
      (layer, {"params": ...}).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, got {mode!r}")
    if any(key.startswith("weight_hr") for key in state_dict):
        raise ValueError("torch modules with proj_size > 0 are not supported")

    def get(name: str) -> jnp.ndarray:
        if name not in state_dict:
            raise ValueError(
                f"state_dict has no {name!r} (bias=False modules are not supported);"
                f" keys: {sorted(state_dict)}"
            )
        return jnp.asarray(_numpy(state_dict[name]))

    def cell_params(layer: int, suffix: str) -> dict:
        return {
            "cell": {
                part: {
                    "kernel": get(f"weight_{part}_l{layer}{suffix}").T,
                    "bias": get(f"bias_{part}_l{layer}{suffix}"),
                }
                for part in ("ih", "hh")
            }
        }

    params = {}
    for k in range(num_layers):
        if bidirectional:
            params[f"layer_{k}"] = {
                "forward": cell_params(k, ""),
                "backward": cell_params(k, "_reverse"),
            }
        else:
            params[f"layer_{k}"] = cell_params(k, "")
    hidden = get("weight_hh_l0").shape[1]
    layer = Stacked(
        cell=MODES[mode],
        hidden=hidden,
        layers=num_layers,
        dropout=dropout,
        bidirectional=bidirectional,
    )
    return layer, {"params": params}


def from_torch(module) -> tuple[Stacked, dict]:
    """``from_torch_state_dict`` for a ``torch.nn.RNN``/``LSTM``/``GRU``."""
    import torch

    if not isinstance(module, torch.nn.RNNBase) or module.mode not in MODES:
        raise TypeError(f"expected torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
    if not module.bias:
        raise ValueError("torch modules with bias=False are not supported")
    return from_torch_state_dict(
        module.state_dict(),
        module.mode,
        module.num_layers,
        module.bidirectional,
        module.dropout,
    )


def _has_cell_state(cell: str) -> bool:
    """Whether the cell's carry is (c, h) (from its ``initialize_carry``), else h."""
    import jax

    carry = make_cell(cell, 1).initialize_carry(jax.random.key(0), (1, 1))
    return len(jax.tree.leaves(carry)) == 2


def torch_state_to_carries(state, cell: str, bidirectional: bool = False) -> tuple:
    """torch's h_n, or (h_n, c_n) for "lstm", [L*D, B, H] -> seqjax carries."""
    if _has_cell_state(cell):
        h, c = (_numpy(s) for s in state)
        carries = [(jnp.asarray(ci), jnp.asarray(hi)) for ci, hi in zip(c, h)]
    else:
        carries = [jnp.asarray(hi) for hi in _numpy(state)]
    if bidirectional:
        return tuple(zip(carries[0::2], carries[1::2]))
    return tuple(carries)


def carries_to_torch_state(carries, cell: str, bidirectional: bool = False):
    """seqjax carries -> torch's h_n, or (h_n, c_n) for "lstm", as NumPy [L*D, B, H]."""
    flat = [d for layer in carries for d in layer] if bidirectional else list(carries)
    if _has_cell_state(cell):
        return np.stack([_numpy(h) for _, h in flat]), np.stack([_numpy(c) for c, _ in flat])
    return np.stack([_numpy(h) for h in flat])
