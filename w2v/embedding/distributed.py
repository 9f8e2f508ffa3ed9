"""Row-wise sharding across processes: each rank of a ``torch.distributed`` group holds one shard.

A table of ``V`` rows is split into ``world_size`` shards by the partition strategy (as
:func:`~w2v.embedding.shard_sizes`), rank ``r`` holding shard ``r``; no process ever holds
the whole table. A lookup is TorchRec's row-wise exchange:

1. each rank deduplicates its batch's ids and routes them to their owners
   (``all_to_all`` of the counts, then of the ids' local rows);
2. owners gather the rows and send them back (``all_to_all`` of rows);
3. backward (or :meth:`DistributedEmbedding.index_add_`) sums each unique id's gradient on
   the rank that looked it up, sends the sums to the owners along the same routes, and
   owners add them to their shard locally.

So a step moves ``unique ids x (8 + 2 * 4 * D)`` bytes per table and rank, not a table:
nothing is all-reduced and there is no data-parallel copy of the tables. Every method that
exchanges is a collective: all ranks call it, in the same order (an empty batch is fine).
With a world of one process (or without an initialised process group) every exchange is
skipped and the layer is a plain local table.

Gradients equal those of a :class:`~w2v.embedding.ShardedEmbedding` with ``world_size``
shards fed the union of all ranks' batches: rank ``r``'s ``.grad`` is that layer's
``shards[r].grad`` (dense, or sparse with ``sparse=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn

from w2v.embedding.partition import STRATEGIES, Layout, as_ids, check_ids, join_shards, split_table


def group_rank_and_size(group=None) -> tuple:
    """``(rank, world_size)`` in ``group``, ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


@dataclass
class Route:
    """Where one batch's ids went: computed by a lookup, reused by the update of the same ids."""

    ids: torch.Tensor  # the batch's ids (kept to recognise them)
    version: int  # ids._version when routed: an in-place change invalidates the route
    pos: torch.Tensor  # (n,): row of each id in the exchanged (unique ids, D) block
    num_unique: int
    send: List[int]  # unique ids sent to each rank
    recv: List[int]  # ids received from each rank
    rows: torch.Tensor  # (sum(recv),): local rows this rank serves, in received order


