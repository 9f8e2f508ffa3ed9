#!/usr/bin/env bash
# Install w2v and its test dependencies into the current Python.
#
# torch is installed first and on purpose: a plain `pip install torch` on a machine
# without a GPU pulls gigabytes of CUDA wheels. Where torch is already importable it is
# kept as it is; where a GPU is visible the default (CUDA) build is installed; elsewhere
# the CPU build (W2V_TORCH_CPU, default torch==2.13.0, found as a local wheel on the
# project's machines).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if "$PY" -c "import torch" 2>/dev/null; then
  echo "install: keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$PY" -m pip install --quiet torch
else
  "$PY" -m pip install --quiet "${W2V_TORCH_CPU:-torch==2.13.0}" \
    || "$PY" -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch
fi
"$PY" -m pip install --quiet -e ".[test]"
