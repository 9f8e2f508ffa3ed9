"""``ShardedEmbedding``: an ``nn.Embedding`` whose table is split into row shards."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from w2v.embedding.functional import (
    MAX_NORM_MODES,
    GradBuffer,
    Plan,
    ShardedLookup,
    check_max_norm,
    clip_rows,
    flat_view,
    gather,
    renorm_,
)
from w2v.embedding.partition import STRATEGIES, Layout, as_ids, check_ids, join_shards, split_table

INITS = ("normal", "word2vec_input", "zeros")
_INIT_BLOCK = 1 << 22  # values drawn per block by reset_parameters


class ShardedEmbedding(nn.Module):
    """A lookup table split into ``num_shards`` row shards; otherwise ``nn.Embedding``.

    Ids are partitioned as in TensorFlow (see :func:`~w2v.embedding.shard_sizes`). Each
    shard is a parameter of its own (``shards[s]``, ``(n_s, embedding_dim)``) and gets the
    gradient ``nn.Embedding`` would give it: sparse with ``sparse=True``, so
    ``torch.optim.SGD``, ``SparseAdam`` and ``Adagrad`` step shard by shard. Any number of
    shards computes the same values and gradients as one.

    On one device the shards are consecutive slices of a single buffer (re-packed after
    ``.to()``), so a lookup is one gather, as fast as ``nn.Embedding``'s. Shards on
    several devices (``devices=``) are looked up one gather per shard. Sparse gradients
    of several shards are one copy of the incoming gradient grouped by shard, each shard's
    ``.grad`` holding a slice; on CPU the layer reuses that ``(ids, embedding_dim)``
    buffer once the gradients are dropped (``zero_grad()``), so it keeps the largest
    batch's between steps, and allocates a new one while any of them is still referenced.

    ``max_norm`` comes in two flavours. ``"renorm"`` (the default, as ``nn.Embedding``)
    rescales the looked-up rows of the table in place before the lookup, outside
    autograd. ``"clip"`` (TensorFlow's ``embedding_lookup``) leaves the table alone and
    returns ``x * max_norm / max(||x||, max_norm)``, with the gradient through the norm.

    A ``state_dict`` records the layout (``sharding``: rows, dim, shards, strategy) and
    loads into a layer of any shard count or strategy, or from an ``nn.Embedding``'s
    ``{"weight": table}``; the table is re-split exactly.

    Args:
        num_embeddings: rows of the table (``V``).
        embedding_dim: size of each row (``D``).
        num_shards: number of shards; more than ``V`` leaves empty shards.
        partition_strategy: ``"mod"`` (id ``i`` in shard ``i % N``) or ``"div"``
            (contiguous id ranges).
        padding_idx: this id's row gets no gradient and starts at zero.
        max_norm: limit on the norm of looked-up rows (see above).
        norm_type: the p of the p-norm for ``max_norm``.
        max_norm_mode: ``"renorm"`` or ``"clip"``.
        scale_grad_by_freq: scale gradients by the inverse frequency of each id in the
            batch (also with ``sparse=True``, which ``nn.Embedding`` refuses).
        sparse: sparse gradients for the shards.
        init: initialisation, see :meth:`reset_parameters`.
        device: device of all shards.
        dtype: dtype of the shards.
        devices: one device per shard, instead of ``device``.

    Shape:
        - input: integer ids ``(*)``, any device.
        - output: ``(*, embedding_dim)``, on the device of the input.

    Examples:
        >>> layer = ShardedEmbedding(10, 3, num_shards=4, partition_strategy="div")
        >>> [tuple(p.shape) for p in layer.shards]
        [(3, 3), (3, 3), (2, 3), (2, 3)]
        >>> layer(torch.tensor([[1, 2], [9, 0]])).shape
        torch.Size([2, 2, 3])
        >>> torch.equal(layer(torch.tensor([7])), layer.weight[7:8])
        True
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_shards: int = 1,
        partition_strategy: str = "mod",
        *,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        max_norm_mode: str = "renorm",
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        init: str = "normal",
        device=None,
        dtype=None,
        devices: Optional[Sequence] = None,
        _weight: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__()
        self._layout = Layout(num_embeddings, num_shards, partition_strategy)  # validates all three
        if int(embedding_dim) != embedding_dim or embedding_dim < 0:
            raise ValueError(f"embedding_dim must be a non-negative integer, got {embedding_dim!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx={padding_idx} must be within [-{num_embeddings}, {num_embeddings})")
            padding_idx %= num_embeddings
        check_max_norm(max_norm, max_norm_mode)
        if devices is not None and device is not None:
            raise ValueError("give either device (all shards) or devices (one per shard), not both")
        if devices is not None and len(devices) != num_shards:
            raise ValueError(f"devices has {len(devices)} entries for {num_shards} shards; give one per shard")
        if _weight is not None and tuple(_weight.shape) != (num_embeddings, embedding_dim):
            raise ValueError(f"_weight is {tuple(_weight.shape)}, expected {(num_embeddings, embedding_dim)}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.num_shards, self.partition_strategy = num_shards, partition_strategy
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.max_norm_mode, self.scale_grad_by_freq, self.sparse = max_norm_mode, scale_grad_by_freq, sparse
        sizes = self._layout.sizes
        if devices is None:  # one buffer, shard-major; shards are consecutive slices of it
            buffer = torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
            tensors = _slices(buffer, sizes)
        else:
            tensors = [torch.empty(n, embedding_dim, device=d, dtype=dtype) for n, d in zip(sizes, devices)]
        self.shards = nn.ParameterList([nn.Parameter(t) for t in tensors])
        code = torch.tensor([num_embeddings, embedding_dim, num_shards, STRATEGIES.index(partition_strategy)])
        self.register_buffer("sharding", code.to(tensors[0].device))
        self.register_load_state_dict_post_hook(_repack_after_load)
        self._flat_cache = None  # (data pointers of the shards, their one-buffer view)
        self._grad_buffer = GradBuffer()  # reused for sparse gradient values, step after step
        self._pack()  # devices= that are all the same one still get one buffer
        if _weight is None:
            self.reset_parameters(init)
        else:
            with torch.no_grad():
                for p, part in zip(self.shards, split_table(_weight, num_shards, partition_strategy)):
                    p.copy_(part)

    @classmethod
    def from_pretrained(
        cls, embeddings: torch.Tensor, freeze: bool = True, num_shards: int = 1, partition_strategy: str = "mod", **kwargs
    ) -> "ShardedEmbedding":
        """A layer holding a copy of ``embeddings``, split into shards (as ``nn.Embedding``'s).

        Args:
            embeddings: ``(V, D)`` table.
            freeze: no gradient for the shards.
            num_shards: number of shards.
            partition_strategy: ``"mod"`` or ``"div"``.
            **kwargs: any other constructor option (``padding_idx``, ``sparse``, ``devices``...).

        Examples:
            >>> table = torch.arange(12.0).view(6, 2)
            >>> layer = ShardedEmbedding.from_pretrained(table, num_shards=4)
            >>> layer(torch.tensor([5])).tolist(), layer.shards[1].tolist()
            ([[10.0, 11.0]], [[2.0, 3.0], [10.0, 11.0]])
        """
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be a 2-D table, got shape {tuple(embeddings.shape)}")
        if "devices" not in kwargs:
            kwargs.setdefault("device", embeddings.device)
        kwargs.setdefault("dtype", embeddings.dtype)
        layer = cls(*embeddings.shape, num_shards, partition_strategy, _weight=embeddings, **kwargs)
        layer.requires_grad_(not freeze)
        return layer

    def reset_parameters(self, init: str = "normal", generator: Optional[torch.Generator] = None) -> None:
        """Re-draw the table; the padding row, if any, becomes zero.

        The table is drawn in global id order, block by block, so a given RNG state gives
        the same table for any shard count and strategy (and for a
        :class:`~w2v.embedding.DistributedEmbedding` of any world size), in bounded memory.

        Args:
            init: ``"normal"``: N(0, 1), ``nn.Embedding``'s; ``"word2vec_input"``:
                U(-0.5/D, 0.5/D), word2vec.c's input vectors; ``"zeros"``: word2vec.c's
                output vectors.
            generator: the random generator (a CPU one: the blocks are drawn there);
                ``None``: torch's default, on the shards' device.
        """
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; use one of {INITS}")
        if self.shards[0].is_meta:  # deferred init: nothing to draw until to_empty()
            return
        with torch.no_grad():
            first = self.shards[0]
            flat = self._flat()
            direct = flat is not None and (self.num_shards == 1 or self.partition_strategy == "div")
            block = max(16, _INIT_BLOCK // max(self.embedding_dim, 1) // 16 * 16)
            for start in range(0, self.num_embeddings if init != "zeros" else 0, block):
                stop = min(start + block, self.num_embeddings)
                # Where the table's block is one slice of the buffer, draw into it directly.
                here = direct and generator is None  # a generator draws on its own device
                where = first.device if generator is None else generator.device
                rows = flat[start:stop] if here else torch.empty(stop - start, self.embedding_dim, dtype=first.dtype, device=where)
                if init == "normal":
                    rows.normal_(generator=generator)
                else:
                    rows.uniform_(-0.5 / self.embedding_dim, 0.5 / self.embedding_dim, generator=generator)
                if direct and not here:
                    flat[start:stop].copy_(rows)
                elif not direct:
                    self._copy_rows(torch.arange(start, stop, device=first.device), rows)
            if init == "zeros":
                for p in self.shards:
                    p.zero_()
            if self.padding_idx is not None:
                self._copy_rows(torch.tensor([self.padding_idx]), torch.zeros(1, self.embedding_dim))

    @torch.no_grad()
    def copy_table_(self, table: torch.Tensor) -> None:
        """Set the whole table from ``table`` ``(V, D)`` in global id order (``weight.copy_`` for shards)."""
        if tuple(table.shape) != (self.num_embeddings, self.embedding_dim):
            raise ValueError(f"the table is {tuple(table.shape)}, this layer's is {(self.num_embeddings, self.embedding_dim)}")
        for p, part in zip(self.shards, split_table(table, self.num_shards, self.partition_strategy)):
            p.copy_(part)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids`` (any shape), differentiable with respect to the shards."""
        ids = as_ids(ids, device=self.shards[0].device)
        flat_ids = ids.reshape(-1)
        check_ids(flat_ids, self.num_embeddings)
        if self.max_norm is not None and self.max_norm_mode == "renorm":
            renorm_(self._shard_list(), self._layout, flat_ids, self.max_norm, self.norm_type)
        out = ShardedLookup.apply(self._plan(flat_ids.device), flat_ids, *self._shard_list())  # (n, D)
        if self.max_norm is not None and self.max_norm_mode == "clip":
            out = clip_rows(out, self.max_norm, self.norm_type)
        return out.view((*ids.shape, self.embedding_dim))

    @torch.no_grad()
    def gather(self, ids: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows of 1-D ``ids`` without autograd, optionally into ``out`` (the update path).

        With one shard exactly ``torch.index_select(shards[0], 0, ids, out=out)``; with
        several, ids are range-checked and, on one device, gathered in one pass too.

        Shape:
            ids ``(n,)``; ``out`` and the result ``(n, embedding_dim)``.
        """
        if self.num_shards == 1:
            return torch.index_select(self.shards[0], 0, ids, out=out)
        check_ids(ids, self.num_embeddings)
        return gather(self._plan(ids.device if out is None else out.device), ids, self._shard_list(), out)

    @torch.no_grad()
    def index_add_(self, ids: torch.Tensor, values: torch.Tensor, alpha: float = 1) -> None:
        """Add ``alpha * values[i]`` to row ``ids[i]`` in place; duplicate ids add up.

        With one shard exactly ``shards[0].index_add_(0, ids, values, alpha=alpha)``.

        Shape:
            ids ``(n,)``, values ``(n, embedding_dim)``.
        """
        if self.num_shards == 1:
            self.shards[0].index_add_(0, ids, values, alpha=alpha)
            return
        check_ids(ids, self.num_embeddings)
        flat = self._flat()
        if flat is not None:
            flat.index_add_(0, self._layout.flat_index(ids.to(flat.device)), values.to(flat.device), alpha=alpha)
            return
        for p, (pos, rows) in zip(self.shards, self._layout.per_shard(ids)):
            if rows.numel():
                part = values.index_select(0, pos.to(values.device)).to(p.device)
                p.index_add_(0, rows.to(p.device), part, alpha=alpha)

    def flat_table(self) -> Optional[torch.Tensor]:
        """The shards as one ``(num_embeddings, embedding_dim)`` view of their shared buffer.

        Rows are in shard-major order (:meth:`flat_index` maps ids to them); writing to the
        view writes the shards. ``None`` when the shards do not share one buffer (e.g. they
        sit on different devices). For kernels that address rows directly.
        """
        return self._flat()

    def flat_index(self, ids: torch.Tensor) -> torch.Tensor:
        """The row of each id in :meth:`flat_table` (the ids themselves for one shard or ``div``)."""
        return self._layout.flat_index(ids)

    @property
    def weight(self) -> torch.Tensor:
        """The full table in global id order: the parameter itself for one shard, else a copy."""
        if self.num_shards == 1:
            return self.shards[0]
        return join_shards([p.detach() for p in self.shards], self.partition_strategy)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}, num_shards={self.num_shards}"
        s += f", partition_strategy={self.partition_strategy!r}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}, max_norm_mode={self.max_norm_mode!r}"
            if self.norm_type != 2:
                s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        if self.sparse:
            s += ", sparse=True"
        if len({p.device for p in self.shards}) > 1:
            s += f", devices={[str(p.device) for p in self.shards]}"
        return s

    # -- internals ------------------------------------------------------------------------

    def _plan(self, device: torch.device) -> Plan:
        pad = -1 if self.padding_idx is None else self.padding_idx
        return Plan(self._layout, self._flat(), device, pad, self.scale_grad_by_freq, self.sparse, self._grad_buffer)

    def _shard_list(self) -> list:
        return list(self.shards._parameters.values())  # iterating a ParameterList costs ~10 us

    def _flat(self) -> Optional[torch.Tensor]:
        """:func:`flat_view` of the shards, cached while they stay where they are."""
        shards = self._shard_list()
        key = tuple(p.data_ptr() for p in shards)
        cached = self._flat_cache
        # The cached view keeps its buffer alive, so no other tensor can sit at these addresses:
        # equal pointers mean the shards are still that buffer's slices.
        if cached is None or cached[0] != key:
            cached = self._flat_cache = (key, flat_view(shards))
        return cached[1]

    def _copy_rows(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """``table[ids] = rows`` across shards (no autograd)."""
        for p, (pos, local) in zip(self.shards, self._layout.per_shard(ids.to(self.shards[0].device))):
            if local.numel():
                part = rows if pos is None else rows.index_select(0, pos.to(rows.device))
                p.index_copy_(0, local.to(p.device), part.to(p.device, p.dtype))

    def _pack(self) -> None:
        """Put shards that share a device and dtype back into one buffer (after ``.to()``)."""
        self._flat_cache = None
        shards = self._shard_list()
        if len(shards) == 1 or flat_view(shards) is not None:
            return
        if len({p.device for p in shards}) > 1 or len({p.dtype for p in shards}) > 1:
            return
        buffer = torch.empty(self.num_embeddings, self.embedding_dim, device=shards[0].device, dtype=shards[0].dtype)
        with torch.no_grad():
            for p, part in zip(shards, _slices(buffer, self._layout.sizes)):
                part.copy_(p)
                p.data = part

    def _apply(self, fn, recurse=True):
        self._flat_cache = None
        self._grad_buffer.clear()
        super()._apply(fn, recurse)
        self._pack()
        return self

    def __getstate__(self):
        return {**super().__getstate__(), "_flat_cache": None, "_grad_buffer": None}

    def __setstate__(self, state):  # deepcopy and pickle copy each shard apart
        super().__setstate__(state)
        self._grad_buffer = GradBuffer()
        self._pack()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        self._reshard_state(state_dict, prefix, error_msgs)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _reshard_state(self, state_dict, prefix: str, error_msgs) -> None:
        """Rewrite ``state_dict``'s shards, in place, into this layer's layout."""
        head = prefix + "shards."
        keys = {int(k[len(head) :]): k for k in state_dict if k.startswith(head) and k[len(head) :].isdigit()}
        saved = state_dict.get(prefix + "sharding")
        state_dict[prefix + "sharding"] = self.sharding  # after this method, the layout is ours
        if not keys:
            if prefix + "weight" not in state_dict:
                return  # nothing to reshard; load_state_dict reports the missing shards
            keys, strategy = {0: prefix + "weight"}, self.partition_strategy  # an nn.Embedding's
        elif saved is not None:
            num_shards, code = saved.tolist()[2:]
            strategy = STRATEGIES[code] if 0 <= code < len(STRATEGIES) else None
            if strategy is None or sorted(keys) != list(range(num_shards)):
                error_msgs.append(f"{prefix}sharding says {num_shards} shards (strategy {code}) but found {sorted(keys)}")
                return
        else:  # no record of the layout (an older state_dict): assume this layer's strategy
            strategy = self.partition_strategy
        renamed = keys[0] == prefix + "weight"
        if not renamed and len(keys) == self.num_shards and (strategy == self.partition_strategy or len(keys) == 1):
            return
        if sorted(keys) != list(range(len(keys))):
            error_msgs.append(f"shards of {prefix!r} are numbered {sorted(keys)}; expected 0 to {len(keys) - 1}")
            return
        shards = [state_dict.pop(keys[s]) for s in range(len(keys))]
        try:
            table = join_shards(shards, strategy)
        except ValueError as e:
            error_msgs.append(f"cannot join the saved shards of {prefix!r}: {e}")
            return
        if tuple(table.shape) != (self.num_embeddings, self.embedding_dim):
            error_msgs.append(
                f"size mismatch for {prefix}shards: the saved table is {tuple(table.shape)}, "
                f"this layer's is {(self.num_embeddings, self.embedding_dim)}"
            )
            return
        for s, part in enumerate(split_table(table, self.num_shards, self.partition_strategy)):
            state_dict[head + str(s)] = part


def _slices(buffer: torch.Tensor, sizes) -> list:
    """Consecutive row blocks of ``buffer`` as tensors of their own (no shared autograd history)."""
    out, offset = [], buffer.storage_offset()
    for n in sizes:
        t = torch.empty(0, dtype=buffer.dtype, device=buffer.device)
        out.append(t.set_(buffer.untyped_storage(), offset, (n, buffer.shape[1]), (buffer.shape[1], 1)))
        offset += n * buffer.shape[1]
    return out


def _repack_after_load(module: ShardedEmbedding, incompatible_keys) -> None:
    module._pack()  # load_state_dict(assign=True) swaps in the loaded tensors
