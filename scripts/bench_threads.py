"""The CPU kernel's thread count: every core, one, and chosen chunk by chunk, round after round.

Each round trains one epoch three times on the same corpus and seed, in this order: on
``--workers`` threads for every chunk (``train.adapt_workers=false``), on one thread, and
with the thread count chosen from measured speed (``train.adapt_workers=true``, the
default). The three give bitwise the same tables (checked); only the time differs. On a
machine where moving cache lines between cores is sometimes slow (a virtual machine whose
CPUs the host places apart now and then), the fixed team's time jumps between rounds; the
adaptive one should stay near the faster of the other two in every round.

    python scripts/bench_threads.py --corpus /path/to/text8 --rounds 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v.config import TrainConfig  # noqa: E402
from w2v.corpus import Tokenizer  # noqa: E402
from w2v.model import SkipGramNS  # noqa: E402
from w2v.token_cache import load_corpus  # noqa: E402
from w2v.trainer import Trainer  # noqa: E402
from w2v.vocab import Vocab  # noqa: E402

BUNDLED = Path(__file__).resolve().parent.parent / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz"


def train(enc, vocab, workers: int, adapt: bool, dim: int):
    cfg = TrainConfig(epochs=1, workers=workers, adapt_workers=adapt, seed=1)
    model = SkipGramNS(len(vocab), dim)
    model.reset_parameters(torch.Generator().manual_seed(1))
    trainer = Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, "cpu")
    if not trainer.fused:
        raise SystemExit("the compiled CPU kernel is unavailable here: nothing to compare")
    began = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - began, model.input.weight.detach().clone(), trainer.strategy.measures()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(BUNDLED))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--dim", type=int, default=100)
    args = p.parse_args(argv)

    enc = load_corpus(args.corpus, Tokenizer())
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), 5)
    print(f"corpus: {len(enc.tokens):,} tokens, vocabulary {len(vocab):,}; dim {args.dim}; up to {args.workers} threads\n")
    print(f"| round | {args.workers} threads s | 1 thread s | adaptive s | adaptive / faster fixed | adaptive's chunks by threads |")
    print("|---|---|---|---|---|---|")
    ratios, gains = [], []
    for k in range(args.rounds):
        many, w_many, _ = train(enc, vocab, args.workers, False, args.dim)
        one, w_one, _ = train(enc, vocab, 1, False, args.dim)
        adaptive, w_adaptive, measured = train(enc, vocab, args.workers, True, args.dim)
        if not (torch.equal(w_many, w_one) and torch.equal(w_many, w_adaptive)):
            raise SystemExit("the three runs' tables differ: the kernel is no longer independent of its thread count")
        ratios.append(adaptive / min(many, one))
        gains.append(many / adaptive)
        runs = ", ".join(f"{n} on {size}" for size, n in measured["kernel_threads"].items())
        print(f"| {k + 1} | {many:.2f} | {one:.2f} | {adaptive:.2f} | {ratios[-1]:.2f} | {runs} |", flush=True)
    print(f"\nmedian: adaptive takes {statistics.median(ratios):.2f}x the time of the faster fixed count of its round "
          f"(worst {max(ratios):.2f}x); {args.workers} fixed threads take {statistics.median(gains):.2f}x adaptive's "
          f"time (worst round {max(gains):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
