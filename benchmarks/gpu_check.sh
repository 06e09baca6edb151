#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): frcrn training throughput in fp32 and 16-mixed, 200 steps of
# frcrn_small with validation, DDP on every visible GPU, FRCRN inference with fp16 windows, and
# rnnoise_xiph48k's front-end against its network. Prints one table (also OUT/gpu_check.md). Sized for
# under 8 minutes on one GPU (the four training runs dominate; not timed on one yet).
#
#   bash benchmarks/gpu_check.sh [--tiny] [--out DIR]     # --tiny: the same on the CPU, tiny sizes (~3 min)
#
# Python: the project's .venv when there is one (`make` sets it up); else the machine's python3, with
# the packages it lacks installed from wheels in .whl/ (a GPU machine that reaches no package index:
# download them with `pip download` where pip works and copy .whl/ along with the project).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  PYTHON=.venv/bin/python
else
  PYTHON=python3
  if [ -d .whl ]; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD/src
  else
    export PYTHONPATH=$PWD/src
  fi
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
