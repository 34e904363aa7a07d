"""seqjax layers built from torch weights reproduce torch's outputs and states.

The fixtures (written by make_torch_fixtures.py) need no torch; the live test
runs only where torch is installed.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

from seqjax.models.interop import (
    MODES,
    carries_to_torch_state,
    from_torch_state_dict,
    torch_state_to_carries,
)

TESTS = pathlib.Path(__file__).parent
FIXTURES = sorted((TESTS / "fixtures").glob("torch_*.npz"))


def run_seqjax(layer, variables, x, batch_first, lengths=None, h0=None, c0=None):
    """Runs `layer` on torch-layout inputs; returns torch-layout (output, h_n, c_n)."""
    cell, bidirectional = layer.cell, layer.bidirectional
    if not batch_first:
        x = np.swapaxes(x, 0, 1)
    initial = None
    if h0 is not None:
        initial = torch_state_to_carries((h0, c0) if cell == "lstm" else h0, cell, bidirectional)
    output, carries = jax.jit(layer.apply)(variables, x, lengths, initial)
    output = np.asarray(output)
    if not batch_first:
        output = np.swapaxes(output, 0, 1)
    state = carries_to_torch_state(carries, cell, bidirectional)
    h_n, c_n = state if cell == "lstm" else (state, None)
    return output, h_n, c_n


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_matches_torch(path):
    data = dict(np.load(path))
    state_dict = {k[len("param/") :]: v for k, v in data.items() if k.startswith("param/")}
    layer, variables = from_torch_state_dict(
        state_dict, str(data["mode"]), int(data["num_layers"]), bool(data["bidirectional"])
    )
    output, h_n, c_n = run_seqjax(
        layer,
        variables,
        data["input"],
        bool(data["batch_first"]),
        data.get("lengths"),
        data.get("h0"),
        data.get("c0"),
    )
    np.testing.assert_allclose(output, data["output"], atol=1e-5)
    np.testing.assert_allclose(h_n, data["h_n"], atol=1e-5)
    if "c_n" in data:
        np.testing.assert_allclose(c_n, data["c_n"], atol=1e-5)


def test_fixtures_cover_every_mode():
    modes = {str(np.load(path)["mode"]) for path in FIXTURES}
    assert modes == set(MODES)


def test_state_conversion_round_trip():
    rng = np.random.default_rng(0)
    h, c = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)  # 2 layers x 2 directions
    carries = torch_state_to_carries((h, c), "lstm", bidirectional=True)
    assert len(carries) == 2 and len(carries[1]) == 2
    layer1_backward_c, layer1_backward_h = carries[1][1]
    np.testing.assert_array_equal(layer1_backward_h, h[3])
    np.testing.assert_array_equal(layer1_backward_c, c[3])
    back_h, back_c = carries_to_torch_state(carries, "lstm", bidirectional=True)
    np.testing.assert_array_equal(back_h, h)
    np.testing.assert_array_equal(back_c, c)

    gru = torch_state_to_carries(h, "gru")
    assert len(gru) == 4 and gru[2].shape == (3, 5)
    np.testing.assert_array_equal(carries_to_torch_state(gru, "gru"), h)


def test_bad_state_dicts_raise():
    with pytest.raises(ValueError, match="mode must be one of"):
        from_torch_state_dict({}, "SRU", 1)
    with pytest.raises(ValueError, match="no 'weight_ih_l0'"):
        from_torch_state_dict({}, "GRU", 1)


def _fixture_maker():
    spec = importlib.util.spec_from_file_location("make_torch_fixtures", TESTS / "make_torch_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", list(MODES))
def test_live_torch_modules(mode):
    torch = pytest.importorskip("torch")
    from seqjax.models.interop import from_torch

    maker = _fixture_maker()
    torch.manual_seed(1)
    gated = mode in ("LSTM", "GRU")
    batch_first = mode != "GRU"
    module = maker.make_module(mode, 2 if gated else 1, gated, batch_first)
    shape = (maker.BATCH, maker.TIME, maker.FEATURES)
    x = torch.randn(shape if batch_first else (shape[1], shape[0], shape[2]))
    lengths = [3, maker.TIME, 1]
    output, h_n, c_n = maker.run_torch(module, x, lengths)

    layer, variables = from_torch(module)
    got, got_h, got_c = run_seqjax(layer, variables, x.numpy(), batch_first, np.array(lengths))
    np.testing.assert_allclose(got, output, atol=1e-5)
    np.testing.assert_allclose(got_h, h_n, atol=1e-5)
    if c_n is not None:
        np.testing.assert_allclose(got_c, c_n, atol=1e-5)
