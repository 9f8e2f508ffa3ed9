"""The sharded lookup as a function: TensorFlow's ``embedding_lookup`` on torch tensors.

One autograd function serves both :func:`embedding_lookup` and
:class:`~w2v.embedding.ShardedEmbedding`. Its backward gives each shard the gradient
``nn.Embedding`` would give it (same padding and frequency-scaling rules, sparse or
dense), so optimizers treat shards like any embedding weight.
"""

from __future__ import annotations

import math
import threading
from typing import List, NamedTuple, Optional, Sequence, Union

import torch
from torch.autograd.function import once_differentiable

from w2v.embedding.partition import Layout, as_ids, check_ids, check_shards, check_strategy, rows_view

MAX_NORM_MODES = ("renorm", "clip")


# Reference count of a tensor storage; private to torch (its CUDA-graph code uses it), so
# without it every sparse backward allocates its buffer afresh.
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


class GradBuffer:
    """A buffer reused, step after step, for the values of the shards' sparse gradients.

    A sparse backward copies the gradient rows grouped by shard (``ids x D`` values) and
    hands each shard a slice. On CPU, allocating that much memory afresh costs more than
    the copy (page faults: ~250 ms for 512 MB against ~50 ms for the copy), so the buffer
    is kept and written again, but only once nothing else references it: while a shard's
    ``.grad`` (or any view of its values) lives, a new buffer is allocated instead. After
    ``zero_grad()`` the same memory serves the next step. It holds up to the largest
    batch's gradient between steps. (CUDA's caching allocator already makes allocation
    cheap, and knows about streams, which this does not: it is used on CPU only.)
    """

    def __init__(self) -> None:
        self._buffer: Optional[torch.Tensor] = None
        self._unused = 0  # the storage's reference count when only self._buffer holds it
        self._lock = threading.Lock()  # concurrent backward passes must not share it

    def take(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A ``(rows, cols)`` tensor of unspecified values that nobody else holds."""
        with self._lock:
            b = self._buffer
            if b is None or b.numel() < rows * cols or b.dtype != dtype or b.device != device or self._held(b):
                b = torch.empty(rows * cols, dtype=dtype, device=device)
                if _storage_use_count is not None:
                    self._buffer, self._unused = b, _storage_use_count(b.untyped_storage()._cdata)
            return b[: rows * cols].view(rows, cols)  # this view holds the storage: no one else takes it

    def _held(self, b: torch.Tensor) -> bool:
        return _storage_use_count(b.untyped_storage()._cdata) > self._unused

    def clear(self) -> None:
        with self._lock:
            self._buffer = None


class Plan(NamedTuple):
    """What a lookup needs besides the ids and the shards (all ``(n_s, D)``)."""

    layout: Layout
    flat: Optional[torch.Tensor]  # the shards as one shard-major (V, D) buffer, when they are one
    device: torch.device  # where the rows come back
    padding_idx: int = -1  # global id whose row gets no gradient; -1: none
    scale_grad_by_freq: bool = False
    sparse: bool = False
    grad_buffer: Optional[GradBuffer] = None  # where sparse gradient values go; None: a new tensor


def flat_view(shards: Sequence[torch.Tensor]) -> Optional[torch.Tensor]:
    """The shards as one ``(V, D)`` tensor when they are consecutive slices of one buffer.

    :class:`~w2v.embedding.ShardedEmbedding` allocates its shards that way on one device,
    so a lookup is one gather at :meth:`Layout.flat_index` instead of a gather per shard.
    Returns ``None`` when the shards live apart (several devices, or re-assigned).
    """
    if len(shards) == 1:
        return shards[0]
    first = shards[0]
    ptr, offset = first.untyped_storage().data_ptr(), first.storage_offset()
    for p in shards:
        if (
            p.device != first.device
            or p.dtype != first.dtype
            or not p.is_contiguous()
            or p.storage_offset() != offset
            or p.untyped_storage().data_ptr() != ptr
        ):
            return None
        offset += p.numel()
    rows = sum(p.shape[0] for p in shards)
    flat = torch.empty(0, dtype=first.dtype, device=first.device)
    # set_ (not a view of a shard) so that the buffer shares no autograd history or
    # version counter with the parameters.
    return flat.set_(first.untyped_storage(), first.storage_offset(), (rows, *first.shape[1:]), first.stride())


def gather(plan: Plan, ids: torch.Tensor, shards: Sequence[torch.Tensor], out=None) -> torch.Tensor:
    """Rows of 1-D ``ids`` (already range-checked) in id order, without autograd."""
    if plan.flat is not None:
        index = plan.layout.flat_index(ids.to(plan.flat.device))
        if out is not None and out.device == plan.flat.device:
            return torch.index_select(plan.flat, 0, index, out=out)
        rows = torch.index_select(plan.flat, 0, index).to(plan.device)
        return rows if out is None else out.copy_(rows)
    if out is None:
        out = torch.empty(ids.numel(), shards[0].shape[1], dtype=shards[0].dtype, device=plan.device)
    for p, (pos, rows) in zip(shards, plan.layout.per_shard(ids)):
        if rows.numel():
            looked_up = p.index_select(0, rows.to(p.device)).to(out.device)
            out.index_copy_(0, pos.to(out.device), looked_up)
    return out


def _sparse_grad(values: torch.Tensor, rows: torch.Tensor, num_rows: int, padding: int, scale: bool):
    """``nn.Embedding``'s sparse gradient, plus ``scale_grad_by_freq`` (which torch lacks)."""
    rows = rows.long()
    if padding >= 0:
        keep = rows != padding
        rows, values = rows[keep], values[keep]
    if scale:
        _, inverse, counts = torch.unique(rows, return_inverse=True, return_counts=True)
        values = values / counts.index_select(0, inverse).unsqueeze(1).to(values.dtype)
    size = (num_rows, values.shape[1])
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, size, check_invariants=False)


