"""Hot-row ablation: which ``SGNSStep(hot_rows=...)`` keeps large batches stable and good.

Trains the torch step (``train.kernel=torch``, Hogwild worker threads, as
``scripts/bench.py --kernel torch``) once per batch size and method, and prints, per run:
batch size, method, words/s, analogy % (``restrict_vocab=30000``), WS-353 (Spearman), the
final loss and whether training diverged. All runs share one encoded corpus, vocabulary
and seed. Methods:

* ``sum``, ``mean``, ``sqrt``: ``SGNSStep(hot_rows=...)``;
* ``cap:C``: ``hot_rows="cap", cap=C``;
* ``trust:T``: ``hot_rows="trust", trust=T`` (``trust``: the default ``T``);
* ``sub:S``: the plain sum applied as sequential sub-batches of ``S`` pairs;
* ``A+B``: both, e.g. ``trust:2+sub:16384``.

"final loss" is the mean per-pair SGNS loss of the trained tables on a fixed sample of
pairs (the first 65,536 pairs of the corpus's last chunk, with its negatives), the same
sample for every run; "diverged" means the trainer stopped on a NaN/inf loss, the
tables ended non-finite, or the final loss is above that of untrained tables ((1 + K) log 2).

    python scripts/ablate_hot_rows.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz \\
        --batch-sizes 4096 16384 65536 262144 --methods sum trust:2 cap:64 sub:4096 trust:2+sub:16384

Screening on a prefix: ``--tokens 5000000``. Results: ``docs/benchmarks.md`` (hot rows).
"""

from __future__ import annotations

import argparse
import json
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
from w2v.trainer import Trainer, TrainingDiverged  # noqa: E402
from w2v.vocab import Vocab  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "w2v" / "data"


def score(words, vectors):
    """bench.py's scoring: analogy (restrict_vocab=30000) and WS-353 Spearman."""
    from w2v.evaluate import evaluate_word_analogies, evaluate_word_pairs
    from w2v.vectors import WordVectors

    wv = WordVectors(list(words), np.asarray(vectors, dtype=np.float32))
    analogy = evaluate_word_analogies(wv, DATA / "questions-words.txt", restrict_vocab=30000)[0]
    ws = evaluate_word_pairs(wv, DATA / "wordsim353.tsv")[1][0]
    return float(analogy), float(ws)


def step_options(method: str) -> dict:
    """``SGNSStep`` keyword arguments of a method spec (``sum``, ``cap:256``, ``trust:2+sub:16384``...)."""
    if "+" in method:
        options = {}
        for part in method.split("+"):
            options.update({k: v for k, v in step_options(part).items() if k != "hot_rows" or v != "sum"})
        return options
    name, _, value = method.partition(":")
    if name in ("sum", "mean", "sqrt") and not value:
        return {"hot_rows": name}
    if name == "cap" and value:
        return {"hot_rows": "cap", "cap": float(value)}
    if name == "trust":
        return {"hot_rows": "trust", **({"trust": float(value)} if value else {})}
    if name == "sub" and value:
        return {"hot_rows": "sum", "sub_batch": int(value)}
    raise ValueError(f"unknown method {method!r}; use sum, mean, sqrt, cap:C, trust:T or sub:S")


