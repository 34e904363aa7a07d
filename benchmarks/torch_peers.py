"""PyTorch peers of two seqjax step types: training and eval throughput, for side-by-side ratios.

    python benchmarks/torch_peers.py classifier   # as `seqjax bench agnews:bilstm-2x64`
    python benchmarks/torch_peers.py seq2seq      # as `seqjax bench translate:word-gru-attention`

Each subcommand builds the model of the seqjax preset in plain PyTorch, times ``--steps``
train steps (forward, cross-entropy, backward, gradient clipping when ``--clip`` > 0, Adam
update) and ``--steps`` eval steps (``no_grad`` forward and loss) after a few warm-up
steps, on one random batch of the shape that ``seqjax bench`` feeds (the longest bucket,
every row full length), and prints one JSON object: ``impl``, the shapes, ``threads``,
``tokens_per_step``, ``train_tokens_per_s`` and ``eval_tokens_per_s``. Tokens are counted
as the seqjax task's ``tokens(batch)`` counts them:

- ``classifier``: real (unpadded) tokens, ``lengths.sum()`` = ``B * T``;
- ``seq2seq``: target tokens predicted (``<eos>`` included, padding not), ``B * T``; the
  ``S`` source tokens the encoder reads are not counted.

The flags' defaults are the presets' shapes and optimizer settings (``agnews:bilstm-2x64``
does not clip gradients, ``translate:word-gru-attention`` clips at 5). The batch's lengths
are honoured as seqjax honours them (it masks the recurrence by the lengths): the RNN reads
a ``pack_padded_sequence``; ``--no-pack`` feeds it the padded batch instead (every row is
full length, so the outputs are the same; only the time may differ).

``benchmarks/bench_peers.py --variant agnews`` / ``--variant seq2seq`` runs these against
``seqjax bench``. Needs torch (CPU build: pip install torch==2.13.0); seqjax itself never imports it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TRAIN_WARMUP = 5
EVAL_WARMUP = 3


def run_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, pack: bool):
    """``rnn`` (batch_first) over ``x [B, T, E]`` -> ``(outputs [B, T, dirs*H], final state)``
    (``h_n [L*dirs, B, H]``, or ``(h_n, c_n)`` for an LSTM); packed by ``lengths int64 [B]``
    when ``pack``."""
    if not pack:
        return rnn(x)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h_n = rnn(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], h_n


class Classifier(nn.Module):
    """``seqjax.models.classifier.TextClassifier`` with ``cell=lstm``, ``bidirectional=True``,
    ``pooling=last``: embedding -> bidirectional ``nn.LSTM`` (dropout between layers) ->
    [forward output at the last valid step; backward output at step 0] -> dropout -> Linear."""

    def __init__(
        self, vocab: int, embed: int, hidden: int, layers: int, classes: int, dropout: float, pack: bool
    ):
        super().__init__()
        self.pack = pack
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``tokens int64 [B, T]``, ``lengths int64 [B]`` -> logits ``[B, C]``."""
        out, _ = run_rnn(self.rnn, self.embed(tokens), lengths, self.pack)  # [B, T, 2H]
        h = self.rnn.hidden_size
        fwd = out[torch.arange(out.shape[0]), lengths - 1, :h]  # [B, H]
        bwd = out[:, 0, h:]  # [B, H]: the backward direction has read the whole row there
        return self.out(self.drop(torch.cat([fwd, bwd], -1)))


