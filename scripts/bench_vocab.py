"""A large vocabulary end to end: tables of V x D (3M x 300 by default) on one device.

Trains one epoch on a synthetic Zipf-distributed token stream over ``V`` word types (so
every row can be drawn) and prints the tables' size, the device's peak memory (CUDA) or
the process's peak resident memory (CPU), words/s, and whether the tables stay finite.
It checks that the vocabulary fits and trains; quality needs a real corpus (bench.py).

    python scripts/bench_vocab.py --vocab 3000000 --dim 300 --tokens 20000000            # CPU kernel
    python scripts/bench_vocab.py --device cuda                                          # the Triton step
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v.config import TrainConfig  # noqa: E402
from w2v.model import SkipGramNS  # noqa: E402
from w2v.trainer import Trainer, all_finite  # noqa: E402


def zipf_stream(vocab: int, tokens: int, seed: int) -> tuple:
    """Frequency ranks drawn with P(r) ~ 1 / (r + 2.7) (word frequencies' shape), and their counts."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(vocab) + 2.7)
    cdf = np.cumsum(weights / weights.sum())
    ranks = np.searchsorted(cdf, rng.random(tokens)).astype(np.int32)
    np.minimum(ranks, vocab - 1, out=ranks)
    counts = np.bincount(ranks, minlength=vocab).astype(np.int64) + 1  # every type seen
    return ranks, counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=3_000_000)
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--tokens", type=int, default=20_000_000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--hot-rows", default=TrainConfig.hot_rows)
    p.add_argument("--kernel", default=TrainConfig.kernel, help="train.kernel")
    p.add_argument("--sub-batch", type=int, default=None)
    p.add_argument("--chunk-tokens", type=int, default=TrainConfig.chunk_tokens)
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args(argv)

    ranks, counts = zipf_stream(args.vocab, args.tokens, 0)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, hot_rows=args.hot_rows, sub_batch=args.sub_batch,
                      chunk_tokens=args.chunk_tokens, workers=args.workers, progress=False, kernel=args.kernel)
    device = torch.device(args.device)
    started = time.perf_counter()
    model = SkipGramNS(args.vocab, args.dim, device=device)
    model.reset_parameters(torch.Generator().manual_seed(0))
    trainer = Trainer(model, ranks, np.arange(args.vocab), counts, cfg, device)
    setup = time.perf_counter() - started
    result = trainer.fit()
    finite = all_finite(model.input.weight.detach()) and all_finite(model.output.weight.detach())
    table_gib = 2 * args.vocab * args.dim * 4 / 2**30
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = f"peak device memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    else:
        peak = f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    step = trainer.strategy.describe()
    print(f"vocab {args.vocab:,} x dim {args.dim} on {device} ({step}): tables {table_gib:.2f} GiB, {peak}; "
          f"setup {setup:.1f}s; {args.tokens:,} tokens at {result.words_per_sec:,.0f} words/s, "
          f"loss {result.loss:.3f}, tables finite: {finite}")
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())
