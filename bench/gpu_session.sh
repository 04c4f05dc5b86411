#!/usr/bin/env bash
# One call on a lent GPU machine (its image has torch and transformers but no diffusers, and no network):
#   here:   pip download diffusers==0.42.1 --no-deps -d bench/wheels      (bench/wheels/ is git-ignored)
#   there:  bash bench/gpu_session.sh [bench_gpu.py options]              (carry: bench/wheels)
# Installs the carried wheels only if diffusers is missing, prints the machine, then runs the benchmark
# (all models, 512 px + SDXL 1024 px, 50 steps, fp16) and writes the figures as JSON to $OUT (or out/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import diffusers" 2>/dev/null; then
    ls bench/wheels/*.whl >/dev/null 2>&1 || { echo "diffusers is missing and bench/wheels/ holds no wheel" >&2; exit 2; }
    "$PY" -m pip install --quiet --no-index --no-deps bench/wheels/*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch, diffusers, transformers; print('torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__)"
dest=${OUT:-out}
mkdir -p "$dest"
"$PY" bench/bench_gpu.py --json "$dest/bench_gpu.json" "$@" 2>&1 | tee "$dest/bench_gpu.txt"
