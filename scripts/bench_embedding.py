"""Forward + backward (sparse gradients) of a sharded table against one ``nn.Embedding``.

    python scripts/bench_embedding.py [--rows 1000000] [--dim 128] [--ids 1000000] [--shards 8]

Both layers hold the same table and look up the same ids. A step is ``zero_grad``, the
lookup and a backward, in two settings:

* ``embedding only``: ``out.backward(grad)`` with a fixed upstream gradient, so nothing
  but the layer's own work is timed;
* ``with a loss``: word2vec's ``-log s(x . y)`` against fixed rows ``y``, the kind of
  work that surrounds a lookup in training.

What to expect: the sharded forward is one gather, like ``nn.Embedding``'s (the shards
share one buffer), after a few elementwise integer ops that route the ids. Its backward
must give every shard a sparse gradient of its own, so it copies the gradient rows grouped
by shard (one pass over ``ids x dim`` values) where ``nn.Embedding`` wraps the incoming
gradient without a copy. The grouping is a stable radix sort of a 1-byte shard key
(numpy's on CPU, ~2 ms for 1M ids), and the copy lands in a buffer the layer reuses once
the previous step's gradients are dropped: a fresh one (512 MB by default) would cost more
in page faults than the copy itself. On a busy 2-core CPU that comes to about 1.3-1.45x
embedding-only (the copy is most of the gap, ~50-70 ms; routing and sorting ~30 ms) and
1.05-1.25x with a loss.

Runs alternate between the two layers so that drift on a shared machine hits both
alike; each reports the median of ``--repeats`` timed steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from w2v.embedding import ShardedEmbedding

SETTINGS = {"embedding only": "none", "with a loss": "dot"}


def step(layer: nn.Module, ids: torch.Tensor, grad: torch.Tensor, loss: str) -> None:
    layer.zero_grad(set_to_none=True)
    out = layer(ids)  # (n, D)
    if loss == "none":
        out.backward(grad)
    else:
        (-F.logsigmoid((out * grad).sum(-1))).sum().backward()
    if out.is_cuda:
        torch.cuda.synchronize()


def time_pair(plain, sharded, ids, grad, loss, warmup, repeats):
    times = {"plain": [], "sharded": []}
    for i in range(warmup + repeats):
        for name, layer in (("plain", plain), ("sharded", sharded)):
            start = time.perf_counter()
            step(layer, ids, grad, loss)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return statistics.median(times["plain"]) * 1e3, statistics.median(times["sharded"]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--strategy", default="mod", choices=["mod", "div"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    table = torch.randn(args.rows, args.dim, device=device)
    plain = nn.Embedding.from_pretrained(table, freeze=False, sparse=True)
    sharded = ShardedEmbedding.from_pretrained(
        table, freeze=False, num_shards=args.shards, partition_strategy=args.strategy, sparse=True
    )
    del table
    ids = torch.randint(0, args.rows, (args.ids,), device=device)
    grad = torch.randn(args.ids, args.dim, device=device)

    print(
        f"forward+backward, sparse grads: {args.ids:,} ids into {args.rows:,} x {args.dim}, "
        f"{args.device}, {torch.get_num_threads()} threads, median of {args.repeats} after {args.warmup} warmup"
    )
    print(f"{'':16s} {'nn.Embedding':>14s} {f'{args.shards} shards ({args.strategy})':>16s} {'ratio':>7s}")
    for label, loss in SETTINGS.items():
        plain_ms, sharded_ms = time_pair(plain, sharded, ids, grad, loss, args.warmup, args.repeats)
        print(f"{label:16s} {plain_ms:11.1f} ms {sharded_ms:13.1f} ms {sharded_ms / plain_ms:6.2f}x")


if __name__ == "__main__":
    main()
