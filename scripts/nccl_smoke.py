"""The collectives a multi-process run uses, on this machine's backend (NCCL on a GPU, gloo on CPU).

Run under torchrun; each collective's result is checked against what it must be, so a
broken NCCL set-up fails here with a named step rather than deep inside training.

    python -m torch.distributed.run --nproc_per_node=1 scripts/nccl_smoke.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v import parallel  # noqa: E402
from w2v.embedding import DistributedEmbedding  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    device = parallel.local_device(torch.device(args.device))
    backend = parallel.init_from_env(device, 120)
    rank, world = parallel.rank_and_size()
    t = torch.full((4,), float(rank + 1), device=device)
    dist.all_reduce(t)
    assert torch.all(t == world * (world + 1) / 2), ("all_reduce", t)
    send = torch.arange(world * 2, device=device, dtype=torch.int64) + 100 * rank
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send)
    expect = torch.cat([torch.arange(2 * rank, 2 * rank + 2, device=device) + 100 * r for r in range(world)])
    assert torch.equal(recv, expect), ("all_to_all_single", recv, expect)
    # The embedding layer's own exchange: a lookup and an update through the collectives.
    layer = DistributedEmbedding(50, 8, "mod", device=device, init="zeros")
    ids = torch.arange(0, 50, 7, device=device)
    layer.index_add_(ids, torch.ones(ids.numel(), 8, device=device))
    rows = layer(ids)
    assert torch.equal(rows, torch.ones_like(rows)), ("update then lookup", rows)
    print(f"rank {rank} of {world}: {backend} on {device}: all_reduce, all_to_all_single and the embedding lookup are right")
    parallel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
