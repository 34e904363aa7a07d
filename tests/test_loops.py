"""seqjax/core/loops.py: ``Recurrent`` runs the first registered time loop that applies; a
new loop is one ``register_loop`` call, tried before the generic scan, which stays last."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import linen as nn

from seqjax.core import loops
from seqjax.core.cells import LSTMCell
from seqjax.core.layers import Recurrent


def test_a_registered_loop_runs_before_the_generic_scan(monkeypatch):
    monkeypatch.setattr(loops, "LOOPS", list(loops.LOOPS))  # the registry as it was, afterwards
    assert [lp.name for lp in loops.LOOPS] == ["cudnn", "linear", "newton", "fused", "scan"]
    seen = []

    def twice(call):  # the generic loop's outputs, doubled: a loop of its own, told apart
        seen.append((call.inputs.shape, call.reverse, type(call.cell).__name__))
        outputs, carry = loops.LOOPS[-1].run(call)
        return 2 * outputs, carry

    loops.register_loop("twice", applies=lambda call: isinstance(call.cell, nn.GRUCell), run=twice)
    assert [lp.name for lp in loops.LOOPS] == ["cudnn", "linear", "newton", "fused", "twice", "scan"]
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3))
    lengths = np.array([5, 3])
    gru, lstm = Recurrent(nn.GRUCell(4)), Recurrent(LSTMCell(4), reverse=True)
    gru_params, lstm_params = gru.init(jax.random.PRNGKey(1), x), lstm.init(jax.random.PRNGKey(1), x)
    y, carry = gru.apply(gru_params, x, lengths)
    y_lstm, _ = lstm.apply(lstm_params, x, lengths)  # fused: its own loop comes first
    assert seen[-1] == ((2, 5, 3), False, "GRUCell") and len(seen) == 2  # init and apply

    monkeypatch.setattr(loops, "LOOPS", [lp for lp in loops.LOOPS if lp.name != "twice"])
    y_ref, carry_ref = gru.apply(gru_params, x, lengths)
    np.testing.assert_allclose(y, 2 * y_ref, rtol=1e-6)
    np.testing.assert_allclose(carry, carry_ref, rtol=1e-6)
    np.testing.assert_array_equal(y[1, 3:], 0.0)  # past a row's end: zeros, as every loop gives
    np.testing.assert_allclose(y_lstm, lstm.apply(lstm_params, x, lengths)[0], rtol=1e-6)
    assert len(seen) == 2
    with pytest.raises(ValueError, match="no loop named 'nope'"):
        loops.register_loop("x", applies=lambda call: True, run=twice, before="nope")