def run(enc_tokens, vocab, rank_to_id, batch_size, method, args) -> dict:
    options = step_options(method)
    if options.get("sub_batch", 0) >= batch_size:
        return {}
    names = {"hot_rows": "hot_rows", "cap": "hot_rows_cap", "trust": "hot_rows_trust", "sub_batch": "sub_batch"}
    cfg = TrainConfig(
        epochs=1, window=args.window, negatives=args.negatives, sample=args.sample, lr=args.lr,
        min_lr=args.min_lr, batch_size=batch_size, shared_negatives=args.shared_negatives,
        workers=args.workers, seed=args.seed, chunk_tokens=args.chunk_tokens, kernel="torch",
        **{names[k]: v for k, v in options.items()},
    )
    model = SkipGramNS(len(vocab), args.dim)
    model.reset_parameters(torch.Generator().manual_seed(args.seed))
    trainer = Trainer(model, enc_tokens, rank_to_id, vocab.counts, cfg, "cpu")
    row = {"batch_size": batch_size, "method": method, "words_per_sec": float("nan"), "analogy": float("nan"),
           "ws353": float("nan"), "loss": float("nan"), "diverged": False}
    try:
        result = trainer.fit()
        row["words_per_sec"] = result.words / result.seconds
    except TrainingDiverged:
        row["diverged"] = True
    vectors = model.input.weight.detach()
    if not (torch.isfinite(vectors).all() and torch.isfinite(model.output.weight).all()):
        row["diverged"] = True
    # The fixed evaluation sample: the first pairs of the last chunk, drawn by its own seed.
    gen = torch.Generator()
    centers, contexts, noise = trainer.plan.pairs(0, len(trainer.chunks) - 1, gen)
    p = min(65536, centers.numel() - centers.numel() % cfg.shared_negatives)
    with torch.no_grad():
        loss = model(contexts[:p], centers[:p], noise[: p // cfg.shared_negatives])
    row["loss"] = float(loss)
    if not row["loss"] < (1 + args.negatives) * np.log(2):  # NaN, or worse than untrained tables
        row["diverged"] = True
    if not row["diverged"]:
        row["analogy"], row["ws353"] = score(vocab.index_to_key, vectors.numpy())
    return row


def fmt(row) -> str:
    wps = "—" if not np.isfinite(row["words_per_sec"]) else f"{row['words_per_sec'] / 1e3:,.0f}k"
    analogy = "—" if not np.isfinite(row["analogy"]) else f"{row['analogy']:.2%}"
    ws = "—" if not np.isfinite(row["ws353"]) else f"{row['ws353']:.3f}"
    loss = f"{row['loss']:.3f}" if np.isfinite(row["loss"]) else str(row["loss"])
    return (f"| {row['batch_size']:,} | {row['method']} | {wps} | {analogy} | {ws} | {loss} | "
            f"{'yes' if row['diverged'] else 'no'} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(DATA / "enwiki-gutenberg-2m.txt.gz"))
    p.add_argument("--tokens", type=int, default=0, help="train on this prefix of the corpus (0: all)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[4096, 16384, 65536, 262144])
    p.add_argument("--methods", nargs="+", default=["sum", "trust:2", "cap:64", "sub:4096", "trust:2+sub:16384"])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--min-lr", type=float, default=0.0001)
    p.add_argument("--shared-negatives", type=int, default=TrainConfig.shared_negatives)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    # Batches never span chunks, so chunks must hold several of the largest batches
    # (~4.4 pairs per corpus word at these settings): 262,144 tokens is ~1.1M pairs.
    p.add_argument("--chunk-tokens", type=int, default=262144)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)

    enc = load_corpus(args.corpus, Tokenizer())
    tokens = enc.tokens[: args.tokens] if args.tokens else enc.tokens
    counts = np.bincount(np.asarray(tokens), minlength=len(enc.types)) if args.tokens else enc.counts
    vocab = Vocab.from_counts(zip(enc.types, counts.tolist()), args.min_count)
    rank_to_id = vocab.encode(enc.types)
    print(f"corpus {args.corpus}: {len(tokens):,} tokens{' (prefix)' if args.tokens else ''}, {len(vocab):,} words; "
          f"dim {args.dim} window {args.window} negatives {args.negatives} sample {args.sample} "
          f"lr {args.lr} G {args.shared_negatives} workers {args.workers} chunk {args.chunk_tokens}", flush=True)
    print("| batch | method | words/s | analogy | WS-353 | final loss | diverged |\n|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for batch_size in args.batch_sizes:
        for method in args.methods:
            began = time.perf_counter()
            row = run(tokens, vocab, rank_to_id, batch_size, method, args)
            if row:
                rows.append(row)
                print(fmt(row) + f"  <!-- {time.perf_counter() - began:.0f}s -->", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