class DistributedEmbedding(nn.Module):
    """An embedding table whose rows are spread over the ranks of a process group.

    Args:
        num_embeddings: rows of the whole table (``V``).
        embedding_dim: size of each row (``D``).
        partition_strategy: ``"mod"`` (id ``i`` on rank ``i % N``) or ``"div"`` (contiguous
            ranges, the first ``V % N`` ranks one row larger).
        padding_idx: this id's row gets no gradient and starts at zero.
        sparse: sparse gradients for the local shard.
        init: ``"normal"``, ``"word2vec_input"`` or ``"zeros"``; drawn in global id order
            from a generator seeded alike on every rank, so the table is the same as a
            single process's for any world size.
        device, dtype: of the local shard (each rank its own device, e.g. ``cuda:LOCAL_RANK``).
        group: the process group (default: the world).

    Attributes:
        shards: a ``ParameterList`` holding this rank's shard alone.
        rank, world_size: this process's place in ``group``.
        sent_bytes: bytes this rank has sent to other ranks (ids, rows and gradients).

    Shape:
        input ``(*)`` ids; output ``(*, embedding_dim)``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        partition_strategy: str = "mod",
        *,
        padding_idx: Optional[int] = None,
        sparse: bool = False,
        init: str = "normal",
        device=None,
        dtype=None,
        group=None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        self.group = group
        self.rank, self.world_size = group_rank_and_size(group)
        self._layout = Layout(num_embeddings, self.world_size, partition_strategy)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx={padding_idx} must be within [-{num_embeddings}, {num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.num_shards, self.partition_strategy = self.world_size, partition_strategy
        self.padding_idx, self.sparse = padding_idx, sparse
        local = torch.empty(self._layout.sizes[self.rank], embedding_dim, device=device, dtype=dtype)
        self.shards = nn.ParameterList([nn.Parameter(local)])
        code = [num_embeddings, embedding_dim, self.world_size, STRATEGIES.index(partition_strategy), self.rank]
        self.register_buffer("sharding", torch.tensor(code, device=local.device))
        self._route: Optional[Route] = None
        self.sent_bytes = 0
        self.reset_parameters(init, generator)

    # -- the table as a whole ---------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, init: str = "normal", generator: Optional[torch.Generator] = None) -> None:
        """Re-draw the table; every rank draws the same global blocks and keeps its rows."""
        shard = self.shards[0]
        if init == "zeros":
            shard.zero_()
        elif init in ("normal", "word2vec_input"):
            block = max(1, (1 << 22) // max(self.embedding_dim, 1))
            for start in range(0, self.num_embeddings, block):
                stop = min(start + block, self.num_embeddings)
                where = shard.device if generator is None else generator.device
                rows = torch.empty(stop - start, self.embedding_dim, dtype=shard.dtype, device=where)
                if init == "normal":
                    rows.normal_(generator=generator)
                else:
                    bound = 0.5 / self.embedding_dim
                    rows.uniform_(-bound, bound, generator=generator)
                self._keep_rows(torch.arange(start, stop), rows)
        else:
            raise ValueError(f"unknown init {init!r}; use normal, word2vec_input or zeros")
        if self.padding_idx is not None:
            self._keep_rows(torch.tensor([self.padding_idx]), torch.zeros(1, self.embedding_dim))

    @torch.no_grad()
    def copy_table_(self, table: torch.Tensor) -> None:
        """Set the whole table from ``table`` ``(V, D)`` in global id order; each rank keeps its rows.

        Every rank passes the same table (no communication).
        """
        if tuple(table.shape) != (self.num_embeddings, self.embedding_dim):
            raise ValueError(f"the table is {tuple(table.shape)}, this layer's is {(self.num_embeddings, self.embedding_dim)}")
        self.shards[0].copy_(split_table(table, self.world_size, self.partition_strategy)[self.rank])

    def _keep_rows(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """``table[ids] = rows`` for the ids this rank owns."""
        shard, local = self._layout.route(ids)
        mine = shard == self.rank
        self.shards[0].index_copy_(0, local[mine].to(self.shards[0].device), rows[mine].to(self.shards[0]))

    @torch.no_grad()
    def full_table(self, dst: Optional[int] = 0) -> Optional[torch.Tensor]:
        """The whole table in global id order, gathered on rank ``dst`` (``None``: on every rank).

        A collective. Other ranks get ``None`` when ``dst`` is a rank.
        """
        shard = self.shards[0].detach()
        if self.world_size == 1:
            return shard.clone()
        biggest = self._layout.sizes[0]  # shard 0 is never smaller than another
        padded = shard.new_zeros(biggest, self.embedding_dim)
        padded[: shard.shape[0]] = shard
        if dst is None:
            parts = [torch.empty_like(padded) for _ in range(self.world_size)]
            dist.all_gather(parts, padded, group=self.group)
        else:
            parts = [torch.empty_like(padded) for _ in range(self.world_size)] if self.rank == dst else None
            dist.gather(padded, parts, dst=dist.get_global_rank(self.group, dst) if self.group else dst, group=self.group)
            if self.rank != dst:
                return None
        return join_shards([p[:n] for p, n in zip(parts, self._layout.sizes)], self.partition_strategy)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table on every rank (a collective; see :meth:`full_table`)."""
        return self.full_table(dst=None)

    def flat_table(self) -> Optional[torch.Tensor]:
        """The local shard when it is the whole table (one process), for kernels; else ``None``."""
        return self.shards[0].detach() if self.world_size == 1 else None

    def flat_index(self, ids: torch.Tensor) -> torch.Tensor:
        """The row of each id in :meth:`flat_table` (the ids themselves)."""
        return ids

    # -- the exchange (one table; see route_all, gather_all, index_add_all for several) -------------
    def route(self, ids: torch.Tensor) -> Route:
        """Send this batch's unique ids to their owners (a collective); reused for the same ``ids``."""
        return route_all([(self, ids)])[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids`` (any shape), differentiable with respect to the local shard."""
        ids = as_ids(ids, device=self.shards[0].device)
        flat = ids.reshape(-1)
        if self.world_size == 1:
            check_ids(flat, self.num_embeddings)
            out = nn.functional.embedding(flat, self.shards[0], self.padding_idx, sparse=self.sparse)
        else:
            out = _Lookup.apply(self, self.route(flat), self.shards[0])
        return out.view((*ids.shape, self.embedding_dim))

    @torch.no_grad()
    def gather(self, ids: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows of 1-D ``ids`` without autograd, optionally into ``out`` (a collective)."""
        return gather_all([(self, ids, out)])[0]

    @torch.no_grad()
    def index_add_(self, ids: torch.Tensor, values: torch.Tensor, alpha: float = 1) -> None:
        """Add ``alpha * values[i]`` to row ``ids[i]`` on its owner; duplicates add up (a collective).

        Right after :meth:`gather` of the same ``ids`` tensor, its route is reused.
        """
        index_add_all([(self, ids, values)], alpha)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}, partition_strategy={self.partition_strategy!r}"
        s += f", rank={self.rank}, world_size={self.world_size}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s + (", sparse=True" if self.sparse else "")

    # -- state ----------------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        """Load this rank's own state, or any whole table: another world size's shards go through
        :func:`merge_shards`, a :class:`~w2v.embedding.ShardedEmbedding`'s or ``nn.Embedding``'s state here."""
        saved = state_dict.get(prefix + "sharding")
        head = prefix + "shards."
        keys = sorted((k for k in state_dict if k.startswith(head) and k[len(head) :].isdigit()), key=lambda k: int(k[len(head) :]))
        same = saved is not None and saved.numel() == 5 and saved.tolist() == self.sharding.tolist()
        if not same and (keys or prefix + "weight" in state_dict):
            if saved is not None and saved.numel() == 5:
                error_msgs.append(
                    f"{prefix}: the state is rank {int(saved[4])} of {int(saved[2])}, this layer rank {self.rank} of "
                    f"{self.world_size}; merge the ranks' states with merge_shards first"
                )
                return
            if keys:
                strategy = STRATEGIES[int(saved[3])] if saved is not None else self.partition_strategy
                table = join_shards([state_dict.pop(k) for k in keys], strategy)
            else:
                table = state_dict.pop(prefix + "weight")
            if tuple(table.shape) != (self.num_embeddings, self.embedding_dim):
                error_msgs.append(f"size mismatch for {prefix}: the table is {tuple(table.shape)}, this layer's "
                                  f"{(self.num_embeddings, self.embedding_dim)}")
                return
            state_dict[head + "0"] = split_table(table, self.world_size, self.partition_strategy)[self.rank]
            state_dict[prefix + "sharding"] = self.sharding
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        self._route = None


def _cached(layer: DistributedEmbedding, ids: torch.Tensor) -> Optional[Route]:
    last = layer._route
    return last if last is not None and last.ids is ids and last.version == ids._version else None


def _exchange(layers, tensors: List[torch.Tensor], send: List[List[int]], recv: List[List[int]]) -> List[torch.Tensor]:
    """One ``all_to_all`` for several tables: ``tensors[t]`` is grouped by destination rank
    (``send[t][k]`` rows for rank ``k``); returns each table's rows received, grouped by
    source rank (``recv[t][k]`` from rank ``k``). Counts bytes sent to other ranks."""
    first, world = layers[0], layers[0].world_size
    pieces = [x.split(n) for x, n in zip(tensors, send)]
    packed = torch.cat([pieces[t][k] for k in range(world) for t in range(len(tensors))]) if len(tensors) > 1 else tensors[0]
    in_splits = [sum(n[k] for n in send) for k in range(world)]
    out_splits = [sum(n[k] for n in recv) for k in range(world)]
    got = packed.new_empty((sum(out_splits), *packed.shape[1:]))
    dist.all_to_all_single(got, packed.contiguous(), out_splits, in_splits, group=first.group)
    row_bytes = math.prod(packed.shape[1:]) * packed.element_size()
    first.sent_bytes += (sum(in_splits) - in_splits[first.rank]) * row_bytes
    if len(tensors) == 1:
        return [got]
    blocks = got.split([recv[t][k] for k in range(world) for t in range(len(tensors))])
    return [torch.cat([blocks[k * len(tensors) + t] for k in range(world)]) for t in range(len(tensors))]


def route_all(requests: Sequence[Tuple[DistributedEmbedding, torch.Tensor]]) -> List[Route]:
    """Route several tables' ids to their owners in two collectives (counts, then ids).

    ``requests``: ``(layer, ids)`` pairs, layers of one process group. A layer whose last
    route was for this very ``ids`` tensor (unchanged since) reuses it; all ranks must make
    the same calls with the same pattern of reuse (as a training step does).
    """
    routes: List[Optional[Route]] = [_cached(layer, ids) for layer, ids in requests]
    todo = [i for i, r in enumerate(routes) if r is None]
    if not todo:
        return routes
    layers = [requests[i][0] for i in todo]
    world = layers[0].world_size
    parts = []
    for i in todo:
        layer, ids = requests[i]
        check_ids(ids, layer.num_embeddings)
        unique, inverse = torch.unique(ids, return_inverse=True)
        order, send, rows = layer._layout.group(unique)
        if order is None:
            pos = inverse
        else:  # the unique ids travel grouped by owner: where does each one end up?
            slot = torch.empty_like(order)
            slot[order] = torch.arange(order.numel(), device=order.device)
            pos = slot[inverse]
        parts.append((ids, pos, unique.numel(), send, rows))
    counts = torch.tensor([[p[3][k] for p in parts] for k in range(world)], dtype=torch.int64, device=parts[0][4].device)
    got = torch.empty_like(counts)
    dist.all_to_all_single(got, counts.view(-1), group=layers[0].group)  # (W, T): what each rank sends us
    recv = [[int(c) for c in col] for col in got.t().tolist()]
    served = _exchange(layers, [p[4] for p in parts], [p[3] for p in parts], recv)
    for j, i in enumerate(todo):
        ids, pos, num_unique, send, _ = parts[j]
        routes[i] = layers[j]._route = Route(ids, ids._version, pos, num_unique, send, recv[j], served[j])
    return routes


def _fetch_all(layers, routes: List[Route]) -> List[torch.Tensor]:
    """Each table's unique ids' rows, ``(num_unique, D)``, in routed order (one collective)."""
    served = [layer.shards[0].detach().index_select(0, r.rows) for layer, r in zip(layers, routes)]
    return _exchange(layers, served, [r.recv for r in routes], [r.send for r in routes])


def _push_all(layers, routes: List[Route], values: List[torch.Tensor]) -> List[torch.Tensor]:
    """Sum each table's ``values`` per unique id and send the sums to the owners (one collective);
    returns the gradients of each table's local rows (``routes[t].rows``)."""
    summed = [v.new_zeros(r.num_unique, v.shape[1]).index_add_(0, r.pos, v) for r, v in zip(routes, values)]
    return _exchange(layers, summed, [r.send for r in routes], [r.recv for r in routes])


