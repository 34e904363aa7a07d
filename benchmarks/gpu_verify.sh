#!/usr/bin/env bash
# One prepared GPU call (about 9 minutes with STOP_AT=530): correctness of the GPU-only paths
# (benchmarks/gpu_check.py: cuDNN LSTM vs the scan, bf16 and TF32 vs float32), the
# side-by-side throughput bench against PyTorch cuDNN (benchmarks/gpu_bench.sh), then the
# core equivalence tests on the GPU at full float32 precision. Everything lands in $OUT.
#
#   bash benchmarks/gpu_verify.sh       # on the GPU machine, from the repository root
#
# The machine has jax/flax/optax/orbax/torch but not ml_collections or tensorboardX: the
# wheels in .gpu/whl go to /tmp/site. If seqjax does not import with the machine's own
# flax/optax/orbax, the versions seqjax was tested with (.gpu/whl2) are installed too.
set -u
OUT=${OUT:-/tmp/seqjax-gpu-out}
mkdir -p "$OUT"
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
if ! python3 -c "import seqjax.training.loop, seqjax.bench" 2> "$OUT/import.err"; then
  echo "seqjax does not import with the machine's packages ($(tail -1 "$OUT/import.err")); installing .gpu/whl2"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl2/*.whl
fi
python3 -c "import jax, flax, optax, orbax.checkpoint as o, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

echo "=== 1. gpu_check"
timeout 120 python3 benchmarks/gpu_check.py 2> "$OUT/gpu_check.err" | tee "$OUT/gpu_check.jsonl"
echo "gpu_check rc=${PIPESTATUS[0]} after $(( $(date +%s) - start ))s"

echo "=== 2. bench"
DEADLINE=${DEADLINE:-170} timeout 200 bash benchmarks/gpu_bench.sh > "$OUT/bench.log" 2>&1
echo "bench rc=$? after $(( $(date +%s) - start ))s"
grep -v '^{' "$OUT/bench.log" | tail -16

echo "=== 3. core tests on the GPU (float32 at highest matmul precision; SKIP_TESTS=1 skips)"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  JAX_DEFAULT_MATMUL_PRECISION=highest timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider \
    tests/test_cells.py tests/test_layers.py tests/test_recurrence.py tests/test_attention.py tests/test_lm.py \
    tests/test_seq2seq.py tests/test_bench.py > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$? after $(( $(date +%s) - start ))s"
  tail -15 "$OUT/pytest.log"
fi

echo "=== 4. PTB zaremba-medium training in the time left (STOP_AT=${STOP_AT:=540}s after the start)"
# the faster LSTM backend of the bench at the small shapes (cuDNN only if it beat the scan there)
backend=$(python3 - "$OUT/bench_gpu.jsonl" <<'PY'
import json, sys
try:
    by = {r["run"]: r for r in map(json.loads, open(sys.argv[1])) if "run" in r}
    print("cudnn" if by["seqjax-small-cudnn"]["train_tokens_per_s"] > by["seqjax-small-f32"]["train_tokens_per_s"] else "scan")
except Exception:
    print("scan")
PY
)
left=$(( STOP_AT - ($(date +%s) - start) - 25 ))
if [ "$left" -gt 60 ] && [ -d .gpu/data/ptb ]; then
  echo "backend=$backend, ${left}s"
  SEQJAX_DATA=$PWD/.gpu/data timeout -s TERM "$left" python3 -m seqjax train ptb_lm:zaremba-medium \
    --set model.backend="$backend" --set train.progress=off --workdir runs/ptb-medium > "$OUT/ptb-medium.log" 2>&1
  echo "ptb-medium rc=$? after $(( $(date +%s) - start ))s"
  tail -5 "$OUT/ptb-medium.log"
  tar --exclude=checkpoints --exclude=best -czf "$OUT/ptb-medium.tar.gz" runs/ptb-medium
else
  echo "skip ptb-medium: ${left}s left"
fi
echo "done after $(( $(date +%s) - start ))s"