def _shard_grads(plan: Plan, saved, grad: torch.Tensor, needed, devices) -> List:
    """Each shard's gradient; ``saved`` is what :meth:`ShardedLookup.forward` kept."""
    layout, pad, scale = plan.layout, plan.padding_idx, plan.scale_grad_by_freq
    if not plan.sparse and plan.flat is not None:
        # Dense: one (V, D) gradient of the flat buffer; each shard's is a slice of it.
        (index,) = saved
        flat_pad = int(layout.flat_index(torch.tensor([pad]))[0]) if pad >= 0 else -1
        full = torch.ops.aten.embedding_backward(
            grad.to(plan.flat.device), index, layout.num_embeddings, flat_pad, scale, False
        )
        return [full[o : o + n] if need else None for o, n, need in zip(layout.offsets, layout.sizes, needed)]
    if pad >= 0:
        pad_shard, pad_row = (int(t) for t in layout.route(torch.tensor(pad)))
    grads = []
    # Each shard's gradient values are its ids' rows of `grad`: one gather groups them all.
    # The forward kept the ids, or, for sparse gradients of one buffer, their (shard, row).
    order, counts, grouped_rows = layout.group(saved[0]) if len(saved) == 1 else layout.group(None, tuple(saved))
    if order is None:
        values = [grad]
    else:
        out = None
        if plan.sparse and plan.grad_buffer is not None and grad.device.type == "cpu":
            out = plan.grad_buffer.take(grad.shape[0], grad.shape[1], grad.dtype, grad.device)
        values = torch.index_select(grad, 0, order.to(grad.device), out=out).split(counts)
    for s, (rows, g, need, dev) in enumerate(zip(grouped_rows.split(counts), values, needed, devices)):
        if not need:
            grads.append(None)
            continue
        local_pad = pad_row if pad >= 0 and s == pad_shard else -1
        g, rows = g.to(dev), rows.to(dev)
        n = layout.sizes[s]
        if plan.sparse:
            grads.append(_sparse_grad(g, rows, n, local_pad, scale))
        else:
            grads.append(torch.ops.aten.embedding_backward(g, rows, n, local_pad, scale, False))
    return grads


