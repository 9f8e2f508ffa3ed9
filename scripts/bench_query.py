"""Time ``most_similar`` over a big table: batched queries here vs gensim, one query at a time.

    python scripts/bench_query.py                      # 1M x 300, 1,000 queries (about 5 GB of RAM)
    python scripts/bench_query.py --words 100000 --dim 100 --device cuda

Prints milliseconds per query for ``WordVectors.most_similar_batch`` (amortised over the
batch), for single ``WordVectors.most_similar`` calls, and for gensim's ``most_similar``
on the same table, plus the ratio, all measured in the same run. Target: <= 10 ms per
query batched on CPU at 1M x 300. Checks that the answers agree with gensim's.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from w2v.vectors import WordVectors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--words", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--queries", type=int, default=1000, help="batch size for most_similar_batch")
    p.add_argument("--single", type=int, default=20, help="queries timed one at a time (ours and gensim's)")
    p.add_argument("--topn", type=int, default=10)
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--no-gensim", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    table = rng.standard_normal((args.words, args.dim), dtype=np.float32)
    words = [f"w{i}" for i in range(args.words)]
    wv = WordVectors(words, table)
    wv.fill_norms()
    print(f"table {args.words:,} x {args.dim} float32 ({table.nbytes / 2**30:.2f} GiB), built in "
          f"{time.perf_counter() - t:.1f}s; torch threads {torch.get_num_threads()}, device {args.device or 'cpu'}")
    queries = [words[i] for i in rng.choice(args.words, size=args.queries, replace=False)]

    wv.most_similar_batch(queries[:8], topn=args.topn, device=args.device)  # warm-up (and device copy)
    t = time.perf_counter()
    batch = wv.most_similar_batch(queries, topn=args.topn, device=args.device)
    ours_batch = (time.perf_counter() - t) / len(queries) * 1000
    print(f"ours, most_similar_batch of {len(queries)}: {ours_batch:.2f} ms/query "
          f"({'meets' if ours_batch <= 10 else 'misses'} the 10 ms target)")

    single = queries[: args.single]
    t = time.perf_counter()
    ours_one = [wv.most_similar(q, topn=args.topn) for q in single]
    ours_single = (time.perf_counter() - t) / len(single) * 1000
    print(f"ours, most_similar one at a time: {ours_single:.2f} ms/query")
    assert [r[0] for r in ours_one[0]] == [r[0] for r in batch[0]], "batch and single answers differ"

    if args.no_gensim:
        return 0
    from gensim.models import KeyedVectors

    kv = KeyedVectors(args.dim)
    kv.add_vectors(words, table)  # a copy: gensim and we each hold the table
    kv.fill_norms()
    del table
    kv.most_similar(single[0], topn=args.topn)  # warm-up
    t = time.perf_counter()
    theirs = [kv.most_similar(q, topn=args.topn) for q in single]
    gensim_single = (time.perf_counter() - t) / len(single) * 1000
    print(f"gensim, most_similar one at a time: {gensim_single:.2f} ms/query")
    print(f"speed-up: batched {gensim_single / ours_batch:.1f}x gensim; "
          f"single {gensim_single / ours_single:.2f}x gensim")
    agree = sum([w for w, _ in a] == [w for w, _ in b] for a, b in zip(theirs, batch))
    print(f"same top-{args.topn} words as gensim for {agree}/{len(single)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