@torch.no_grad()
def gather_all(requests: Sequence[Tuple[nn.Module, torch.Tensor, Optional[torch.Tensor]]]) -> List[torch.Tensor]:
    """Rows of several tables at once: ``(layer, ids, out)`` each, ``out`` optional.

    Distributed layers of one group share their collectives (3 for any number of tables,
    the route then the rows); any other layer (a :class:`~w2v.embedding.ShardedEmbedding`,
    a world of one) gathers on its own.
    """
    results: List[Optional[torch.Tensor]] = [None] * len(requests)
    remote = [i for i, (layer, _, _) in enumerate(requests) if getattr(layer, "world_size", 1) > 1]
    for i, (layer, ids, out) in enumerate(requests):
        if i in remote:
            continue
        if isinstance(layer, DistributedEmbedding):  # a world of one: the local table
            results[i] = torch.index_select(layer.shards[0], 0, ids, out=out)
        else:
            results[i] = layer.gather(ids, out=out)
    if remote:
        layers = [requests[i][0] for i in remote]
        routes = route_all([(requests[i][0], requests[i][1]) for i in remote])
        for i, route, rows in zip(remote, routes, _fetch_all(layers, routes)):
            results[i] = torch.index_select(rows, 0, route.pos, out=requests[i][2])
    return results


