"""PyTorch LM step on the GPU (cuDNN ``nn.LSTM``/``nn.GRU``/``nn.RNN``): the peer of
``seqjax bench`` there, with the arguments and JSON line of ``../shared/peers/torch_lm.py``.

    python benchmarks/torch_lm_gpu.py --cell lstm --hidden 650 --steps 50

Embedding -> ``layers`` recurrent layers -> linear read-out over ``vocab``; SGD lr 1, gradient
clipping 5, the carry detached between steps (truncated BPTT). Synchronised timings of
``--steps`` train steps and eval forwards after warm-up; falls back to the CPU without CUDA.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=sorted(RNNS), default="lstm")
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    V, H, L, T = a.vocab, a.hidden, a.layers, a.bptt
    emb, rnn, out = nn.Embedding(V, H).to(dev), RNNS[a.cell](H, H, L).to(dev), nn.Linear(H, V).to(dev)
    params = [*emb.parameters(), *rnn.parameters(), *out.parameters()]
    opt, loss_fn = torch.optim.SGD(params, lr=1.0), nn.CrossEntropyLoss()

    def zero(b):
        h = torch.zeros(L, b, H, device=dev)
        return (h, h.clone()) if a.cell == "lstm" else h

    def detach(h):
        return tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()

    x, y = torch.randint(0, V, (T, a.batch), device=dev), torch.randint(0, V, (T, a.batch), device=dev)

    def step(h):
        opt.zero_grad()
        z, h = rnn(emb(x), detach(h))
        loss_fn(out(z).view(-1, V), y.view(-1)).backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        return h

    h = zero(a.batch)
    for _ in range(5):
        h = step(h)
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        h = step(h)
    sync()
    train = a.steps * a.batch * T / (time.perf_counter() - t0)
    xe, he = torch.randint(0, V, (T, a.eval_batch), device=dev), zero(a.eval_batch)
    with torch.no_grad():
        for _ in range(3):
            out(rnn(emb(xe), he)[0])
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            out(rnn(emb(xe), he)[0])
        sync()
    ev = a.steps * a.eval_batch * T / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(
        json.dumps(
            {
                "impl": f"torch-{torch.__version__}-nn.{RNNS[a.cell].__name__}",
                "device": name,
                "cudnn": torch.backends.cudnn.is_available(),
                "train_tokens_per_s": round(train, 1),
                "eval_tokens_per_s": round(ev, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
