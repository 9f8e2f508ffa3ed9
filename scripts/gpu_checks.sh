#!/usr/bin/env bash
# Every GPU check and benchmark in one command, for a bare GPU machine (Python 3.12, torch,
# triton, numpy, tensorboard, tqdm, pytest; no hydra, no gensim, no network). Prints one
# table at the end; the whole log also goes to $OUT/gpu-checks.log when $OUT is set.
#
#   bash scripts/gpu_checks.sh [CORPUS]      # on the GPU machine, within ~8 minutes
#   bash scripts/gpu_checks.sh --dry-run     # every step on the CPU, tiny sizes (Triton's interpreter); CI runs it
#
# Before carrying the working tree to the GPU machine, here:
#   bash scripts/device_wheels.sh                                  # hydra-core, omegaconf, antlr4 -> .whl/
#   mkdir -p .gpu && cp ../shared/data/enwiki-gutenberg-20m.txt.gz .gpu/   # .gpu/ and .whl/ are git-ignored
# and carry .whl and .gpu. The quality reference (the CPU kernel's analogy and WS-353 at the
# same settings, 2 seeds) is scripts/gpu_reference.json, measured beforehand on a CPU:
#   python scripts/bench_gpu.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --device cpu \
#       --steps fused --seeds 0 1 --write-reference scripts/gpu_reference.json
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
corpus=${1:-.gpu/enwiki-gutenberg-20m.txt.gz}
log=${OUT:-/tmp}/gpu-checks.log
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import hydra" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/w2v-site .whl/*.whl \
    && export PYTHONPATH=/tmp/w2v-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
failed=()
step() {  # step NAME COMMAND...: run, remember a failure, go on
  local name=$1; shift
  echo "== $name"
  "$@" || { echo "!! $name failed (exit $?)"; failed+=("$name"); }
}

if [ $dry = 1 ]; then
  export TRITON_INTERPRET=1
  dev=cpu
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  corpus=w2v/data/enwiki-gutenberg-2m.txt.gz; [ -f "$corpus" ] || corpus=data/enwiki-gutenberg-2m.txt.gz
  bench=(--max-tokens 1200 --dims 16 --chunk-tokens 1024 --batch-size 256 --no-warmup)
  vocab=(--vocab 3000 --dim 16 --tokens 1500 --chunk-tokens 1024 --batch-size 256)
  threads=(--max-tokens 20000 --dims 16 --chunk-tokens 4096)
  train=(data.corpus="$corpus" train.device=cpu train.kernel=triton train.epochs=1 train.progress=false
         train.chunk_tokens=1024 train.batch_size=256 model.dim=16 data.min_count=1 eval.every_epoch=false
         eval.analogies=null eval.similarity=null eval.projector_words=0 hydra.run.dir="$tmp/run")
  tests=(-m gpu)
  subset() { python3 - "$corpus" "$tmp/small.txt" <<'PY'
import gzip, sys
with gzip.open(sys.argv[1], "rt", encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write(" ".join(f.read(50_000).split()[:1500]))
PY
  }
  subset && train[0]=data.corpus="$tmp/small.txt"
else
  dev=cuda
  bench=()
  vocab=(--vocab 3000000 --dim 300 --tokens 20000000)
  threads=(--max-tokens 5000000 --dims 100)
  train=(data.corpus="$corpus" train.epochs=1 train.progress=false eval.every_epoch=false hydra.run.dir=/tmp/gpu-run)
  tests=(-m "gpu or not slow")
fi

{
  date -u
  if [ $dry = 0 ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())"
  step "tests (${tests[*]})" python3 -m pytest -q -rs -p no:cacheprovider "${tests[@]}" tests/
  step "fused Triton step and torch step, dim 100 and 300, steady state, against the CPU kernel's quality" \
    python3 scripts/bench_gpu.py --corpus "$corpus" --device $dev --steps triton torch "${bench[@]}" --json "${OUT:-/tmp}/gpu-bench.json"
  step "a 3M x 300 vocabulary on the device (peak memory)" \
    python3 scripts/bench_vocab.py --device $dev --kernel triton "${vocab[@]}"
  step "the default command (python -m w2v.train picks the device and the step)" \
    python3 -m w2v.train "${train[@]}"
  step "torchrun, one rank: collectives on $([ $dev = cuda ] && echo NCCL || echo gloo)" \
    python3 -m torch.distributed.run --nproc_per_node=1 scripts/nccl_smoke.py --device $dev
  for n in 1 2 4 8 16; do
    [ $dry = 1 ] && [ $n -gt 2 ] && break
    step "CPU kernel, $n thread(s)" python3 scripts/bench_gpu.py --corpus "$corpus" --device cpu --steps fused \
      --workers $n --no-score --no-warmup "${threads[@]}"
  done
  if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; else echo "all checks ran"; fi
} 2>&1 | tee "$log"
! grep -q '^!! ' "$log"
