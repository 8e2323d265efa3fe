#!/bin/sh
# The GPU benchmark run, as one script: the quick suite on CUDA and on the CPU of the same
# machine, then README.md's Performance section regenerated from both runs.
#   sh benchmarks/gpu.sh [python]
set -e
PY=${1:-python}
cd "$(dirname "$0")/.."
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to run')"
"$PY" benchmarks/run.py --quick --device cuda --json bench-gpu.json
"$PY" benchmarks/run.py --quick --json bench-cpu.json
"$PY" benchmarks/report.py bench-cpu.json bench-gpu.json
