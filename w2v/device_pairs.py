"""A chunk's training pairs drawn on the device, into fixed-capacity buffers, without host syncs.

:func:`w2v.batching.subsample` and :func:`w2v.batching.window_pairs` pick elements with
boolean masks and ``nonzero``, whose output sizes depend on the data: on a GPU each one
waits for the device to tell the host how many elements there are (about a dozen waits
a chunk). Here the same pairs, in the same order, are compacted into buffers sized for
the worst case with a cumulative sum and a scatter, and the counts stay on the device
as 0-d tensors; the step stops at them. Nothing the host does depends on a value on the
device, so the next chunk can be drawn (on a second stream) while this one trains, and
the whole draw can be captured in a CUDA graph.

Every buffer is written whole by every draw (the slots past a count hold valid ids in a
fixed order), so a draw is a function of the chunk's ids and generator alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from .sampling import NoiseSampler


def pair_capacity(n: int, window: int) -> int:
    """The most pairs ``n`` tokens can give with windows up to ``window``.

    Every position reaches ``window`` both ways: ``2 * (n - d)`` pairs at each offset
    ``d <= min(window, n - 1)``, which is at most ``2 * min(window, n - 1) * n``.

    >>> pair_capacity(4, 5), pair_capacity(1, 5), pair_capacity(10, 2)
    (12, 0, 34)
    """
    w = min(window, n - 1)
    return 2 * w * n - w * (w + 1) if w > 0 else 0


class _Scratch:
    """Work space of one draw, carved into views by the functions below.

    ``ints`` and ``floats`` are the same memory (``floats`` has twice the slots), so the
    float temporaries of a stage share it with the integer ones of the next.
    """

    def __init__(self, n: int, device, noise_numel: int = 0) -> None:
        self.n = n
        self.ints = torch.empty(max(3 * n, noise_numel, 1), dtype=torch.int64, device=device)
        self.floats = self.ints.view(torch.float32)
        self.flags = torch.empty(max(2 * n, noise_numel, 1), dtype=torch.bool, device=device)
        self.positions = torch.arange(n, device=device)
        self.limit = torch.zeros((), dtype=torch.int64, device=device)
        self.kept = torch.zeros((), dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)

    @staticmethod
    def fits(scratch: Optional["_Scratch"], n: int, device) -> "_Scratch":
        if scratch is None:
            return _Scratch(n, device)
        assert scratch.n >= n, "the scratch space is smaller than the buffers"
        return scratch


def subsample_into(
    ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None, out: torch.Tensor, *, scratch=None
) -> torch.Tensor:
    """:func:`w2v.batching.subsample` into the front of ``out``; the kept count stays on the device.

    The same single ``torch.rand`` draw as ``subsample``, so with the same generator state
    the kept tokens are the same. The kept ids go to the front of ``out`` in order, the
    dropped ones after them (a stable partition), so ``out[:len(ids)]`` is always valid ids.

    Args:
        ids: token ids ``(N,)``, ``int64``, on the device.
        keep_prob: each id's probability of being kept, ``(V,)`` ``float32``.
        generator: the chunk's generator, on the device.
        out: ``(C,)`` with ``C >= N``, of ``ids``' dtype.
        scratch: work space reused from call to call (:class:`DevicePairSampler` passes
            its own); by default a new one. The returned count lives in it.

    Returns:
        the number of kept ids, a 0-d ``int64`` tensor on the device.

    >>> out = torch.empty(5, dtype=torch.int64)
    >>> kept = subsample_into(torch.tensor([3, 1, 3, 0, 1]), torch.tensor([1.0, 0.0, 1.0, 1.0]), None, out)
    >>> int(kept), out[: int(kept)].tolist()
    (3, [3, 3, 0])
    """
    n = ids.numel()
    if ids.dim() != 1 or out.numel() < n or out.dtype != ids.dtype:
        raise ValueError(f"subsample_into needs 1-d ids and an out of their dtype with room for {n}")
    if keep_prob.dtype != torch.float32:
        raise ValueError(f"keep_prob must be float32 (as keep_probabilities makes it), not {keep_prob.dtype}")
    s = _Scratch.fits(scratch, n, ids.device)
    if n == 0:
        return s.kept.zero_()
    u, p = s.floats[:n], s.floats[n : 2 * n]  # the memory of ints[:n]
    ranks, dest = s.ints[n : 2 * n], s.ints[2 * n : 3 * n]
    torch.rand(ids.shape, generator=generator, out=u)  # subsample's draw, number for number
    torch.index_select(keep_prob, 0, ids, out=p)
    keep = torch.lt(u, p, out=s.flags[:n])
    torch.cumsum(keep, 0, out=ranks)  # kept ids up to and including i
    s.kept.copy_(ranks[n - 1])
    # A kept id goes to ranks[i] - 1; a dropped one after all the kept ones, to
    # kept + (dropped before it) = kept + i - ranks[i].
    torch.sub(s.positions[:n], ranks, out=dest).add_(s.kept)
    torch.where(keep, ranks.sub_(1), dest, out=dest)
    out.scatter_(0, dest, ids)
    return s.kept


def window_pairs_into(
    tokens: torch.Tensor,
    count,
    reach: torch.Tensor,
    window: int,
    centers_out: torch.Tensor,
    contexts_out: torch.Tensor,
    *,
    scratch=None,
) -> torch.Tensor:
    """The pairs of :func:`w2v.batching.window_pairs` into the front of fixed buffers.

    Writes exactly ``window_pairs(tokens[:count], window, reach=reach[:count])``, in the
    same order (offset 1 to the right, offset 1 to the left, offset 2 to the right...), to
    the front of ``centers_out`` and ``contexts_out``, with one cumulative sum and one
    scatter per offset and side and a running count on the device. The candidate pairs
    that are not pairs (past ``count``, or beyond the center's window) fill the buffers
    from the back, so the first :func:`pair_capacity` slots always hold valid ids.

    Args:
        tokens: ``(L,)`` ids; the first ``count`` are the stream.
        count: the stream's length, a 0-d ``int64`` tensor on the device (or an int).
        reach: each position's window, ``(L',)`` with ``count <= L'``, as drawn by
            :func:`w2v.batching.window_reach`.
        window: the largest window.
        centers_out, contexts_out: ``(C,)`` of ``tokens``' dtype, with
            ``C >= pair_capacity(min(L, L'), window)``.
        scratch: as in :func:`subsample_into`.

    Returns:
        the number of pairs, a 0-d ``int64`` tensor on the device.

    >>> c, x = torch.empty(4, dtype=torch.int64), torch.empty(4, dtype=torch.int64)
    >>> pairs = window_pairs_into(torch.tensor([10, 11, 12]), 3, torch.tensor([1, 1, 1]), 1, c, x)
    >>> list(zip(c[: int(pairs)].tolist(), x[: int(pairs)].tolist()))
    [(10, 11), (11, 12), (11, 10), (12, 11)]
    """
    n = min(tokens.numel(), reach.numel())  # positions past reach are past count
    capacity = pair_capacity(n, window)
    if centers_out.numel() < capacity or contexts_out.numel() < capacity:
        raise ValueError(f"window_pairs_into needs output buffers of {capacity} pairs for {n} tokens and window {window}")
    if centers_out.dtype != tokens.dtype or contexts_out.dtype != tokens.dtype:
        raise ValueError("window_pairs_into writes into buffers of the tokens' dtype")
    s = _Scratch.fits(scratch, n, tokens.device)
    total = s.count.zero_()  # pairs so far, over the rows already written
    if capacity == 0:
        return total
    count = torch.as_tensor(count, dtype=torch.int64, device=tokens.device)
    done = 0  # candidates of the rows already written: ``total`` pairs, the rest fill from the back
    for offset in range(1, min(window, n - 1) + 1):
        m = n - offset
        # Position k in [0, m) pairs k with k + offset (right) and k + offset with k (left);
        # both lie in the stream when k < count - offset.
        in_stream = torch.lt(s.positions[:m], torch.sub(count, offset, out=s.limit), out=s.flags[n : n + m])
        for center, context, windows in (
            (tokens[:m], tokens[offset:n], reach[:m]),  # i sees i + offset
            (tokens[offset:n], tokens[:m], reach[offset:n]),  # i sees i - offset
        ):
            valid = torch.ge(windows, offset, out=s.flags[:m]).logical_and_(in_stream)
            dest = torch.cumsum(valid, 0, out=s.ints[:m]).add_(total)  # 1 + the slot of a pair
            total.copy_(dest[m - 1])
            # A candidate that is not a pair goes to capacity - 1 - j, with j = done + k - dest
            # the candidates before it that are not pairs either.
            back = torch.sub(dest, s.positions[:m], out=s.ints[m : 2 * m]).add_(capacity - 1 - done)
            torch.where(valid, dest.sub_(1), back, out=dest)
            centers_out.scatter_(0, dest, center)
            contexts_out.scatter_(0, dest, context)
            done += m
    return total


def _noise_into(noise: NoiseSampler, generator: torch.Generator | None, out: torch.Tensor, s: _Scratch) -> None:
    """``out[:] = noise.sample(out.shape, generator)``, number for number, in reused memory."""
    numel = out.numel()
    flat = out.view(-1)
    u, accept = s.floats[:numel], s.floats[numel : 2 * numel]  # the memory of ints[:numel]
    torch.randint(0, noise.num_words, out.shape, generator=generator, out=out)
    torch.rand(out.shape, generator=generator, out=u.view(out.shape))
    torch.index_select(noise.accept, 0, flat, out=accept)
    keep = torch.lt(u, accept, out=s.flags[:numel])
    alias = torch.index_select(noise.alias, 0, flat, out=s.ints[:numel])  # u and accept are spent
    torch.where(keep, flat, alias, out=flat)


@dataclass
class ChunkPairs:
    """One chunk's draw: views of a :class:`DevicePairSampler`'s buffers.

    ``count`` is not cut to a multiple of the negative-sharing group: the step drops the
    last partial group, as :func:`w2v.batching.batches` does. The batch starting at pair
    ``j * B`` shares the rows ``[j * B // G, (j + 1) * B // G)`` of ``negatives``.

    Shape:
        centers, contexts: ``(C,)`` with ``C = sampler.capacity``; the first ``count`` are pairs.
        negatives: ``(C // G + 1, K)``.
        count, kept: 0-d ``int64``, on the device: the pairs, and the tokens left by subsampling.
    """

    centers: torch.Tensor
    contexts: torch.Tensor
    negatives: torch.Tensor
    count: torch.Tensor
    kept: torch.Tensor


class _Slot:
    """The buffers of one chunk in flight."""

    def __init__(self, max_tokens: int, capacity: int, noise_shape, device) -> None:
        self.tokens = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.reach = torch.ones(max_tokens, dtype=torch.int64, device=device)
        self.centers = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.contexts = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.negatives = torch.zeros(noise_shape, dtype=torch.int64, device=device)
        self.scratch = _Scratch(max_tokens, device, self.negatives.numel())


class DevicePairSampler:
    """Draws chunks' pairs and negatives on the device into buffers allocated once.

    A draw, from the chunk's generator, in this order: subsampling (``subsample``'s one
    ``torch.rand``), every buffer position's window (``window_reach(max_tokens)``: the
    shapes never depend on the data), the pairs, then one alias draw of negatives for the
    whole capacity (``noise.sample((capacity // group + 1, K))``). Nothing in it reads a
    device value on the host.

    There are ``buffers`` sets of buffers, used in turn: chunk ``i + 1`` can be drawn (on
    another stream) while chunk ``i`` still trains on its own set. A draw overwrites the
    set it uses, so with ``buffers=2`` the result of a draw is valid until the draw after next.

    Args:
        keep_prob: each id's probability of being kept, ``(V,)``.
        noise: the negatives' distribution, its tables on ``device``.
        window: the largest window.
        negatives: ``K``, negatives per group.
        group: ``G``, consecutive pairs that share a negative set.
        max_tokens: the longest chunk.
        device: where the buffers live and the draws run.
        buffers: sets of buffers, used in turn.

    >>> import numpy as np
    >>> noise = NoiseSampler(np.array([5, 3, 2]))
    >>> sampler = DevicePairSampler(torch.ones(3), noise, window=2, negatives=4, group=2, max_tokens=6, device="cpu")
    >>> pairs = sampler.draw(torch.tensor([0, 1, 2, 0, 1, 2]), torch.Generator().manual_seed(0))
    >>> pairs.centers.shape, pairs.negatives.shape, int(pairs.kept)
    (torch.Size([18]), torch.Size([10, 4]), 6)
    """

    def __init__(
        self,
        keep_prob: torch.Tensor,
        noise: NoiseSampler,
        window: int,
        negatives: int,
        group: int,
        max_tokens: int,
        device,
        buffers: int = 2,
    ) -> None:
        for name, value in (("window", window), ("negatives", negatives), ("group", group), ("max_tokens", max_tokens), ("buffers", buffers)):
            if value < 1:
                raise ValueError(f"DevicePairSampler: {name} must be at least 1, not {value}")
        self.device = torch.device(device)
        tables = noise.accept.device
        if tables.type != self.device.type or None not in (tables.index, self.device.index) and tables.index != self.device.index:
            raise ValueError(f"the NoiseSampler's tables are on {noise.accept.device}; build it with device={self.device}")
        self.keep_prob = torch.as_tensor(keep_prob, dtype=torch.float32, device=self.device)
        self.noise = noise
        self.window, self.negatives, self.group, self.max_tokens = window, negatives, group, max_tokens
        self.capacity = pair_capacity(max_tokens, window)
        self.noise_shape = (self.capacity // group + 1, negatives)
        self.slots: List[_Slot] = [_Slot(max_tokens, self.capacity, self.noise_shape, self.device) for _ in range(buffers)]
        self._next = 0

    @property
    def nbytes(self) -> int:
        """Device memory held by the buffers and their work space."""
        total = 0
        for b in self.slots:
            for t in (b.tokens, b.reach, b.centers, b.contexts, b.negatives, b.scratch.ints, b.scratch.flags, b.scratch.positions):
                total += t.numel() * t.element_size()
        return total

    def draw(self, ids: torch.Tensor, generator: torch.Generator | None, slot: Optional[int] = None) -> ChunkPairs:
        """The pairs and negatives of one chunk, in the next set of buffers (or set ``slot``).

        Args:
            ids: the chunk's vocabulary ids, ``(N,)`` ``int64`` on the device, ``N <= max_tokens``.
            generator: the chunk's generator (seeded by ``chunk_seed``), on the device.
            slot: which set of buffers to write; by default the sets are used in turn.
        """
        if slot is None:
            slot, self._next = self._next, (self._next + 1) % len(self.slots)
        elif not 0 <= slot < len(self.slots):
            raise ValueError(f"slot {slot} does not exist: the sampler has {len(self.slots)} sets of buffers")
        if ids.dim() != 1 or ids.numel() > self.max_tokens or ids.dtype != torch.int64:
            raise ValueError(f"draw takes at most max_tokens={self.max_tokens} int64 ids in a 1-d tensor, not {tuple(ids.shape)} {ids.dtype}")
        b = self.slots[slot]
        n = ids.numel()
        kept = subsample_into(ids, self.keep_prob, generator, b.tokens, scratch=b.scratch)
        if n < self.max_tokens:  # a short chunk: the rest of the buffer is the same in every run
            b.tokens[n:].zero_()
        torch.randint(1, self.window + 1, (self.max_tokens,), generator=generator, out=b.reach)  # window_reach's draw
        count = window_pairs_into(b.tokens, kept, b.reach, self.window, b.centers, b.contexts, scratch=b.scratch)
        _noise_into(self.noise, generator, b.negatives, b.scratch)
        return ChunkPairs(b.centers, b.contexts, b.negatives, count, kept)


def batch_learning_rates(
    count: torch.Tensor,
    num_batches: int,
    batch_size: int,
    epoch: int,
    a: int,
    b: int,
    num_tokens: int,
    total_words: int,
    lr: float,
    min_lr: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The learning rate of each batch of a chunk, computed on the device from its pair count.

    ``Trainer._batch_lr`` with ``total_pairs = count``: batch ``j`` of chunk ``[a, b)`` sits
    at corpus position ``epoch * num_tokens + a + (j * batch_size / max(count, 1)) * (b - a)``,
    and ``w2v.state.learning_rate`` decays linearly to ``min_lr`` over ``total_words``. The
    same operations in the same order in float64, so the rates equal the host's to float32
    rounding. ``num_batches`` is a host bound (``ceil(capacity / batch_size)``); rates past
    the chunk's last batch are never used.

    Args:
        count: the chunk's pairs, a 0-d ``int64`` tensor on the device.
        out: ``(num_batches,)`` ``float32`` to write into.

    Returns:
        ``(num_batches,)`` ``float32`` on ``count``'s device.

    >>> rates = batch_learning_rates(torch.tensor(100), 2, 50, 0, 0, 10, 10, 20, 0.025, 0.0005)
    >>> [round(r, 6) for r in rates.tolist()]
    [0.025, 0.018875]
    """
    if out is None:
        out = torch.empty(num_batches, dtype=torch.float32, device=count.device)
    position = torch.arange(num_batches, dtype=torch.float64, device=count.device)
    position.mul_(batch_size).div_(count.clamp_min(1).to(torch.float64))  # done
    position.mul_(b - a).add_(epoch * num_tokens + a)
    position.mul_(lr - min_lr).div_(total_words).neg_().add_(lr).clamp_min_(min_lr)
    return out.copy_(position)