class Seq2Seq(nn.Module):
    """``seqjax.models.seq2seq.Seq2Seq`` with one GRU layer and ``attention=bahdanau``.

    Encoder: embedding -> dropout -> ``nn.GRU``; its final state starts the decoder. The
    keys are projected once per source. Decoder, one step (``nn.GRUCell``, in a Python
    loop over the target positions, the standard PyTorch way: a cell whose input depends
    on the attention over the previous state cannot run as one ``nn.GRU`` call)::

        score_s  = v . tanh(W_q h_{t-1} + W_k e_s)    (-inf-like on source padding)
        c_t      = softmax(score) @ e                 e: encoder outputs [B, S, H]
        h_t      = GRUCell([emb(y_{t-1}); c_t], h_{t-1})
        logits_t = W_o dropout([h_t; c_t]) + b_o      (one Linear over all positions after the loop)

    Dropout as seqjax's: on source and target embeddings and on the readout input.
    """

    def __init__(
        self, src_vocab: int, tgt_vocab: int, embed: int, hidden: int, units: int, dropout: float, pack: bool
    ):
        super().__init__()
        self.pack = pack
        self.src_embed = nn.Embedding(src_vocab, embed)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.GRU(embed, hidden, batch_first=True)
        self.w_q = nn.Linear(hidden, units, bias=False)
        self.w_k = nn.Linear(hidden, units, bias=False)
        self.v = nn.Parameter(torch.randn(units) * units**-0.5)
        self.cell = nn.GRUCell(embed + hidden, hidden)
        self.readout = nn.Linear(2 * hidden, tgt_vocab)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """``src int64 [B, S]``, ``src_len int64 [B]``, ``tgt_in int64 [B, T]`` (``<sos> y_1 ..``)
        -> logits ``[B, T, V]`` (teacher forcing)."""
        values, h = run_rnn(self.encoder, self.drop(self.src_embed(src)), src_len, self.pack)  # [B, S, H]
        h = h[0]  # [B, H]
        keys = self.w_k(values)  # [B, S, A]
        pad = torch.arange(src.shape[1])[None, :] >= src_len[:, None]  # [B, S]
        emb = self.drop(self.tgt_embed(tgt_in))  # [B, T, E]
        hs, contexts = [], []
        for t in range(tgt_in.shape[1]):
            scores = torch.tanh(self.w_q(h)[:, None, :] + keys) @ self.v  # [B, S]
            weights = torch.softmax(scores.masked_fill(pad, torch.finfo(scores.dtype).min), -1)
            context = torch.bmm(weights[:, None, :], values)[:, 0]  # [B, H]
            h = self.cell(torch.cat([emb[:, t], context], -1), h)
            hs.append(h)
            contexts.append(context)
        feat = torch.cat([torch.stack(hs, 1), torch.stack(contexts, 1)], -1)  # [B, T, 2H]
        return self.readout(self.drop(feat))


