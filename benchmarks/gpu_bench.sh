#!/usr/bin/env bash
# GPU throughput, side by side: `seqjax bench` against PyTorch nn.LSTM (cuDNN) at the
# PTB-small (2x200) and PTB-large (2x1500) LSTM language-model shapes (vocabulary 10,000,
# batch 20, BPTT 35, eval batch 64), float32 and bfloat16 for seqjax, then the cuDNN LSTM
# backend (model.backend=cudnn) and the fused read-out (model.head_chunk) on the GPU. One JSON object a
# line in $OUT/bench_gpu.jsonl, each tagged with "run"; a summary table on stdout.
#
#   bash benchmarks/gpu_bench.sh             # on the GPU machine, from the repository root
#   STEPS=100 bash benchmarks/gpu_bench.sh   # more timed steps per run (default 50)
#
# Finishes in about 4 minutes: every run has its own time limit (RUN_TIMEOUT, default 150 s) and the script stops
# starting runs after DEADLINE seconds (default 170). The device tool's machine has
# jax/flax/optax/orbax/torch but not ml_collections: wheels in .gpu/whl are installed to
# /tmp/site first when present. torch missing or without CUDA: its runs are skipped.
set -u
OUT=${OUT:-/tmp/seqjax-gpu-out}
STEPS=${STEPS:-50}
DEADLINE=${DEADLINE:-170}
mkdir -p "$OUT"
J="$OUT/bench_gpu.jsonl"
: > "$J"
start=$(date +%s)
if ! python3 -c "import ml_collections" 2>/dev/null && compgen -G ".gpu/whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

left() { echo $(( DEADLINE - ($(date +%s) - start) )); }

tag() {  # tag NAME: prefix each JSON line of stdin with "run": NAME, append to $J and echo it
  python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        print(json.dumps({"run": sys.argv[1], **json.loads(line)}))' "$1" | tee -a "$J"
}

seqjax_run() {  # seqjax_run NAME HIDDEN [--set k=v ...]
  local name=$1 hidden=$2; shift 2
  [ "$(left)" -gt 25 ] || { echo "skip $name: past the deadline"; return; }
  timeout "$(( $(left) < ${RUN_TIMEOUT:-150} ? $(left) : ${RUN_TIMEOUT:-150} ))" python3 -m seqjax bench ptb_lm:zaremba-small --steps "$STEPS" \
    --set model.hidden="$hidden" --set model.embed="$hidden" --set data.bptt=35 --set data.batch_size=20 \
    --set data.eval_batch_size=64 "$@" 2> "$OUT/$name.err" | tag "$name"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "$name failed (rc $rc$([ "$rc" = 124 ] && echo ', time limit')): $(grep -v WARN "$OUT/$name.err" | tail -3)"
}

cat > /tmp/torch_lm_gpu.py <<'EOF'
"""../shared/peers/torch_lm.py, on the GPU when there is one (cuDNN nn.LSTM), synchronised."""
import json, sys, time
import torch, torch.nn as nn
H, steps = int(sys.argv[1]), int(sys.argv[2])
V, L, B, T, EB = 10000, 2, 20, 35, 64
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
torch.manual_seed(0)
class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(V, H), nn.LSTM(H, H, L), nn.Linear(H, V)
    def forward(self, x, h):
        y, h = self.rnn(self.emb(x), h)
        return self.out(y), h
model = LM().to(dev)
opt = torch.optim.SGD(model.parameters(), lr=1.0)
loss_fn = nn.CrossEntropyLoss()
x, y = torch.randint(0, V, (T, B), device=dev), torch.randint(0, V, (T, B), device=dev)
zero = lambda b: (torch.zeros(L, b, H, device=dev), torch.zeros(L, b, H, device=dev))
def step(h):
    opt.zero_grad()
    out, h = model(x, tuple(t.detach() for t in h))
    loss_fn(out.view(-1, V), y.view(-1)).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return h
h = zero(B)
for _ in range(5):
    h = step(h)
sync(); t0 = time.perf_counter()
for _ in range(steps):
    h = step(h)
sync(); train = steps * B * T / (time.perf_counter() - t0)
model.eval(); xe = torch.randint(0, V, (T, EB), device=dev)
with torch.no_grad():
    he = zero(EB)
    for _ in range(3):
        model(xe, he)
    sync(); t0 = time.perf_counter()
    for _ in range(steps):
        model(xe, he)
    sync(); ev = steps * EB * T / (time.perf_counter() - t0)
print(json.dumps({"impl": f"torch-{torch.__version__}-nn.LSTM", "device": str(dev) + (":" + torch.cuda.get_device_name() if dev.type == "cuda" else ""),
                  "cudnn": torch.backends.cudnn.is_available(), "hidden": H, "layers": L, "batch": B, "bptt": T, "eval_batch": EB, "vocab": V,
                  "train_tokens_per_s": round(train, 1), "eval_tokens_per_s": round(ev, 1)}))
EOF

torch_run() {  # torch_run NAME HIDDEN
  local name=$1
  [ "$(left)" -gt 15 ] || { echo "skip $name: past the deadline"; return; }
  if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "skip $name: torch with CUDA is not installed"; return
  fi
  timeout "$(( $(left) < 45 ? $(left) : 45 ))" python3 /tmp/torch_lm_gpu.py "$2" "$STEPS" 2> "$OUT/$name.err" | tag "$name" \
    || echo "$name failed: $(tail -1 "$OUT/$name.err")"
}

# the runs that answer open questions first (session 4 on an H100: a 34 s train-step compile
# at 2x200 left no time for the 2x1500 shape): the compile with XLA's autotuner off, then
# the large shape with and without cuDNN; the torch peer beside each shape
seqjax_run seqjax-small-f32 200
XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_autotune_level=0" seqjax_run seqjax-small-f32-autotune0 200
torch_run torch-small 200
torch_run torch-large 1500
seqjax_run seqjax-large-f32 1500
seqjax_run seqjax-large-cudnn 1500 --set model.backend=cudnn    # jax.experimental.rnn LSTM kernels
seqjax_run seqjax-small-bf16 200 --set model.dtype=bfloat16
seqjax_run seqjax-large-bf16 1500 --set model.dtype=bfloat16
seqjax_run seqjax-small-f32-unroll8 200 --set model.unroll=8
seqjax_run seqjax-small-cudnn 200 --set model.backend=cudnn
seqjax_run seqjax-small-fused-head 200 --set model.head_chunk=150  # the CPU read-out, on the GPU

echo "--- $(( $(date +%s) - start ))s; $J"
python3 - "$J" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["run"]: r for r in rows}
print(f"{'run':28s} {'train tok/s':>12s} {'eval tok/s':>12s} {'compile s':>10s} {'vs torch (train, eval)':>24s}")
for r in rows:
    size = "small" if "small" in r["run"] else "large"
    t = by.get(f"torch-{size}")
    vs = f"{r['train_tokens_per_s'] / t['train_tokens_per_s']:.2f}x, {r['eval_tokens_per_s'] / t['eval_tokens_per_s']:.2f}x" if t and not r["run"].startswith("torch") else ""
    print(f"{r['run']:28s} {r['train_tokens_per_s']:12,.0f} {r['eval_tokens_per_s']:12,.0f} {r.get('compile_s', float('nan')):10.2f} {vs:>24s}")
EOF
