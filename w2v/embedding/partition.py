"""Which shard holds which id: TensorFlow's ``mod`` and ``div`` partition strategies.

With ``V`` rows over ``N`` shards both strategies give the first ``V % N`` shards one row
more than the others; they differ in which ids a shard holds:

* ``mod``: id ``i`` lives in shard ``i % N`` at row ``i // N`` (round robin);
* ``div``: shards hold contiguous ranges of ids, in order.

Everything here is vectorised over ids: routing is a few elementwise integer ops, and
grouping ids by shard is one stable radix sort of a small key (numpy's on CPU), whatever
the number of ids or shards.
"""

from __future__ import annotations

import itertools
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from w2v.config import PARTITION_STRATEGIES as STRATEGIES


def check_strategy(partition_strategy: str) -> None:
    """Raise ``ValueError`` unless ``partition_strategy`` is ``"mod"`` or ``"div"``."""
    if partition_strategy not in STRATEGIES:
        raise ValueError(f"unknown partition_strategy {partition_strategy!r}; use one of {STRATEGIES}")


def _check_counts(num_embeddings: int, num_shards: int) -> None:
    if int(num_shards) != num_shards or num_shards < 1:
        raise ValueError(f"num_shards must be a positive integer, got {num_shards!r}")
    if int(num_embeddings) != num_embeddings or num_embeddings < 0:
        raise ValueError(f"num_embeddings must be a non-negative integer, got {num_embeddings!r}")


def shard_sizes(num_embeddings: int, num_shards: int, partition_strategy: str) -> List[int]:
    """Rows held by each shard; the same for both strategies.

    Args:
        num_embeddings: rows of the whole table (``V``).
        num_shards: number of shards (``N``); may exceed ``V``, leaving empty shards.
        partition_strategy: ``"mod"`` or ``"div"``.

    Returns:
        ``N`` sizes: the first ``V % N`` shards hold ``V // N + 1`` rows, the rest ``V // N``.

    Examples:
        >>> shard_sizes(10, 3, "mod"), shard_sizes(10, 3, "div"), shard_sizes(2, 3, "div")
        ([4, 3, 3], [4, 3, 3], [1, 1, 0])
    """
    check_strategy(partition_strategy)
    _check_counts(num_embeddings, num_shards)
    base, extra = divmod(num_embeddings, num_shards)
    return [base + (1 if s < extra else 0) for s in range(num_shards)]


