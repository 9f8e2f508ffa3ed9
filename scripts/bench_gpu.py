"""The GPU steps against each other and against the CPU kernel's quality: one table.

For each step (``triton``, ``torch``) and dim, a short warm-up run on the first chunks
(Triton's compilation, CUDA graphs, the allocator) precedes the timed run, so words/s is
the steady state. Analogy (``restrict_vocab=30000``) and WS-353 are set beside the CPU
kernel's figures at the same settings, read from a reference file measured beforehand on
a CPU (``--write-reference`` makes it: 2 seeds of the CPU kernel per dim).

    python scripts/bench_gpu.py --corpus .gpu/enwiki-gutenberg-20m.txt.gz --device cuda
    python scripts/bench_gpu.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --device cpu \\
        --steps fused --seeds 0 1 --write-reference scripts/gpu_reference.json       # on a CPU, beforehand

``--max-tokens`` cuts the corpus (a dry run on the CPU through Triton's interpreter uses a
few thousand tokens).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from w2v.config import TrainConfig  # noqa: E402
from w2v.corpus import Tokenizer  # noqa: E402
from w2v.model import SkipGramNS  # noqa: E402
from w2v.token_cache import load_corpus  # noqa: E402
from w2v.trainer import Trainer  # noqa: E402
from w2v.vocab import Vocab  # noqa: E402

STEP_KERNEL = {"triton": "triton", "torch": "torch", "fused": "fused"}


def data_file(name: str) -> Path:
    """A bundled evaluation set, inside the package or, in an older checkout, in data/."""
    for folder in (ROOT / "w2v" / "data", ROOT / "data"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(name)


def score(words, vectors) -> tuple:
    """Analogy accuracy and WS-353 Spearman; NaN where the vocabulary covers no question."""
    from w2v.evaluate import evaluate_word_analogies, evaluate_word_pairs
    from w2v.vectors import WordVectors

    wv = WordVectors(list(words), np.asarray(vectors, dtype=np.float32))
    try:
        analogy = float(evaluate_word_analogies(wv, data_file("questions-words.txt"), restrict_vocab=30000)[0])
    except ValueError:
        analogy = float("nan")
    try:
        ws = float(evaluate_word_pairs(wv, data_file("wordsim353.tsv"))[1][0])
    except ValueError:
        ws = float("nan")
    return analogy, ws


def train_once(tokens, vocab, rank_to_id, cfg: TrainConfig, dim: int, device: torch.device):
    model = SkipGramNS(len(vocab), dim, device=device)
    model.reset_parameters(torch.Generator().manual_seed(cfg.seed))
    trainer = Trainer(model, tokens, rank_to_id, vocab.counts, cfg, device)
    result = trainer.fit()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return trainer, model, result


def measure(enc, vocab, args, step: str, dim: int, seed: int, device: torch.device) -> dict:
    rank_to_id = vocab.encode(enc.types)
    tokens = np.asarray(enc.tokens)[: args.max_tokens] if args.max_tokens else enc.tokens
    cfg = TrainConfig(
        epochs=args.epochs, window=args.window, negatives=args.negatives, sample=args.sample, lr=args.lr,
        min_lr=args.min_lr, seed=seed, kernel=STEP_KERNEL[step], progress=False, workers=args.workers,
        batch_size=args.batch_size, chunk_tokens=args.chunk_tokens, deterministic=args.deterministic,
    )
    if args.warmup:  # the same settings on the first chunks: compilation and allocation are not measured
        warm = replace(cfg, epochs=1)
        trainer, _, _ = train_once(tokens[: 2 * (cfg.chunk_tokens or 1 << 20)], vocab, rank_to_id, warm, dim, device)
        del trainer
    trainer, model, result = train_once(tokens, vocab, rank_to_id, cfg, dim, device)
    analogy, ws = (float("nan"),) * 2
    if args.score:
        analogy, ws = score(vocab.index_to_key, model.input.weight.detach().cpu().numpy())
    row = dict(step=step, describe=trainer.strategy.describe(), dim=dim, seed=seed, words_per_sec=result.words_per_sec,
               seconds=result.seconds, analogy=analogy, ws353=ws, loss=result.loss)
    print(f"{step} dim {dim} seed {seed}: {row['describe']}: {result.words_per_sec:,.0f} words/s over "
          f"{result.seconds:.1f}s, analogy {analogy:.2%}, WS-353 {ws:.3f}, loss {result.loss:.4f}", flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", nargs="+", default=["triton", "torch"], choices=sorted(STEP_KERNEL))
    p.add_argument("--dims", nargs="+", type=int, default=[100, 300])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--min-lr", type=float, default=0.0001)
    p.add_argument("--batch-size", type=int, default=None, help="default: the step's own (train.batch_size=null)")
    p.add_argument("--chunk-tokens", type=int, default=None, help="default: the step's own")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="train.deterministic: the CPU kernel's threads split each batch (else Hogwild! threads)")
    p.add_argument("--max-tokens", type=int, default=None, help="train on the first N tokens only")
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--no-score", dest="score", action="store_false", help="speed only")
    p.add_argument("--reference", default=str(ROOT / "scripts" / "gpu_reference.json"))
    p.add_argument("--write-reference", help="write the measured rows as the reference file")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    enc = load_corpus(args.corpus, Tokenizer())
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), args.min_count)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; corpus {args.corpus}: {len(enc):,} tokens (training on {args.max_tokens or len(enc):,}), "
          f"vocabulary {len(vocab):,}; window {args.window} negatives {args.negatives} sample {args.sample} "
          f"epochs {args.epochs}", flush=True)
    rows = [measure(enc, vocab, args, step, dim, seed, device) for dim in args.dims for step in args.steps for seed in args.seeds]
    base = rows[0]["words_per_sec"]

    settings = dict(corpus=Path(args.corpus).name, epochs=args.epochs, window=args.window, negatives=args.negatives,
                    sample=args.sample, min_count=args.min_count, lr=args.lr, max_tokens=args.max_tokens)
    if args.write_reference:
        Path(args.write_reference).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
        print(f"reference written to {args.write_reference}")
    reference = {}
    if Path(args.reference).is_file():
        ref = json.loads(Path(args.reference).read_text())
        if ref["settings"] != settings:
            print(f"note: the reference was measured with {ref['settings']}, not {settings}: its scores do not compare")
        else:
            for dim in {r["dim"] for r in ref["rows"]}:
                mine = [r for r in ref["rows"] if r["dim"] == dim]
                reference[dim] = (statistics.mean(r["analogy"] for r in mine), statistics.mean(r["ws353"] for r in mine), len(mine))
    print(f"\n| step | dim | threads | words/s | x first row | analogy | WS-353 | CPU kernel analogy | CPU kernel WS-353 | analogy - CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = reference.get(r["dim"])
        cpu = f"{ref[0]:.2%} ({ref[2]} seeds) | {ref[1]:.3f} | {100 * (r['analogy'] - ref[0]):+.2f} pt" if ref else "- | - | -"
        print(f"| {r['step']} | {r['dim']} | {args.workers or '-'} | {r['words_per_sec'] / 1e6:,.2f}M | "
              f"{r['words_per_sec'] / base:.2f} | {r['analogy']:.2%} | {r['ws353']:.3f} | {cpu} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
