"""Merging data-parallel replicas: what each rank changed since the last merge, combined over the ranks.

Each rank trains its own copy of both tables on its share of the corpus. At a merge, with
``B`` the tables at the previous merge (the same on every rank) and ``W_r`` rank ``r``'s
tables now, every rank sets its tables to

=========== ==============================================================================
``sum``     ``B + sum_r (W_r - B)``: every rank's updates, as if one process had made them
            all from the same weights (a row one rank trained keeps that rank's update)
``mean``    ``B + 1/N sum_r (W_r - B)``: model averaging (Spark's word2vec)
=========== ==============================================================================

An all-reduce gives every rank the same sums, so the replicas are bitwise equal after a
merge. A merge can take a prefix of the rows: ids are frequency ranks, so the first rows
are the most frequent words', the ones that go through the most updates between merges
(:class:`~w2v.strategies.replicas.Replicas` merges them most often).

The deltas travel whole (``rows x D`` floats per table). Sending only the rows some rank
changed (a count per row first, then the changed rows gathered) was measured slower on the
20M corpus: finding them reads both tables, and nearly every row of a prefix changes
between its merges (docs/benchmarks.md).

Transport: ``torch.distributed.all_reduce`` (NCCL between GPUs, gloo between machines).
When every rank runs on one machine with CPU tables, merges of up to ``SHARED_BYTES`` go
through a shared-memory file instead, as NCCL does within a node: each rank writes its
delta into its own slot, one barrier, and every rank adds the slots up in rank order (the
same sums everywhere). Over gloo the deltas would cross loopback TCP at ~1-2 GB/s
(docs/benchmarks.md).

Memory: ``B``, a second copy of both tables; with shared memory, two slots per rank and a
sum of up to ``SHARED_BYTES`` each.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist

from w2v.config import MERGE_RULES

SHARED_BYTES = 256 << 20  # the largest merge (both tables' rows) that goes through shared memory


@dataclass
class MergeStats:
    """What one merge did: rows merged, bytes all-reduced per rank, seconds by part."""

    rows: int = 0  # over all tables
    bytes: int = 0  # payload of the all-reduces (each rank sends ~2(N-1)/N of it in a ring)
    reduce: float = 0.0  # in the all-reduces: waiting for the slowest rank, and the transfer
    seconds: float = 0.0  # the whole merge


class ReplicaSync:
    """Merges ``tables`` over the ranks of ``group`` by ``rule``.

    Args:
        tables: this rank's tables, ``(V, D)`` each; merged in place.
        rule: one of :data:`~w2v.config.MERGE_RULES`.
        group: the process group (the default one when ``None``).

    Example (every rank runs it)::

        sync = ReplicaSync([model.input.weight, model.output.weight], "sum")
        sync.snapshot()          # B := the tables, once, when they agree
        ...train...
        sync.merge()             # the tables are the same on every rank again
    """

    def __init__(self, tables: Sequence[torch.Tensor], rule: str, group=None, shared_bytes: int = SHARED_BYTES) -> None:
        if rule not in MERGE_RULES:
            raise ValueError(f"unknown merge rule {rule!r}; use one of {MERGE_RULES}")
        self.tables, self.rule, self.group = list(tables), rule, group
        self.world = dist.get_world_size(group) if dist.is_initialized() else 1
        self.rank = dist.get_rank(group) if dist.is_initialized() else 0
        self.base: Optional[List[torch.Tensor]] = None
        self.merges, self.sent_bytes, self.merged_rows = 0, 0, 0
        self.shared: Optional[_SharedSlots] = None
        capacity = min(shared_bytes // 4, sum(t.numel() for t in self.tables))
        if self.world > 1 and capacity and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in self.tables):
            self.shared = _SharedSlots.open(group, self.rank, self.world, capacity)
        self.transport = "shared memory" if self.shared else (dist.get_backend(group) if self.world > 1 else "none")

    @torch.no_grad()
    def snapshot(self) -> None:
        """Take the tables as they are as the base of the next merge (they must agree over the ranks)."""
        self.base = [t.detach().clone() for t in self.tables]

    @torch.no_grad()
    def merge(self, rows: Optional[int] = None) -> MergeStats:
        """Combine every rank's changes since the last merge (or snapshot); a collective.

        Args:
            rows: merge only the first ``rows`` rows of each table (all when ``None``); with
                ids in frequency order, the most frequent words'. Every rank passes the same.
        """
        if self.base is None:
            raise RuntimeError("ReplicaSync.merge before snapshot: take the base tables first")
        began = time.perf_counter()
        stats = MergeStats()
        pairs = [(t[:rows], b[:rows]) for t, b in zip(self.tables, self.base)]  # views: merged in place
        stats.rows = sum(len(t) for t, _ in pairs)
        stats.bytes = sum(t.numel() * t.element_size() for t, _ in pairs)
        if self.world == 1:
            for table, base in pairs:
                base.copy_(table)
        elif self.shared is not None and stats.bytes <= 4 * self.shared.capacity:
            self._merge_shared(pairs, stats)
        else:
            for table, base in pairs:
                delta = table.sub_(base)  # (rows, D): the table holds its delta until merged
                reducing = time.perf_counter()
                dist.all_reduce(delta, op=dist.ReduceOp.SUM, group=self.group)
                stats.reduce += time.perf_counter() - reducing
                if self.rule == "mean":
                    delta.div_(self.world)
                base.add_(delta)
                table.copy_(base)
        stats.seconds = time.perf_counter() - began
        self.merges += 1
        self.sent_bytes += stats.bytes
        self.merged_rows += stats.rows
        return stats

    def _merge_shared(self, pairs, stats: MergeStats) -> None:
        """The merge through shared memory: deltas into this rank's slot, a barrier, slots added in rank order."""
        slots = self.shared.slots(self.merges % 2)  # the other buffer may still be read by a slower rank
        size = stats.bytes // 4
        mine, total = slots[self.rank][:size], self.shared.total[:size]
        offset = 0
        for table, base in pairs:
            torch.sub(table, base, out=mine[offset : offset + table.numel()].view(table.shape))
            offset += table.numel()
        reducing = time.perf_counter()
        dist.barrier(group=self.group)  # every slot is written
        stats.reduce += time.perf_counter() - reducing
        torch.add(slots[0][:size], slots[1][:size], out=total)
        for slot in slots[2:]:
            total.add_(slot[:size])
        if self.rule == "mean":
            total.div_(self.world)
        offset = 0
        for table, base in pairs:
            base.add_(total[offset : offset + table.numel()].view(base.shape))
            table.copy_(base)
            offset += table.numel()