def route(
    ids: torch.Tensor, num_embeddings: int, num_shards: int, partition_strategy: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Map global ids to ``(shard, row)`` pairs.

    Ids are not range-checked here (an id ``>= V`` lands on a row past its shard's end,
    which the gather then rejects); :func:`~w2v.embedding.embedding_lookup` checks them.

    Args:
        ids: integer tensor of any shape.
        num_embeddings: rows of the whole table (``V``).
        num_shards: number of shards (``N``).
        partition_strategy: ``"mod"`` or ``"div"``.

    Returns:
        ``(shard, row)``, two tensors shaped and typed like ``ids``.

    Examples:
        >>> s, r = route(torch.tensor([0, 4, 5, 9]), 10, 3, "div")
        >>> s.tolist(), r.tolist()
        ([0, 1, 1, 2], [0, 0, 1, 2])
        >>> s, r = route(torch.tensor([0, 4, 5, 9]), 10, 3, "mod")
        >>> s.tolist(), r.tolist()
        ([0, 1, 2, 0], [0, 1, 1, 3])
    """
    check_strategy(partition_strategy)
    _check_counts(num_embeddings, num_shards)
    n = num_shards
    if partition_strategy == "mod" or n == 1:
        if n & (n - 1) == 0:  # a power of two: bit ops are ~10x cheaper than % and //
            return ids & (n - 1), ids >> (n.bit_length() - 1)
        return ids % n, ids // n
    base, extra = divmod(num_embeddings, n)
    if base == 0:  # fewer rows than shards: shard i holds id i alone, later shards are empty
        return ids.clone(), torch.zeros_like(ids)
    if extra == 0:  # equal shards: one division
        shard = ids // base
        return shard, torch.sub(ids, shard, alpha=base)
    # Shards below `extra` hold base + 1 rows, so the first extra * (base + 1) ids sit there.
    shard = torch.where(ids < extra * (base + 1), ids // (base + 1), (ids - extra) // base)
    return shard, torch.sub(ids, shard, alpha=base).sub_(shard.clamp(max=extra))


def split_table(table: torch.Tensor, num_shards: int, partition_strategy: str = "mod") -> List[torch.Tensor]:
    """Split a table into shards along its first dimension.

    Args:
        table: ``(V, *)``.
        num_shards: number of shards.
        partition_strategy: ``"mod"`` or ``"div"``.

    Returns:
        ``num_shards`` views of ``table`` (no copy; ``mod`` views are strided); the exact
        inverse of :func:`join_shards`.

    Examples:
        TensorFlow's documented layouts of 13 ids over 5 shards:

        >>> [s.tolist() for s in split_table(torch.arange(13), 5, "mod")]
        [[0, 5, 10], [1, 6, 11], [2, 7, 12], [3, 8], [4, 9]]
        >>> [s.tolist() for s in split_table(torch.arange(13), 5, "div")]
        [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10], [11, 12]]
    """
    if not isinstance(table, torch.Tensor) or table.dim() < 1:
        raise ValueError("split_table needs a tensor with at least one dimension (the rows)")
    sizes = shard_sizes(table.shape[0], num_shards, partition_strategy)
    if partition_strategy == "mod":
        return [table[s::num_shards] for s in range(num_shards)]
    return list(table.split(sizes))


def check_shards(shards: Sequence[torch.Tensor], partition_strategy: str) -> int:
    """Validate a list of shards and return the total number of rows.

    Raises:
        ValueError: no shards; shards that disagree past the first dimension or in dtype;
            several shards whose sizes do not follow the strategy's layout.
    """
    check_strategy(partition_strategy)
    if isinstance(shards, torch.Tensor):
        shards = [shards]
    if len(shards) == 0:
        raise ValueError("params is empty; pass a tensor or a non-empty list of shards")
    for s, p in enumerate(shards):
        if not isinstance(p, torch.Tensor) or p.dim() < 1:
            raise ValueError(f"shard {s} is not a tensor with at least one dimension")
        if p.shape[1:] != shards[0].shape[1:] or p.dtype != shards[0].dtype:
            raise ValueError(
                f"shard {s} is {p.dtype} {tuple(p.shape)} but shard 0 is {shards[0].dtype} "
                f"{tuple(shards[0].shape)}; shards must agree in dtype and in all but the first dimension"
            )
    sizes = [p.shape[0] for p in shards]
    total = sum(sizes)
    expected = shard_sizes(total, len(shards), partition_strategy)
    if sizes != expected:
        raise ValueError(
            f"shard sizes {sizes} do not follow the {partition_strategy!r} layout of {total} rows over "
            f"{len(shards)} shards; expected sizes {expected} (split_table builds them)"
        )
    return total


def join_shards(shards: Sequence[torch.Tensor], partition_strategy: str = "mod") -> torch.Tensor:
    """Join shards back into one table in global id order (a copy).

    Args:
        shards: tensors ``(n_s, *)`` laid out as :func:`split_table` makes them; the
            result lives on the first shard's device.
        partition_strategy: ``"mod"`` or ``"div"``.

    Returns:
        ``(V, *)`` with ``V`` the total number of rows.

    Examples:
        >>> join_shards([torch.tensor([0, 2, 4]), torch.tensor([1, 3])], "mod").tolist()
        [0, 1, 2, 3, 4]
    """
    if isinstance(shards, torch.Tensor):
        shards = [shards]
    total = check_shards(shards, partition_strategy)
    first = shards[0]
    shards = [p.to(first.device) for p in shards]
    if partition_strategy == "div" or len(shards) == 1:
        return torch.cat(shards)
    table = first.new_empty((total, *first.shape[1:]))
    for s, p in enumerate(shards):
        table[s :: len(shards)] = p
    return table


def check_ids(ids: torch.Tensor, num_embeddings: int) -> None:
    """Raise ``IndexError`` naming the first bad id when an id is outside ``[0, V)``.

    One ``aminmax`` pass on the CPU. On an accelerator, reading the range back would stall
    the host at every lookup, so the device checks it (:func:`check_ids_on_device`) and
    the error surfaces at the next synchronisation, as ``nn.Embedding``'s does on CUDA.
    """
    if ids.numel() == 0:
        return
    if ids.device.type != "cpu":
        check_ids_on_device(ids, num_embeddings)
        return
    lo, hi = torch.stack(torch.aminmax(ids)).tolist()
    if lo >= 0 and hi < num_embeddings:
        return
    bad = lo if lo < 0 else hi
    valid = f"valid ids are 0 to {num_embeddings - 1}" if num_embeddings else "the table has no rows"
    raise IndexError(f"id {bad} is out of range for a table of {num_embeddings} rows; {valid}")


def check_ids_on_device(ids: torch.Tensor, num_embeddings: int) -> None:
    """Check that every id is in ``[0, V)`` where ``ids`` live, without waiting for the answer.

    Raises:
        RuntimeError: an id is out of range (at once on the CPU; on an accelerator, at the
            next synchronisation).
    """
    inside = ((ids >= 0) & (ids < num_embeddings)).all()
    torch._assert_async(inside, f"an id is out of range for a table of {num_embeddings} rows; valid ids are 0 to {num_embeddings - 1}")


def as_ids(ids, device: Optional[torch.device] = None) -> torch.Tensor:
    """An integer tensor of ids; ``TypeError`` for float, complex or bool ids.

    int32 and int64 tensors pass unchanged; other integer types become int64. Non-tensors
    (lists) become a tensor on ``device``.
    """
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor(ids, device=device)
        if ids.numel() == 0 and ids.dtype.is_floating_point:  # torch.as_tensor([]) is float
            ids = ids.long()
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor, got {ids.dtype}; convert them with ids.long()")
    return ids if ids.dtype in (torch.int32, torch.int64) else ids.long()


class Layout:
    """The partition of ``V`` rows over ``N`` shards, with the steps every lookup takes.

    A lookup is TorchRec's three steps: :meth:`route` ids to their shards, gather rows in
    each shard (grouped by :meth:`group`), and put them back in id order. When the shards
    are consecutive slices of one buffer (shard-major), :meth:`flat_index` turns the
    first two steps into one gather from that buffer.
    """

    def __init__(self, num_embeddings: int, num_shards: int, partition_strategy: str) -> None:
        self.sizes = shard_sizes(num_embeddings, num_shards, partition_strategy)
        self.num_embeddings, self.num_shards = num_embeddings, num_shards
        self.partition_strategy = partition_strategy
        self.offsets = [0, *itertools.accumulate(self.sizes)][:-1]  # first row of each shard

    def route(self, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return route(ids, self.num_embeddings, self.num_shards, self.partition_strategy)

    def flat_index(self, ids: torch.Tensor, routed: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """Row of each id in the shard-major concatenation of the shards.

        ``routed``: :meth:`route`'s ``(shard, row)`` for ``ids``, when already at hand.
        """
        if self.num_shards == 1 or self.partition_strategy == "div":
            return ids  # div shards are contiguous id ranges in order: the concatenation is the table
        shard, row = self.route(ids) if routed is None else routed
        base, extra = divmod(self.num_embeddings, self.num_shards)
        flat = torch.add(row, shard, alpha=base)  # shard s starts at s * base + min(s, extra)
        return flat.add_(shard.clamp(max=extra)) if extra else flat

    def group(
        self, ids: Optional[torch.Tensor], routed: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[Optional[torch.Tensor], List[int], torch.Tensor]:
        """Ids grouped by shard: ``(order, counts, rows)``.

        ``ids[order]`` lists shard 0's ids, then shard 1's...; ``counts[s]`` is how many
        belong to shard ``s`` and ``rows`` their rows, in that order. The sort is stable,
        so results within a shard are deterministic. With one shard ``order`` is ``None``
        (the identity) and nothing is sorted. ``routed``, :meth:`route`'s ``(shard, row)``
        for ``ids`` when already at hand, stands in for ``ids``.
        """
        shard, row = routed if routed is not None else (None, ids) if self.num_shards == 1 else self.route(ids)
        if self.num_shards == 1:
            return None, [row.numel()], row
        order, counts = _order_by_shard(shard, self.num_shards)
        return order, counts, row.index_select(0, order)

    def per_shard(self, ids: torch.Tensor) -> List[Tuple[Optional[torch.Tensor], torch.Tensor]]:
        """For each shard, ``(positions, rows)``: where its ids sit in ``ids`` and their rows."""
        order, counts, rows = self.group(ids)
        if order is None:
            return [(None, rows)]
        return list(zip(order.split(counts), rows.split(counts)))


def _order_by_shard(shard: torch.Tensor, num_shards: int) -> Tuple[torch.Tensor, List[int]]:
    """A stable argsort of shard numbers ``(n,)`` in ``[0, num_shards)``, and how many of each."""
    if shard.device.type == "cpu":
        # numpy sorts 1- and 2-byte keys stably by radix in one serial pass: ~2 ms for 1M ids,
        # where torch.sort (2.13, CPU) takes ~6 ms on one thread and 50+ ms on two busy cores.
        return _order_by_shard_numpy(shard, num_shards)
    return _order_by_shard_torch(shard, num_shards)


def _order_by_shard_numpy(shard: torch.Tensor, num_shards: int) -> Tuple[torch.Tensor, List[int]]:
    dtype = np.uint8 if num_shards <= 1 << 8 else np.uint16 if num_shards <= 1 << 16 else np.int64
    key = shard.numpy().astype(dtype, copy=False)
    return torch.from_numpy(np.argsort(key, kind="stable")), np.bincount(key, minlength=num_shards).tolist()


def _order_by_shard_torch(shard: torch.Tensor, num_shards: int) -> Tuple[torch.Tensor, List[int]]:
    key = shard.to(torch.uint8) if num_shards <= 256 else shard  # a 1-byte key sorts fastest
    sorted_key, order = torch.sort(key, stable=True)
    # Where each shard's run starts in the sorted keys: the counts, with one host sync.
    starts = torch.searchsorted(sorted_key, torch.arange(num_shards, dtype=key.dtype, device=key.device))
    starts = starts.tolist() + [key.numel()]
    return order, [b - a for a, b in zip(starts, starts[1:])]


def rows_view(p: torch.Tensor) -> torch.Tensor:
    """``p`` as a 2-D ``(rows, features)`` tensor: the embedding axes flattened."""
    return p.reshape(p.shape[0], math.prod(p.shape[1:]))