class ShardedLookup(torch.autograd.Function):
    """``rows = table[ids]`` over shards; call as ``ShardedLookup.apply(plan, ids, *shards)``."""

    @staticmethod
    def forward(ctx, plan: Plan, ids: torch.Tensor, *shards: torch.Tensor) -> torch.Tensor:
        ctx.plan, ctx.devices = plan, [p.device for p in shards]
        if plan.flat is None:
            ctx.save_for_backward(ids)
            return gather(plan, ids, shards)
        # One gather from the flat buffer. The backward needs the routing again: keep it
        # (``(shard, row)`` for sparse gradients, the flat index for a dense one).
        layout, ids = plan.layout, ids.to(plan.flat.device)
        if plan.sparse and layout.num_shards > 1:
            routed = layout.route(ids)
            index = layout.flat_index(ids, routed)
            ctx.save_for_backward(*routed)
        else:
            index = layout.flat_index(ids)
            ctx.save_for_backward(index)
        return torch.index_select(plan.flat, 0, index).to(plan.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        return (None, None, *_shard_grads(ctx.plan, ctx.saved_tensors, grad, ctx.needs_input_grad[2:], ctx.devices))


def clip_rows(rows: torch.Tensor, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    """TensorFlow's clip of looked-up rows: ``x * c / max(||x||, c)`` (differentiable).

    Args:
        rows: ``(n, k)``, one looked-up row (all its embedding axes) per line.
        max_norm: ``c``.
        norm_type: the p of the p-norm.
    """
    if not rows.dtype.is_floating_point:
        raise TypeError(f"max_norm needs floating-point params, got {rows.dtype}")
    norms = torch.linalg.vector_norm(rows, ord=norm_type, dim=1, keepdim=True)
    return rows * (max_norm / norms.clamp(min=max_norm))


def check_max_norm(max_norm: Optional[float], max_norm_mode: str) -> None:
    if max_norm_mode not in MAX_NORM_MODES:
        raise ValueError(f"unknown max_norm_mode {max_norm_mode!r}; use one of {MAX_NORM_MODES}")
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be > 0 (or None for no limit), got {max_norm}")


def renorm_(shards: Sequence[torch.Tensor], layout: Layout, ids: torch.Tensor, max_norm: float, norm_type: float):
    """PyTorch's max_norm: rescale, in place, the rows of ``ids`` whose norm exceeds it."""
    with torch.no_grad():
        flat = flat_view(shards)
        if flat is not None:
            torch.embedding_renorm_(flat.detach(), layout.flat_index(ids.to(flat.device)), max_norm, norm_type)
            return
        for p, (_, rows) in zip(shards, layout.per_shard(ids)):
            if rows.numel():
                torch.embedding_renorm_(p.detach(), rows.to(p.device), max_norm, norm_type)


def _row_views(shards: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    try:
        return [p.view(p.shape[0], math.prod(p.shape[1:])) for p in shards]
    except RuntimeError:
        raise ValueError(
            "max_norm_mode='renorm' rescales rows in place, which needs shards whose rows can be "
            "viewed as vectors; pass contiguous shards or use max_norm_mode='clip'"
        ) from None


def embedding_lookup(
    params: Union[torch.Tensor, Sequence[torch.Tensor]],
    ids,
    partition_strategy: str = "mod",
    max_norm: Optional[float] = None,
    *,
    max_norm_mode: str = "clip",
    norm_type: float = 2.0,
) -> torch.Tensor:
    """Look up ``ids`` in a table given whole or as shards (``tf.compat.v1.nn.embedding_lookup``).

    With several shards, ``mod`` sends id ``i`` to shard ``i % N``, row ``i // N``; ``div``
    gives each shard a contiguous range of ids, the first ``V % N`` shards one row more.
    Unlike TensorFlow, shards whose sizes break the layout, out-of-range ids and ``div``
    with fewer rows than shards are all handled soundly (see Raises).

    Args:
        params: one tensor ``(V, *)`` or a list of shards that agree on all but the first
            dimension (their sizes as :func:`~w2v.embedding.shard_sizes` gives them).
        ids: integer tensor (or list) of any shape, scalar and empty included.
        partition_strategy: ``"mod"`` or ``"div"``; checked even for one shard.
        max_norm: limit on the norm of each looked-up row (all its embedding axes; for 1-D
            params each value by itself).
        max_norm_mode: ``"clip"`` (TensorFlow, the default here): scale the looked-up copy
            to ``x * max_norm / max(||x||, max_norm)`` and leave the table alone;
            ``"renorm"`` (PyTorch's ``F.embedding``): rescale the table's rows in place
            before the lookup.
        norm_type: the p of the p-norm (TensorFlow always uses 2).

    Returns:
        ``ids.shape + params.shape[1:]``, on the device of ``ids`` (of the first shard
        when ``ids`` is not a tensor). Differentiable: each shard gets a dense gradient.

    Raises:
        ValueError: unknown strategy or ``max_norm_mode``; no shards; shards that disagree
            in trailing shape or dtype, or whose sizes do not follow the layout.
        IndexError: an id outside ``[0, V)`` (CPU ids; on an accelerator the device checks
            them and a ``RuntimeError`` surfaces at the next synchronisation, as with
            ``torch.nn.functional.embedding`` on CUDA).
        TypeError: non-integer ids.

    Shape:
        - params: ``(V, *)`` or shards ``(n_s, *)``
        - ids: ``(*I)``
        - output: ``(*I, *)``

    Examples:
        >>> embedding_lookup(torch.tensor([10, 20, 30, 40]), torch.tensor([1, 1, 3]))
        tensor([20, 20, 40])
        >>> shards = [torch.tensor([1, 2]), torch.tensor([10, 20])]
        >>> embedding_lookup(shards, torch.tensor([2, 0, 2, 1, 2, 3]), "mod")
        tensor([ 2,  1,  2, 10,  2, 20])
        >>> shards = [torch.tensor([[1, 2], [3, 4]]), torch.tensor([[5, 6], [7, 8]]), torch.tensor([[9, 10]])]
        >>> embedding_lookup(shards, torch.tensor([0, 3, 4]), "div")
        tensor([[ 1,  2],
                [ 7,  8],
                [ 9, 10]])

        With 3-D params, ids pick whole ``4 x 2`` slices:

        >>> params = torch.arange(24).reshape(3, 4, 2)
        >>> out = embedding_lookup(params, torch.tensor([0, 2, 1]))
        >>> out.shape, torch.equal(out, params[[0, 2, 1]])
        (torch.Size([3, 4, 2]), True)
    """
    check_strategy(partition_strategy)
    check_max_norm(max_norm, max_norm_mode)
    shards = [params] if isinstance(params, torch.Tensor) else list(params)
    total = check_shards(shards, partition_strategy)
    trailing = shards[0].shape[1:]
    ids = as_ids(ids, device=shards[0].device)
    flat_ids = ids.reshape(-1)
    check_ids(flat_ids, total)
    rows = [rows_view(p) for p in shards]  # (n_s, k): the embedding axes flattened
    layout = Layout(total, len(rows), partition_strategy)
    if max_norm is not None and max_norm_mode == "renorm":
        renorm_(_row_views(shards), layout, flat_ids, max_norm, norm_type)
    plan = Plan(layout, flat_view(rows), flat_ids.device)
    out = ShardedLookup.apply(plan, flat_ids, *rows)
    if max_norm is not None and max_norm_mode == "clip":
        out = clip_rows(out, max_norm, norm_type)
    return out.reshape((*ids.shape, *trailing))
