#!/usr/bin/env bash
# A regular install runs everything: build the wheel, install it into a fresh venv (deps
# from PyPI), then from a scratch directory (no source tree in sight) list the experiments
# and train the embedded default's tiny preset and the default itself. Any failure fails.
#   bash .ci/wheel_check.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip build
"$work/venv/bin/python" -m build -q --wheel --outdir "$work/dist" "$root"
wheel="$(ls "$work"/dist/seqjax-*.whl)"
"$work/venv/bin/pip" install -q "$wheel"

mkdir "$work/scratch"
cd "$work/scratch"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
listed="$("$work/venv/bin/seqjax" experiments)"
for name in agnews char_lm ptb_lm seq2seq sequences translate; do
  grep -qx "$name" <<<"$listed" || { echo "wheel_check: '$name' missing from 'seqjax experiments'" >&2; exit 1; }
done
"$work/venv/bin/seqjax" train sequences:tiny --workdir runs/tiny --set train.progress=off
"$work/venv/bin/seqjax" eval runs/tiny --split test
"$work/venv/bin/seqjax" train --workdir runs/default --set train.epochs=1 --set train.progress=off
# the user's own arrays (README, "Your own data"): sequences from an .npz, then eval
"$work/venv/bin/python" - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
x = rng.choice([-1.0, 1.0], size=(128, 6, 1)).astype(np.float32)
np.savez("seq.npz", x=x, y=(x.sum((1, 2)) > 0).astype(np.int64))
PY
"$work/venv/bin/seqjax" train sequences:tiny --workdir runs/seq --set data.source=npz --set data.files.train=seq.npz \
  --set train.progress=off
"$work/venv/bin/seqjax" eval runs/seq --split test
test -f runs/default/summary.json
echo "wheel_check: ok ($(basename "$wheel"))"
