#!/usr/bin/env bash
# Everything that needs a GPU, in one go: the GPU tests, the large-batch GPU benchmark against
# gensim, a 3M x 300 vocabulary on the device, and torchrun on NCCL. Output to stdout and,
# when $OUT is set, to $OUT/gpu-checks.log.
#
#   bash scripts/gpu_checks.sh [CORPUS]    # CORPUS: default the bundled 2M-word slice
#
# The 20M-word corpus (47 MB) can travel to a lent GPU machine in a carried, git-ignored folder:
#   mkdir -p .gpu && cp ../shared/data/enwiki-gutenberg-20m.txt.gz .gpu/ && echo /.gpu/ >> .git/info/exclude
#   then run `bash scripts/gpu_checks.sh .gpu/enwiki-gutenberg-20m.txt.gz` there, carrying .gpu.
set -uo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-w2v/data/enwiki-gutenberg-2m.txt.gz}
log=${OUT:-/tmp}/gpu-checks.log
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  echo "== the test suite, GPU tests included (-rs lists what was skipped)"
  python -m pytest -q -rs tests/
  echo "== dim 300, 262,144-pair batches in 16,384-pair sub-batches, hot_rows=trust, against gensim on the CPU"
  python scripts/bench.py --corpus "$corpus" --device cuda --dim 300 --batch-size 262144 --hot-rows trust \
      --sub-batch 16384 --chunk-tokens 1048576
  echo "== the same, 16,384-pair batches (no sub-batches)"
  python scripts/bench.py --corpus "$corpus" --device cuda --dim 300 --batch-size 16384 --hot-rows trust \
      --chunk-tokens 1048576 --skip-gensim
  echo "== 3M x 300 on the device"
  python scripts/bench_vocab.py --device cuda --vocab 3000000 --dim 300 --tokens 20000000 --batch-size 262144 \
      --hot-rows trust --sub-batch 16384 --chunk-tokens 1048576
  echo "== torchrun, NCCL, one rank"
  python -m torch.distributed.run --nproc_per_node=1 -m w2v.train data.corpus="$corpus" train.device=cuda \
      train.epochs=1 train.progress=false train.batch_size=16384 train.hot_rows=trust hydra.run.dir=/tmp/gpu-nccl
} 2>&1 | tee "$log"