class _SharedSlots:
    """Two buffers of one slot per rank in a shared-memory file, and this rank's sum buffer.

    Merge ``m`` writes buffer ``m % 2``, which merge ``m - 2`` was the last to read. A rank
    writes it after passing merge ``m - 1``'s barrier, which no rank reaches before it is
    done reading merge ``m - 2``'s slots: no slot is overwritten while another rank reads it.
    """

    def __init__(self, flat: torch.Tensor, world: int, capacity: int) -> None:
        self.flat, self.world, self.capacity = flat, world, capacity
        self.total = torch.empty(capacity, dtype=torch.float32)

    def slots(self, buffer: int) -> List[torch.Tensor]:
        start = buffer * self.world * self.capacity
        return [self.flat[start + r * self.capacity : start + (r + 1) * self.capacity] for r in range(self.world)]

    @classmethod
    def open(cls, group, rank: int, world: int, capacity: int) -> Optional["_SharedSlots"]:
        """Map one file in ``/dev/shm`` on every rank when all run on this machine (a collective); else ``None``."""
        here = [None] * world
        dist.all_gather_object(here, (socket.gethostname(), _boot_id()), group=group)
        if len(set(here)) > 1 or not os.path.isdir("/dev/shm"):
            return None
        size = 2 * world * capacity
        path = [None]
        if rank == 0:
            try:
                name = f"/dev/shm/w2v-merge-{uuid.uuid4().hex}"
                with open(name, "wb") as f:
                    f.truncate(4 * size)
                path[0] = name
            except OSError:
                pass
        dist.broadcast_object_list(path, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
        flat = None
        if path[0] is not None:
            try:
                flat = torch.from_file(path[0], shared=True, size=size, dtype=torch.float32)
            except (OSError, RuntimeError):
                flat = None
        mapped = torch.tensor([0 if flat is None else 1], dtype=torch.int32)
        dist.all_reduce(mapped, op=dist.ReduceOp.MIN, group=group)  # every rank mapped it, or none uses it
        if rank == 0 and path[0] is not None:
            os.unlink(path[0])  # the mappings stay; nothing is left behind if a rank dies
        return cls(flat, world, capacity) if int(mapped) else None


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""
