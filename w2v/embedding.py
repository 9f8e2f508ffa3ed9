"""Sharded embedding tables with TensorFlow's partition strategies.

Minimal core: routing of ids to shards and the row gather / row update used by the
trainer's hand-written update path.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import nn

STRATEGIES = ("mod", "div")


def shard_sizes(num_embeddings: int, num_shards: int, partition_strategy: str) -> List[int]:
    """Rows held by each shard.

    >>> shard_sizes(10, 3, "mod"), shard_sizes(10, 3, "div")
    ([4, 3, 3], [4, 3, 3])
    """
    if partition_strategy not in STRATEGIES:
        raise ValueError(f"unknown partition_strategy {partition_strategy!r}; use 'mod' or 'div'")
    base, extra = divmod(num_embeddings, num_shards)
    return [base + (1 if s < extra else 0) for s in range(num_shards)]


def route(ids: torch.Tensor, num_embeddings: int, num_shards: int, partition_strategy: str):
    """Map global ids to ``(shard, row)`` pairs.

    >>> s, r = route(torch.tensor([0, 4, 5, 9]), 10, 3, "div")
    >>> s.tolist(), r.tolist()
    ([0, 1, 1, 2], [0, 0, 1, 2])
    """
    if partition_strategy == "mod":
        return ids % num_shards, ids // num_shards
    base, extra = divmod(num_embeddings, num_shards)
    cut = extra * (base + 1)  # ids below this sit in the larger shards
    big = ids < cut
    shard = torch.where(big, ids // (base + 1), extra + (ids - cut) // max(base, 1))
    row = torch.where(big, ids % (base + 1), (ids - cut) % max(base, 1))
    return shard, row


class ShardedEmbedding(nn.Module):
    """A lookup table split into ``num_shards`` row shards."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_shards: int = 1,
        partition_strategy: str = "mod",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if num_shards > num_embeddings:
            raise ValueError(
                f"num_shards={num_shards} is more than num_embeddings={num_embeddings}; use fewer shards"
            )
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.num_shards = num_shards
        self.partition_strategy = partition_strategy
        sizes = shard_sizes(num_embeddings, num_shards, partition_strategy)
        self.shards = nn.ParameterList(
            [nn.Parameter(torch.empty(n, embedding_dim, device=device, dtype=dtype)) for n in sizes]
        )
        self.reset_parameters()

    def reset_parameters(self, init: str = "normal") -> None:
        with torch.no_grad():
            for p in self.shards:
                if init == "normal":
                    nn.init.normal_(p)
                elif init == "word2vec_input":  # word2vec.c: U(-0.5/dim, 0.5/dim)
                    nn.init.uniform_(p, -0.5 / self.embedding_dim, 0.5 / self.embedding_dim)
                elif init == "zeros":  # word2vec.c's output table
                    nn.init.zeros_(p)
                else:
                    raise ValueError(f"unknown init {init!r}")

    def _route(self, ids):
        return route(ids, self.num_embeddings, self.num_shards, self.partition_strategy)

    @torch.no_grad()
    def gather(self, ids: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows for ``ids`` without autograd (the trainer's update path)."""
        if self.num_shards == 1:
            return torch.index_select(self.shards[0], 0, ids, out=out)
        shard, row = self._route(ids)
        if out is None:
            out = torch.empty(ids.numel(), self.embedding_dim, device=ids.device, dtype=self.shards[0].dtype)
        for s, p in enumerate(self.shards):
            sel = (shard == s).nonzero().squeeze(1)
            out[sel] = p.index_select(0, row[sel])
        return out

    @torch.no_grad()
    def index_add_(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """Add ``values[i]`` to row ``ids[i]`` in place, duplicates summed."""
        if self.num_shards == 1:
            self.shards[0].index_add_(0, ids, values)
            return
        shard, row = self._route(ids)
        for s, p in enumerate(self.shards):
            sel = (shard == s).nonzero().squeeze(1)
            p.index_add_(0, row[sel], values[sel])

    @property
    def weight(self) -> torch.Tensor:
        """The full table in global id order (a copy when sharded)."""
        if self.num_shards == 1:
            return self.shards[0]
        ids = torch.arange(self.num_embeddings, device=self.shards[0].device)
        return self.gather(ids)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        shard, row = self._route(ids.reshape(-1))
        out = torch.zeros(ids.numel(), self.embedding_dim, device=ids.device, dtype=self.shards[0].dtype)
        for s, p in enumerate(self.shards):
            sel = (shard == s).nonzero().squeeze(1)
            out = out.index_put((sel,), nn.functional.embedding(row[sel], p))
        return out.view(*ids.shape, self.embedding_dim)
