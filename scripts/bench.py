"""w2v against gensim on the same corpus and settings: words/s, ratio, analogy, WS-353.

Both train on the same token stream (w2v's tokenizer; gensim gets it as 10,000-token
sentences, its own maximum) with the same dim, window, negatives, sample, min_count,
epochs, learning rates and thread count; both sets of vectors are scored by the same
evaluator (``w2v.evaluate``, whose numbers tests hold equal to gensim's;
``restrict_vocab=30000`` for analogies, as in word2vec's ``compute-accuracy``).
The clocks cover training only (not tokenizing, vocabulary building, or gensim's
vocabulary scan).

After the table comes w2v's profile: seconds per part of the work, summed over threads.
With the CPU kernel, "batch generation" (subsampling, windows, negatives) runs on its own
thread ahead of the kernel; the kernel's two phases are "gradients" (reading the rows,
scores, gradients: the lookups) and "updates" (writing the rows), each as wall time
including the wait for the slowest thread.

    python scripts/bench.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --epochs 1

On a GPU (the Triton step with its defaults; gensim, when installed, still runs on the CPU
threads; ``scripts/bench_gpu.py`` measures the GPU steps alone, warm-up excluded):

    python scripts/bench.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --device cuda --dim 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v.config import TrainConfig  # noqa: E402
from w2v.corpus import Tokenizer  # noqa: E402
from w2v.model import SkipGramNS  # noqa: E402
from w2v.token_cache import load_corpus  # noqa: E402
from w2v.trainer import Trainer  # noqa: E402
from w2v.vocab import Vocab  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "w2v" / "data"


def score(words, vectors):
    from w2v.evaluate import evaluate_word_analogies, evaluate_word_pairs
    from w2v.vectors import WordVectors

    wv = WordVectors(list(words), np.asarray(vectors, dtype=np.float32))
    analogy = evaluate_word_analogies(wv, DATA / "questions-words.txt", restrict_vocab=30000)[0]
    ws = evaluate_word_pairs(wv, DATA / "wordsim353.tsv")[1][0]
    return float(analogy), float(ws)


def run_w2v(enc, args):
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), args.min_count)
    cfg = TrainConfig(
        epochs=args.epochs, window=args.window, negatives=args.negatives, sample=args.sample,
        lr=args.lr, min_lr=args.min_lr, batch_size=args.batch_size, shared_negatives=args.shared_negatives,
        workers=args.workers, seed=args.seed, chunk_tokens=args.chunk_tokens, kernel=args.kernel,
        hot_rows=args.hot_rows, sub_batch=args.sub_batch,
    )
    model = SkipGramNS(len(vocab), args.dim, device=args.device)
    model.reset_parameters(torch.Generator().manual_seed(args.seed))
    trainer = Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, args.device)
    result = trainer.fit()
    vectors = model.input.weight.detach().cpu().numpy()
    profile = ", ".join(f"{part} {sec:.1f}s" for part, sec in result.profile.items())
    step = trainer.strategy.describe()
    print(f"w2v profile ({step}, {result.seconds:.1f}s wall): {profile}", flush=True)
    return result.words / result.seconds, result.seconds, vocab.index_to_key, vectors


def run_gensim(enc, args):
    from gensim.models import Word2Vec

    tokens = np.asarray(enc.tokens)
    types = np.array(enc.types, dtype=object)
    sentences = [types[tokens[a : a + 10000]].tolist() for a in range(0, len(tokens), 10000)]
    model = Word2Vec(
        vector_size=args.dim, window=args.window, negative=args.negatives, sample=args.sample, sg=1, hs=0,
        min_count=args.min_count, alpha=args.lr, min_alpha=args.min_lr, workers=args.workers, seed=args.seed + 1,
    )
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
    seconds = time.perf_counter() - started
    words = len(tokens) * args.epochs
    return words / seconds, seconds, model.wv.index_to_key, model.wv.vectors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(DATA / "enwiki-gutenberg-2m.txt.gz"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--min-lr", type=float, default=0.0001)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--shared-negatives", type=int, default=TrainConfig.shared_negatives)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-tokens", type=int, default=TrainConfig.chunk_tokens)
    p.add_argument("--kernel", default=TrainConfig.kernel, choices=["auto", "fused", "torch", "triton"], help="train.kernel")
    p.add_argument("--hot-rows", default=TrainConfig.hot_rows, help="train.hot_rows (large batches: trust)")
    p.add_argument("--sub-batch", type=int, default=None, help="train.sub_batch (large batches: 16384)")
    p.add_argument("--skip-gensim", action="store_true", help="(implied when gensim is not installed)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    if not args.skip_gensim:
        try:
            import gensim  # noqa: F401
        except ImportError:
            print("gensim is not installed: w2v alone (pip install gensim for the comparison)", flush=True)
            args.skip_gensim = True
    enc = load_corpus(args.corpus, Tokenizer())
    if args.device != "cpu":
        print(f"device {args.device}: {torch.cuda.get_device_name(args.device)}", flush=True)
    print(f"corpus {args.corpus}: {len(enc):,} tokens, {len(enc.types):,} types; "
          f"dim {args.dim} window {args.window} negatives {args.negatives} sample {args.sample} "
          f"min_count {args.min_count} epochs {args.epochs} workers {args.workers}", flush=True)
    rows = {}
    wps, secs, words, vectors = run_w2v(enc, args)
    rows["w2v"] = (wps, secs) + score(words, vectors)
    print(f"w2v done in {secs:.1f}s", flush=True)
    if not args.skip_gensim:
        wps, secs, words, vectors = run_gensim(enc, args)
        rows["gensim"] = (wps, secs) + score(words, vectors)
    base = rows.get("gensim", rows["w2v"])[0]
    print(f"\n| system | words/s | x gensim | train s | analogy | WS-353 |\n|---|---|---|---|---|---|")
    for name, (wps, secs, analogy, ws) in rows.items():
        print(f"| {name} | {wps/1e3:,.0f}k | {wps/base:.2f} | {secs:.1f} | {analogy:.2%} | {ws:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({k: dict(zip(["words_per_sec", "seconds", "analogy", "ws353"], v)) for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
