#!/usr/bin/env bash
# The wheels a bare GPU machine lacks for the test suite and the training command: hydra-core,
# omegaconf and antlr4-python3-runtime, for Python 3.12 on x86-64, into .whl/ (git-ignored).
# antlr4-python3-runtime 4.9.3 (the version hydra-core 1.3 pins) is published as source only,
# so its wheel is built here (pure Python: one wheel fits every Python 3).
#
#   bash scripts/device_wheels.sh      # then carry .whl to the GPU machine; gpu_checks.sh installs it
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
rm -f .whl/*.whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d .whl "hydra-core==1.3.2" "omegaconf==2.3.0"
"$PY" -m pip wheel --quiet --no-deps -w .whl "antlr4-python3-runtime==4.9.3"
ls -1 .whl