def timed(fn, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def measure(model: nn.Module, loss_of, train_batch: dict, eval_batch: dict, args) -> tuple[float, float]:
    """``(train seconds, eval seconds)`` of ``args.steps`` steps each; ``loss_of(model, batch)``
    is the scalar loss."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def train_step():
        opt.zero_grad()
        loss_of(model, train_batch).backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()

    model.train()
    train_s = timed(train_step, TRAIN_WARMUP, args.steps)
    model.eval()
    with torch.no_grad():
        eval_s = timed(lambda: loss_of(model, eval_batch), EVAL_WARMUP, args.steps)
    return train_s, eval_s


def classifier(args) -> dict:
    """Times :class:`Classifier` on ``tokens [B, T]`` with every length ``T``."""
    V, T = args.vocab, args.seq_len
    model = Classifier(V, args.embed, args.hidden, args.layers, args.classes, args.dropout, not args.no_pack)

    def batch(b):
        return {
            "tokens": torch.randint(2, V, (b, T)),
            "lengths": torch.full((b,), T),
            "labels": torch.randint(0, args.classes, (b,)),
        }

    def loss_of(m, x):
        return F.cross_entropy(m(x["tokens"], x["lengths"]), x["labels"])

    train, evaluation = batch(args.batch), batch(args.eval_batch)
    train_s, eval_s = measure(model, loss_of, train, evaluation, args)
    tokens = int(train["lengths"].sum())  # ClassifyTask.tokens: real tokens
    return {
        "impl": f"torch-{torch.__version__}-nn.LSTM",
        "model": "classifier",
        "vocab": V,
        "embed": args.embed,
        "hidden": args.hidden,
        "layers": args.layers,
        "bidirectional": True,
        "classes": args.classes,
        "batch": args.batch,
        "seq_len": T,
        "eval_batch": args.eval_batch,
        "packed": not args.no_pack,
        "threads": torch.get_num_threads(),
        "tokens_per_step": tokens,
        "train_tokens_per_s": round(args.steps * tokens / train_s, 1),
        "eval_tokens_per_s": round(args.steps * int(evaluation["lengths"].sum()) / eval_s, 1),
    }


def seq2seq(args) -> dict:
    """Times :class:`Seq2Seq` on ``src [B, S]`` (every length ``S``) and ``tgt [B, T + 1]``."""
    S, T, SV, TV = args.src_len, args.tgt_len, args.src_vocab, args.tgt_vocab
    units = args.attention_units or args.hidden
    model = Seq2Seq(SV, TV, args.embed, args.hidden, units, args.dropout, not args.no_pack)

    def batch(b):
        tgt = torch.randint(4, TV, (b, T + 1))  # <sos> y_1 .. y_T, no padding
        return {"src": torch.randint(4, SV, (b, S)), "src_len": torch.full((b,), S), "tgt": tgt}

    def loss_of(m, x):
        logits = m(x["src"], x["src_len"], x["tgt"][:, :-1])  # [B, T, V]
        return F.cross_entropy(logits.flatten(0, 1), x["tgt"][:, 1:].flatten())

    train_s, eval_s = measure(model, loss_of, batch(args.batch), batch(args.eval_batch), args)
    return {
        "impl": f"torch-{torch.__version__}-nn.GRU+nn.GRUCell",
        "model": "seq2seq",
        "src_vocab": SV,
        "tgt_vocab": TV,
        "embed": args.embed,
        "hidden": args.hidden,
        "layers": 1,
        "attention_units": units,
        "batch": args.batch,
        "src_len": S,
        "tgt_len": T,
        "eval_batch": args.eval_batch,
        "packed": not args.no_pack,
        "threads": torch.get_num_threads(),
        "tokens_per_step": args.batch * T,
        "train_tokens_per_s": round(args.steps * args.batch * T / train_s, 1),  # TranslateTask.tokens
        "eval_tokens_per_s": round(args.steps * args.eval_batch * T / eval_s, 1),
    }


def common(p: argparse.ArgumentParser, *, embed: int, lr: float, clip: float, dropout: float) -> None:
    """The flags both subcommands take; defaults of the seqjax preset."""
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--eval-batch", type=int, default=256)
    p.add_argument("--embed", type=int, default=embed)
    p.add_argument("--dropout", type=float, default=dropout)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--clip", type=float, default=clip, help="clip gradients by global norm (0: off)")
    p.add_argument(
        "--no-pack", action="store_true", help="feed the RNN the padded batch, not a packed sequence"
    )
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="0: torch default")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="model", required=True)
    c = sub.add_parser("classifier", help="agnews:bilstm-2x64")
    c.add_argument("--vocab", type=int, default=20000)
    c.add_argument("--seq-len", type=int, default=128, help="T: data.max_len, the longest bucket")
    c.add_argument("--hidden", type=int, default=64, help="per direction")
    c.add_argument("--layers", type=int, default=2)
    c.add_argument("--classes", type=int, default=4)
    common(c, embed=128, lr=1e-3, clip=0.0, dropout=0.0)
    c.set_defaults(run=classifier)
    s = sub.add_parser("seq2seq", help="translate:word-gru-attention")
    s.add_argument("--src-vocab", type=int, default=6000)
    s.add_argument("--tgt-vocab", type=int, default=4000)
    s.add_argument("--src-len", type=int, default=13, help="S: data.max_len + 1, the longest bucket")
    s.add_argument("--tgt-len", type=int, default=13, help="T: decoder steps, data.max_len + 1")
    s.add_argument("--hidden", type=int, default=256)
    s.add_argument("--attention-units", type=int, default=0, help="0: --hidden")
    common(s, embed=256, lr=2e-3, clip=5.0, dropout=0.1)
    s.set_defaults(run=seq2seq)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
