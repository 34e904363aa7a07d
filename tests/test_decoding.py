"""Greedy and beam search: K=1 equals greedy, beam beats greedy on a constructed model,
one compilation for many batches, early exit, attention bookkeeping."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.core import decoding
from seqjax.models.seq2seq import Seq2Seq

PAD, SOS, EOS, A, B, C = 0, 1, 2, 3, 4, 5


def table_step_fn(table):
    """A 'model' whose next-token distribution depends only on the previous token:
    ``probs = table[prev]``. State = number of steps taken; attention = one-hot of it."""
    logt = jnp.log(jnp.asarray(table, jnp.float32) + 1e-12)

    def step(memory, state, tokens):
        s = memory["mask"].shape[1]
        attn = jax.nn.one_hot(jnp.minimum(state, s - 1), s)
        return logt[tokens], state + 1, attn

    return step


# P(next | prev). Greedy: sos -> A (.55) -> C (.35) -> eos (1.0): p = .1925.
# Best:                sos -> B (.45) -> eos (.9):             p = .405.
TABLE = np.zeros((6, 6))
TABLE[SOS, [A, B]] = [0.55, 0.45]
TABLE[A, [EOS, B, C]] = [0.30, 0.35 - 1e-3, 0.35 + 1e-3]
TABLE[B, [EOS, C]] = [0.9, 0.1]
TABLE[C, EOS] = 1.0
TABLE[EOS, EOS] = 1.0
TABLE[PAD, EOS] = 1.0


def _mem(b, s=4):
    return {"mask": jnp.ones((b, s), bool)}


def test_beam_finds_higher_scoring_output_than_greedy():
    step = table_step_fn(TABLE)
    g = decoding.greedy(step, _mem(2), jnp.zeros(2, jnp.int32), sos_id=SOS, eos_id=EOS, max_len=6)
    np.testing.assert_array_equal(g.tokens[0], [A, C, EOS, PAD, PAD, PAD])
    np.testing.assert_allclose(np.exp(g.scores), 0.55 * (0.35 + 1e-3) * 1.0, rtol=1e-5)
    np.testing.assert_array_equal(g.lengths, [3, 3])
    bs = decoding.beam_search(step, _mem(2), jnp.zeros(2, jnp.int32), beam=2, sos_id=SOS, eos_id=EOS,
                              max_len=6, alpha=0.0)
    np.testing.assert_array_equal(bs.tokens[0, 0], [B, EOS, PAD, PAD, PAD, PAD])
    np.testing.assert_allclose(np.exp(bs.scores[:, 0]), 0.45 * 0.9, rtol=1e-5)
    assert float(bs.scores[0, 0]) > float(g.scores[0]) + 0.7  # log(.405/.1929) = 0.74
    np.testing.assert_array_equal(bs.lengths[:, 0], [2, 2])
    # attention rows follow the chosen hypothesis, zero after its end
    np.testing.assert_array_equal(bs.attention[0, 0, :, :].argmax(-1)[:2], [0, 1])
    assert float(bs.attention[0, 0, 2:].sum()) == 0.0


def _exhaustive_best(table, max_len, alpha):
    """Best GNMT-penalised score over every sequence ending in eos within max_len."""
    best, frontier = -np.inf, [((), 0.0)]
    for n in range(1, max_len + 1):
        nxt = []
        for seq, lp in frontier:
            prev = seq[-1] if seq else SOS
            for tok in range(6):
                if table[prev, tok] > 0:
                    s = lp + np.log(table[prev, tok])
                    if tok == EOS:
                        best = max(best, s / ((5 + n) / 6) ** alpha)
                    else:
                        nxt.append((seq + (tok,), s))
        frontier = nxt
    return best


@pytest.mark.parametrize("alpha", [0.0, 6.0])
def test_beam_with_length_penalty_finds_exhaustive_best(alpha):
    # alpha=0: B eos (len 2); alpha=6 favours length 3: A C eos
    bs = decoding.beam_search(table_step_fn(TABLE), _mem(1), jnp.zeros(1, jnp.int32), beam=3,
                              sos_id=SOS, eos_id=EOS, max_len=6, alpha=alpha)
    np.testing.assert_allclose(float(bs.scores[0, 0]), _exhaustive_best(TABLE, 6, alpha), rtol=1e-5)
    want = [B, EOS, PAD] if alpha == 0 else [A, C, EOS]
    np.testing.assert_array_equal(bs.tokens[0, 0, :3], want)
    assert np.all(np.diff(np.asarray(bs.scores[0])) <= 0)  # sorted best first


def _random_model(seed=0, attention="bahdanau", cell="gru"):
    m = Seq2Seq(17, 19, cell=cell, hidden=16, embed=8, attention=attention)
    src = jax.random.randint(jax.random.PRNGKey(seed), (5, 7), 4, 17)
    lengths = jnp.array([7, 3, 5, 1, 6])
    params = m.init(jax.random.PRNGKey(seed), src, lengths, src[:, :3])["params"]
    # sharpen the output distribution so sequences end within max_len
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 4.0 if "readout" in jax.tree_util.keystr(p) else x, params)
    return m, params, src, lengths


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_1_equals_greedy(cell):
    m, params, src, lengths = _random_model(1, cell=cell)
    step = decoding.seq2seq_step_fn(m, params)

    @jax.jit
    def run(src, lengths):
        memory, state = m.apply({"params": params}, src, lengths, method=Seq2Seq.encode)
        g = decoding.greedy(step, memory, state, sos_id=2, eos_id=3, max_len=12)
        b = decoding.beam_search(step, memory, state, beam=1, sos_id=2, eos_id=3, max_len=12, alpha=0.0)
        return g, b

    g, b = run(src, lengths)
    np.testing.assert_array_equal(b.tokens[:, 0], g.tokens)
    np.testing.assert_array_equal(b.lengths[:, 0], g.lengths)
    np.testing.assert_allclose(b.scores[:, 0], g.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.attention[:, 0], g.attention, atol=1e-6)
    # attention: zero on source padding, sums to 1 on generated steps
    pad = np.arange(7)[None, None, :] >= np.asarray(lengths)[:, None, None]
    assert float(np.abs(np.where(pad, g.attention, 0)).max()) == 0.0
    steps = np.arange(12)[None, :] < np.asarray(g.lengths)[:, None]
    np.testing.assert_allclose(np.asarray(g.attention).sum(-1)[steps], 1.0, rtol=1e-5)


def test_greedy_matches_python_loop():
    m, params, src, lengths = _random_model(2)
    memory, state = m.apply({"params": params}, src, lengths, method=Seq2Seq.encode)
    g = jax.jit(lambda mem, st: decoding.greedy(decoding.seq2seq_step_fn(m, params), mem, st,
                                                  sos_id=2, eos_id=3, max_len=10))(memory, state)
    for row in range(src.shape[0]):
        mem1 = jax.tree.map(lambda x, row=row: x[row:row + 1], memory)
        st = jax.tree.map(lambda x, row=row: x[row:row + 1], state)
        tok, out, total = jnp.array([2]), [], 0.0
        for _ in range(10):
            logits, st, _ = m.apply({"params": params}, mem1, st, tok, method=Seq2Seq.decode_step)
            lp = jax.nn.log_softmax(logits)[0]
            tok = jnp.argmax(lp)[None]
            total += float(lp[tok[0]])
            out.append(int(tok[0]))
            if out[-1] == 3:
                break
        np.testing.assert_array_equal(np.asarray(g.tokens[row, :len(out)]), out)
        assert int(g.lengths[row]) == len(out)
        np.testing.assert_allclose(float(g.scores[row]), total, rtol=1e-5)


def test_decoding_compiles_once_for_many_batches():
    m, params, src, lengths = _random_model(3)
    traces = []

    @jax.jit
    def translate(src, lengths):
        traces.append(1)  # runs only while tracing
        memory, state = m.apply({"params": params}, src, lengths, method=Seq2Seq.encode)
        return decoding.beam_search(decoding.seq2seq_step_fn(m, params), memory, state, beam=3,
                                    sos_id=2, eos_id=3, max_len=9)

    outs = []
    for seed in range(4):  # 4 batches of different sentences (20 sentences), same shapes
        s = jax.random.randint(jax.random.PRNGKey(100 + seed), src.shape, 4, 17)
        outs.append(translate(s, jnp.array([7, 2, 4, 6, 5])).tokens)
    assert len(traces) == 1
    assert translate._cache_size() == 1
    assert not all(np.array_equal(outs[0], o) for o in outs[1:])


def test_early_exit_when_all_finished():
    # every step emits eos: the loop must stop after one iteration
    table = np.zeros((6, 6))
    table[:, EOS] = 1.0
    step = table_step_fn(table)
    g = decoding.greedy(step, _mem(3), jnp.zeros(3, jnp.int32), sos_id=SOS, eos_id=EOS, max_len=50)
    np.testing.assert_array_equal(g.lengths, [1, 1, 1])
    assert int(g.steps) == 1
    bs = decoding.beam_search(step, _mem(3), jnp.zeros(3, jnp.int32), beam=2, sos_id=SOS, eos_id=EOS,
                              max_len=50)
    np.testing.assert_array_equal(bs.lengths[:, 0], [1, 1, 1])
    assert int(bs.steps) == 1
    # a greedy row that ends late keeps the loop going only until it ends
    g = decoding.greedy(table_step_fn(TABLE), _mem(2), jnp.zeros(2, jnp.int32), sos_id=SOS,
                        eos_id=EOS, max_len=50)
    assert int(g.steps) == 3


def test_inactive_filler_rows_do_not_hold_up_the_loop():
    """A padded batch's filler rows (active=False) count as finished from the start."""

    def step(memory, state, tokens):  # row 1 never emits eos; the others do at once
        logits = jnp.where(memory["stuck"][:, None], jax.nn.one_hot(A, 6), jax.nn.one_hot(EOS, 6))
        return 10.0 * logits, state, jnp.zeros((tokens.shape[0], 2))

    mem = {"stuck": jnp.array([False, True, False])}
    active = jnp.array([True, False, True])
    g = decoding.greedy(step, mem, jnp.zeros(3), sos_id=SOS, eos_id=EOS, max_len=40)
    assert int(g.steps) == 40  # without the mask the stuck row runs to max_len
    g = decoding.greedy(step, mem, jnp.zeros(3), sos_id=SOS, eos_id=EOS, max_len=40, active=active)
    assert int(g.steps) == 1
    np.testing.assert_array_equal(g.lengths, [1, 0, 1])
    bs = decoding.beam_search(step, mem, jnp.zeros(3), beam=2, sos_id=SOS, eos_id=EOS, max_len=40,
                              active=active)
    assert int(bs.steps) == 1
    np.testing.assert_array_equal(bs.tokens[[0, 2], 0, 0], [EOS, EOS])
