#!/usr/bin/env bash
# Everything a machine with a GPU checks, in one script, from the repository root:
#   1. the environment from the project's own files: jax with CUDA (`.[gpu]`, unless JAX
#      already sees a GPU) and seqjax's dependencies from pyproject.toml;
#   2. the GPU tests (`pytest -m gpu`) at full float32 matmul precision, benchmarks/gpu_check.py;
#   3. the LM steps against PyTorch with cuDNN, interleaved (benchmarks/bench_peers.py --gpu):
#      PTB-small 2x200, 2x650 and 2x1500 LSTM, GRU 2x650;
#   4. ptb_lm:zaremba-medium trained to its test perplexity (within TRAIN_S seconds);
#   5. the Keras notebook's character-level translator at full size (LSTM 512, 100k pairs,
#      batch 32; EN->ES offline), with and without attention: step times from `seqjax bench`,
#      then each trained for CHAR_S seconds (resumable: the same command continues it);
#   6. backend=newton against the sequential loop and the linear scan (benchmarks/newton_grid.py);
#   7. AWD-LSTM at the PTB settings (ptb_lm:awd, docs/awd.md): the train step, the time per epoch it
#      implies, then training for AWD_S seconds (resumable: the same command continues it).
#
#   bash benchmarks/gpu.sh                    # results under $OUT (default /tmp/seqjax-gpu)
#   SEQJAX_WHEELS=DIR bash benchmarks/gpu.sh  # offline: install from wheels in DIR
#   STEPS=50 ROUNDS=3 TRAIN_S=420 CHAR_S=600 SKIP_TRAIN=0 bash benchmarks/gpu.sh
#
# PTB is read from $SEQJAX_DATA (default ./data). Every step has its own time limit; a step
# that fails is reported and the script goes on; the exit code is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/seqjax-gpu}
PY=${PYTHON:-python3}
STEPS=${STEPS:-50} ROUNDS=${ROUNDS:-3} TRAIN_S=${TRAIN_S:-420} CHAR_S=${CHAR_S:-600} SKIP_TRAIN=${SKIP_TRAIN:-0}
AWD_S=${AWD_S:-900}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export SEQJAX_DATA=${SEQJAX_DATA:-$PWD/data}
rc=0
step() {  # step NAME SECONDS CMD...: run CMD under a time limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local r=$?
  echo "$name: rc=$r, $((SECONDS - t0)) s (log: $OUT/$name.log)"
  if [[ $r -ne 0 && $rc -eq 0 ]]; then rc=$r; fi
  return $r
}

# 1. environment
pip_from=()
if [[ -n "${SEQJAX_WHEELS:-}" ]]; then pip_from=(--no-index --find-links "$SEQJAX_WHEELS"); fi
deps=$("$PY" - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
)
if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  deps="$deps $("$PY" -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu']))")"
fi
# shellcheck disable=SC2086  # the requirement strings are words
step install 600 "$PY" -m pip install -q "${pip_from[@]}" $deps pytest || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  git rev-parse --short HEAD; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 2. the GPU tests
JAX_DEFAULT_MATMUL_PRECISION=highest step tests 300 "$PY" -m pytest -q -m gpu tests
step check 300 "$PY" benchmarks/gpu_check.py  # cuDNN LSTM and bfloat16 against the scan in float32

# 3. throughput against cuDNN
step bench 900 "$PY" benchmarks/bench_peers.py --gpu --no-flax --rounds "$ROUNDS" --steps "$STEPS" \
  --variant small --variant h650 --variant large --variant gru650 \
  --jsonl "$OUT/bench_gpu.jsonl" --md "$OUT/bench_gpu.md"

# 4. Zaremba-medium to its test perplexity
if [[ $SKIP_TRAIN != 1 ]]; then
  step train "$TRAIN_S" "$PY" -m seqjax train ptb_lm:zaremba-medium --workdir "$OUT/zaremba-medium" \
    --set train.progress=off
  cp "$OUT/zaremba-medium/summary.json" "$OUT/zaremba-medium.summary.json" 2>/dev/null
fi

# 5. the character-level translator at the notebook's size
for preset in char-lstm char-lstm-attention; do
  step "bench-$preset" 300 "$PY" -m seqjax bench "translate:$preset" --set data.pair=spa-eng --steps "$STEPS"
  if [[ $SKIP_TRAIN != 1 ]]; then
    step "train-$preset" "$CHAR_S" "$PY" -m seqjax train "translate:$preset" --set data.pair=spa-eng \
      --workdir "$OUT/$preset" --set train.progress=off
  fi
done

# 6. Newton's parallel-in-time solve against the sequential loop (experiments/results/longrange.md)
step newton-check 300 "$PY" benchmarks/newton_grid.py --check
step newton-grid 900 "$PY" benchmarks/newton_grid.py --batch 16

# 7. AWD-LSTM: step time at the PTB settings (bptt 70, batch 80) -> seconds per epoch of train steps
step bench-awd 600 "$PY" -m seqjax bench ptb_lm:awd --steps "$STEPS" \
  && "$PY" - "$OUT/bench-awd.log" <<'PY' | tee "$OUT/awd-epoch.txt"
import json, sys
from seqjax.data.vbptt import windows_per_epoch
bench = json.loads([ln for ln in open(sys.argv[1]) if ln.startswith("{")][-1])
steps = windows_per_epoch(929589 // 80 - 1, 70)  # PTB train tokens, batch 80, bptt 70 (variable)
epoch_s = bench["step_ms"] * steps / 1000
print(f"awd: {bench['step_ms']:.1f} ms/step x {steps} steps = {epoch_s:.0f} s/epoch of train steps "
      f"(500 epochs: {500 * epoch_s / 3600:.1f} h) on {bench['device']}")
PY
if [[ $SKIP_TRAIN != 1 ]]; then
  step train-awd "$AWD_S" "$PY" -m seqjax train ptb_lm:awd --workdir "$OUT/awd" --set train.progress=off
fi
exit $rc