@torch.no_grad()
def index_add_all(requests: Sequence[Tuple[nn.Module, torch.Tensor, torch.Tensor]], alpha: float = 1) -> None:
    """``layer.index_add_(ids, values, alpha)`` for several tables at once (see :func:`gather_all`).

    Distributed layers reuse the routes of a :func:`gather_all` of the same ids tensors, so
    the update costs one collective for all of them.
    """
    remote = [i for i, (layer, _, _) in enumerate(requests) if getattr(layer, "world_size", 1) > 1]
    for i, (layer, ids, values) in enumerate(requests):
        if i in remote:
            continue
        if isinstance(layer, DistributedEmbedding):  # a world of one: the local table
            layer.shards[0].index_add_(0, ids, values, alpha=alpha)
        else:
            layer.index_add_(ids, values, alpha=alpha)
    if remote:
        layers = [requests[i][0] for i in remote]
        routes = route_all([(requests[i][0], requests[i][1]) for i in remote])
        grads = _push_all(layers, routes, [requests[i][2] for i in remote])
        for layer, route, grad in zip(layers, routes, grads):
            layer.shards[0].index_add_(0, route.rows, grad, alpha=alpha)


def merge_shards(states: List[dict], prefix: str = "") -> dict:
    """The state of a :class:`~w2v.embedding.ShardedEmbedding` from every rank's state.

    ``states``: the ``state_dict()`` of each rank's :class:`DistributedEmbedding` (any order).
    The result loads into a layer of any shard count and strategy, or into a
    :class:`DistributedEmbedding` of any world size: resharding across world sizes.
    """
    by_rank = {}
    for state in states:
        code = state[prefix + "sharding"].tolist()
        by_rank[code[4]] = (code, state[prefix + "shards.0"])
    code = by_rank[min(by_rank)][0]
    if sorted(by_rank) != list(range(code[2])) or any(c[:4] != code[:4] for c, _ in by_rank.values()):
        raise ValueError(f"merge_shards needs the states of ranks 0..{code[2] - 1} of one table, got ranks {sorted(by_rank)}")
    merged = {prefix + f"shards.{r}": by_rank[r][1] for r in range(code[2])}
    merged[prefix + "sharding"] = torch.tensor(code[:4])
    return merged


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer: DistributedEmbedding, route: Route, shard: torch.Tensor) -> torch.Tensor:
        ctx.layer, ctx.route = layer, route
        ctx.shape, ctx.dtype, ctx.device = shard.shape, shard.dtype, shard.device
        return _fetch_all([layer], [route])[0].index_select(0, route.pos)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layer, route = ctx.layer, ctx.route
        grad = grad.contiguous()
        if layer.padding_idx is not None:
            grad = grad.masked_fill((route.ids == layer.padding_idx).unsqueeze(1), 0)
        values = _push_all([layer], [route], [grad])[0]  # (sum(recv), D): gradients of this rank's rows
        if layer.sparse:
            g = torch.sparse_coo_tensor(route.rows.unsqueeze(0), values, ctx.shape).coalesce()
        else:
            g = torch.zeros(ctx.shape, dtype=ctx.dtype, device=ctx.device).index_add_(0, route.rows, values)
        return None, None, g
