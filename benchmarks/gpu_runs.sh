#!/usr/bin/env bash
# One prepared GPU session: the throughput bench first (alone on the GPU), then the long
# trainings side by side on the one GPU, each under a time limit. Every run directory
# (minus checkpoints) is packed into $OUT/runs.tar.gz.
#
#   bash benchmarks/gpu_runs.sh [TOTAL_SECONDS]      # data in $SEQJAX_DATA
#   EXTRA="--set train.steps=2" bash benchmarks/gpu_runs.sh 150   # a dry run of every job
#
# The device tool's machine has jax/flax/optax/orbax but not ml_collections: wheels in
# .gpu/whl are installed to /tmp/site first when present.
set -u
TOTAL=${1:-540}
OUT=${OUT:-/tmp/seqjax-gpu-out}
mkdir -p "$OUT" runs
if compgen -G ".gpu/whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export SEQJAX_DATA=${SEQJAX_DATA:-$PWD/.gpu/data} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
start=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"; } > runs/env.txt 2>&1
cat runs/env.txt

# 1. bench, alone on the GPU (its own script writes $OUT/bench_gpu.jsonl)
if [ -f benchmarks/gpu_bench.sh ]; then
  timeout 200 bash benchmarks/gpu_bench.sh > runs/bench.log 2>&1; echo "bench rc=$? after $(( $(date +%s) - start ))s"
  cp "$OUT"/bench_gpu.jsonl runs/ 2>/dev/null
fi

# 2. trainings, side by side; each gets what is left of TOTAL minus 40 s for packing
left=$(( TOTAL - ($(date +%s) - start) - 40 ))
run() {  # run NAME CONFIG [--set ...]
  local name=$1; shift
  timeout -s TERM "$left" python3 -m seqjax train "$@" ${EXTRA:-} --workdir "runs/$name" --set train.progress=off \
    > "runs/$name.log" 2>&1
  echo "$name rc=$? after $(( $(date +%s) - start ))s"
}
# session 1 ran the rest (results/*.md); left for a GPU: the medium test perplexity, and the
# translation levers of results/translate.md at the tutorial's size (full target vocabulary,
# dropout 0.2), attention and none in the same setting
run ptb-medium ptb_lm:zaremba-medium --set model.unroll=8 &
run tr-word-attn translate:word-gru-attention --set data.pair=spa-eng --set model.hidden=1024 \
  --set model.attention_units=1024 --set data.tgt_vocab_size=0 --set model.dropout=0.2 \
  --set data.max_pairs=80000 --set data.max_len=14 --set data.buckets=[8] &
run tr-word translate:word-gru --set data.pair=spa-eng --set model.hidden=1024 --set data.tgt_vocab_size=0 \
  --set model.dropout=0.2 --set data.max_pairs=80000 --set data.max_len=14 --set data.buckets=[8] &
wait
tar --exclude=checkpoints --exclude=best -czf "$OUT/runs.tar.gz" runs
echo "packed $(du -h "$OUT/runs.tar.gz" | cut -f1) after $(( $(date +%s) - start ))s"
