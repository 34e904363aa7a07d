"""Writes tests/fixtures/torch_*.npz: torch RNN/LSTM/GRU weights, inputs and results.

Run from the repository root with torch installed (torch is not a dependency):

    python tests/make_torch_fixtures.py

Each file holds the module's config (mode, num_layers, bidirectional,
batch_first), its state_dict as ``param/<name>``, the ``input`` in the
module's own layout, ``lengths`` (variable lengths go through
``pack_padded_sequence(enforce_sorted=False)`` / ``pad_packed_sequence``),
optional initial states ``h0``/``c0``, and torch's ``output``, ``h_n`` and
``c_n``.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
BATCH, TIME, FEATURES, HIDDEN = 3, 5, 4, 6

CASES = {
    "rnn_tanh_2layer": dict(mode="RNN_TANH", num_layers=2, batch_first=True, initial_state=True),
    "rnn_relu_packed": dict(mode="RNN_RELU", num_layers=1, batch_first=False, lengths=[2, 5, 3]),
    "lstm_2layer_bi_packed": dict(
        mode="LSTM",
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        lengths=[5, 1, 3],
        initial_state=True,
    ),
    "gru_2layer_bi_packed": dict(
        mode="GRU", num_layers=2, bidirectional=True, batch_first=False, lengths=[4, 5, 2]
    ),
}


def make_module(mode: str, num_layers: int, bidirectional: bool, batch_first: bool):
    kw = dict(
        input_size=FEATURES,
        hidden_size=HIDDEN,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
    )
    if mode == "LSTM":
        return torch.nn.LSTM(**kw)
    if mode == "GRU":
        return torch.nn.GRU(**kw)
    return torch.nn.RNN(nonlinearity=mode[4:].lower(), **kw)


def run_torch(module, x, lengths=None, state=None):
    """Runs `module` like a user would: packed when lengths are given.

    Returns (output in the module's layout, h_n, c_n or None) as NumPy.
    """
    with torch.no_grad():
        if lengths is None:
            output, final = module(x, state)
        else:
            packed = pack_padded_sequence(
                x, torch.as_tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
            )
            output, final = module(packed, state)
            time = x.shape[1] if module.batch_first else x.shape[0]
            output, _ = pad_packed_sequence(output, batch_first=module.batch_first, total_length=time)
    h_n, c_n = final if isinstance(final, tuple) else (final, None)
    return output.numpy(), h_n.numpy(), None if c_n is None else c_n.numpy()


def make_case(mode, num_layers, batch_first, bidirectional=False, lengths=None, initial_state=False):
    module = make_module(mode, num_layers, bidirectional, batch_first)
    shape = (BATCH, TIME, FEATURES) if batch_first else (TIME, BATCH, FEATURES)
    x = torch.randn(shape)
    arrays = {
        "mode": np.array(mode),
        "num_layers": np.array(num_layers),
        "bidirectional": np.array(bidirectional),
        "batch_first": np.array(batch_first),
        "input": x.numpy(),
    }
    state = None
    if initial_state:
        state_shape = (num_layers * (2 if bidirectional else 1), BATCH, HIDDEN)
        h0 = torch.randn(state_shape)
        arrays["h0"] = h0.numpy()
        state = h0
        if mode == "LSTM":
            c0 = torch.randn(state_shape)
            arrays["c0"] = c0.numpy()
            state = (h0, c0)
    if lengths is not None:
        arrays["lengths"] = np.array(lengths)
    output, h_n, c_n = run_torch(module, x, lengths, state)
    arrays.update(output=output, h_n=h_n)
    if c_n is not None:
        arrays["c_n"] = c_n
    for name, value in module.state_dict().items():
        arrays[f"param/{name}"] = value.numpy()
    return arrays


def main():
    torch.manual_seed(0)
    FIXTURES.mkdir(exist_ok=True)
    for name, case in CASES.items():
        path = FIXTURES / f"torch_{name}.npz"
        np.savez_compressed(path, **make_case(**case))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
