"""Skip-gram with negative sampling on two sharded embedding tables.

As in word2vec.c and gensim, the *input* table (``syn0``, the exported vectors) holds the
row of the context word and the *output* table (``syn1neg``) the row of the predicted
center word and of the negatives. The input table starts at ``U(-0.5/dim, 0.5/dim)`` and
the output table at zero.

Two forms of the same objective:

* :meth:`SkipGramNS.forward` is the loss under autograd, for tests and for users who want
  an optimizer;
* :class:`SGNSStep` applies word2vec's SGD update with hand-written gradients, which is
  what training runs: no autograd graph, no optimizer state, preallocated buffers, and
  one ``index_add_`` per table. Negatives are shared by groups of ``G`` pairs, so their
  scores are a batched matrix product ``(G, D) @ (D, K)`` instead of ``G * K`` dot products.
* :class:`FusedSGNS` is the same update in a compiled CPU kernel (:mod:`w2v.kernel`) over
  a whole chunk of batches at once: no gathered copies, one call per chunk, and a parallel
  schedule whose result does not depend on the thread count (bitwise deterministic).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from . import kernel
from .embedding import DistributedEmbedding, ShardedEmbedding, gather_all, index_add_all


class SkipGramNS(nn.Module):
    """The two tables of skip-gram with negative sampling.

    Args:
        num_embeddings: vocabulary size.
        embedding_dim: vector size.
        num_shards: shards of each table (see :class:`~w2v.embedding.ShardedEmbedding`).
        partition_strategy: ``"mod"`` or ``"div"``.
        device: where the tables live.
        distributed: spread both tables over the ranks of the ``torch.distributed`` process
            group (:class:`~w2v.embedding.distributed.DistributedEmbedding`, one shard per
            rank, ``num_shards`` must be 1); with one process it is a local table.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_shards: int = 1,
        partition_strategy: str = "mod",
        device=None,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        if distributed:
            if num_shards != 1:
                raise ValueError(
                    f"model.num_shards={num_shards} splits a table inside one process; with several processes "
                    "each rank holds one shard of each table: leave model.num_shards=1"
                )
            kw = dict(device=device, init="zeros")  # drawn once, below
            self.input = DistributedEmbedding(num_embeddings, embedding_dim, partition_strategy, **kw)
            self.output = DistributedEmbedding(num_embeddings, embedding_dim, partition_strategy, **kw)
        else:
            kw = dict(num_shards=num_shards, partition_strategy=partition_strategy, device=device, init="zeros")
            self.input = ShardedEmbedding(num_embeddings, embedding_dim, **kw)
            self.output = ShardedEmbedding(num_embeddings, embedding_dim, **kw)
        self.reset_parameters()

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """word2vec's initialisation; with a generator, the same table for any sharding and world size.

        The input table is drawn block by block in id order, so memory stays bounded for any vocabulary.
        """
        self.input.reset_parameters("word2vec_input", generator=generator)
        self.output.reset_parameters("zeros")

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Mean negative-sampling loss of a batch.

        Args:
            inputs: context ids, ``(B,)``.
            targets: center ids, ``(B,)``.
            negatives: noise ids shared by groups of ``G = B // M`` pairs, ``(M, K)``.

        Shape:
            returns a scalar: ``-log s(x.y) - sum_k log s(-x.n_k)`` averaged over pairs.
        """
        m, k = negatives.shape
        x = self.input(inputs)  # (B, D)
        y = self.output(targets)  # (B, D)
        n = self.output(negatives)  # (M, K, D)
        pos = (x * y).sum(-1)  # (B,)
        neg = torch.bmm(x.view(m, -1, x.shape[-1]), n.transpose(1, 2))  # (M, G, K)
        return -(F.logsigmoid(pos).sum() + F.logsigmoid(-neg).sum()) / inputs.numel()


HOT_ROWS = ("sum", "mean", "sqrt", "cap", "trust")


class SGNSStep:
    """word2vec's SGD step for skip-gram with negatives shared by groups of pairs.

    For a pair with input row ``x``, target row ``y`` and its group's negatives ``n_k``,
    with ``a`` the learning rate::

        g = a * (1 - s(x.y)),  g_k = -a * s(x.n_k)
        x += g y + sum_k g_k n_k,   y += g x,   n_k += g_k x

    all computed from the weights before the step and summed over the batch, exactly the
    per-pair updates of word2vec.c applied together. Buffers are allocated once, so a
    step allocates nothing; each worker thread owns its own ``SGNSStep``.

    Hot rows. A row that ``c`` pairs of the batch update gets ``c`` updates computed from
    the same stale weights and summed: one step of ``c * a`` along their mean, where
    word2vec.c takes ``c`` small steps that each see the last. Past ~4k pairs per batch at
    ``a = 0.025`` the frequent rows (the negatives drawn most, common contexts) overshoot
    and training diverges. ``hot_rows`` scales each row's summed update by a factor of
    the row's in-batch load:

    * ``"sum"``: 1, the plain sum (word2vec's update, unstable for large batches);
    * ``"mean"``: ``1 / c``, at most one pair's step per row and batch;
    * ``"sqrt"``: ``1 / sqrt(c)``;
    * ``"cap"``: ``min(1, cap / c)``: rows updated at most ``cap`` times keep the plain
      sum, hotter ones move ``cap`` steps along their mean update;
    * ``"trust"``: ``min(1, trust / (a h))`` with ``h = sum_i |p_i|^2 / 4`` over the
      row's pairs ``i`` (``p_i`` the partner row: ``y`` and the ``n_k`` for an input row,
      ``x`` for an output row). As ``s' <= 1/4``, ``h`` bounds the curvature of the
      batch's loss along the row (the trace of its Gauss-Newton block), so ``a h`` bounds
      how far one summed step can move the row's scores past their optimum: above ~1 it
      overshoots, which sequential SGD's small steps never do. Rows whose step is safe
      keep the plain sum however often they occur (early in training, when rows are
      short, that is all of them); only overshooting ones are damped. ``trust=2`` is the
      stability limit of a gradient step on a quadratic (2 / curvature); 4 scored better
      on text (its partners are rarely aligned) but oscillates on a 20-word vocabulary.
      The exact curvature (``s'`` in place of 1/4) diverged: saturated scores hide the risk.

    ``c`` counts pair updates: an input row once per pair it is the context of, a target
    row once per pair, a negative row ``G`` times per group that draws it (its update sums
    the group's ``G`` pairs). With ``sub_batch``, a batch is applied as consecutive
    sub-batches of that many pairs, each from the weights the previous one left: the
    same as smaller batches, at more (smaller) operations per pair. All of it runs
    without host synchronisation (per-row sums go through preallocated ``(V,)`` buffers).

    Measured (``scripts/ablate_hot_rows.py``, 20M-token corpus, 1 epoch, lr 0.025, G=32,
    analogy %): the plain sum diverges from 16k pairs per batch on (18.6 at 4k); ``trust``
    gives 18.2-18.6 at 16k, 16.3-17.3 at 64k, 11-12 at 256k; ``cap=64`` 16.8 / 14.8 /
    7.1; ``mean`` and ``sqrt`` lose most of the quality at any size (0-6); ``trust`` with
    ``sub_batch=16384`` keeps 18.0-18.2 at 64k and 256k (18.6-18.7 with ``trust=4``).
    Adagrad-like per-row rates were stable but worse than ``cap``. For large (GPU) batches:
    ``hot_rows="trust"`` with ``sub_batch=16384``.

    Args:
        model: the tables to update.
        batch_size: the largest number of pairs in a step.
        group: pairs sharing one negative set; batch sizes must be multiples of it.
        negatives: negatives per group.
        hot_rows: ``"sum"``, ``"mean"``, ``"sqrt"``, ``"cap"`` or ``"trust"`` (see above).
        cap: the update count past which ``hot_rows="cap"`` damps a row.
        trust: the load ``a h`` past which ``hot_rows="trust"`` damps a row.
        sub_batch: pairs per sequential sub-batch (a multiple of ``group``); ``None``: one.

    Example:
        >>> model = SkipGramNS(50, 8)
        >>> step = SGNSStep(model, 256, 8, 5, hot_rows="trust")
        >>> ids = torch.randint(0, 50, (256,))
        >>> step(ids, ids.roll(1), torch.randint(0, 50, (32, 5)), 0.025, with_loss=True).shape
        torch.Size([])
    """

    def __init__(
        self,
        model: SkipGramNS,
        batch_size: int,
        group: int,
        negatives: int,
        hot_rows: str = "sum",
        cap: float = 64.0,
        trust: float = 2.0,
        sub_batch: Optional[int] = None,
    ) -> None:
        if batch_size % group:
            raise ValueError(f"batch_size={batch_size} must be a multiple of the group size {group}")
        if hot_rows not in HOT_ROWS:
            raise ValueError(f"unknown hot_rows={hot_rows!r}; use one of {HOT_ROWS}")
        if not (cap > 0 and trust > 0):
            raise ValueError(f"cap={cap} and trust={trust} must be positive")
        if sub_batch is not None and (sub_batch <= 0 or sub_batch % group):
            raise ValueError(f"sub_batch={sub_batch} must be a positive multiple of the group size {group}")
        self.model, self.group, self.k = model, group, negatives
        self.hot_rows, self.cap, self.trust = hot_rows, float(cap), float(trust)
        self.sub_batch = None if sub_batch is None or sub_batch >= batch_size else sub_batch
        batch_size = self.sub_batch or batch_size
        dim = model.input.embedding_dim
        device = model.input.shards[0].device
        dtype = model.input.shards[0].dtype
        m = batch_size // group
        self.x = torch.empty(batch_size, dim, device=device, dtype=dtype)
        self.dx = torch.empty(batch_size, dim, device=device, dtype=dtype)
        # Target and negative rows share one buffer so they take one gather and one update.
        self.out_ids = torch.empty(batch_size + m * negatives, dtype=torch.int64, device=device)
        self.out_rows = torch.empty(batch_size + m * negatives, dim, device=device, dtype=dtype)
        self.out_grad = torch.empty(batch_size + m * negatives, dim, device=device, dtype=dtype)
        self.pos = torch.empty(batch_size, device=device, dtype=dtype)
        self.neg = torch.empty(m, group, negatives, device=device, dtype=dtype)
        if hot_rows != "sum":
            # Per-row loads of the batch, zero between steps (reset row by row), and each
            # pair's share of them (the count or the curvature term) and scale.
            self.load_in = torch.zeros(model.input.num_embeddings, device=device, dtype=dtype)
            self.load_out = torch.zeros(model.output.num_embeddings, device=device, dtype=dtype)
            self.share_in = torch.ones(batch_size, device=device, dtype=dtype)
            self.share_out = torch.ones(batch_size + m * negatives, device=device, dtype=dtype)
            self.scale_in = torch.empty(batch_size, device=device, dtype=dtype)
            self.scale_out = torch.empty(batch_size + m * negatives, device=device, dtype=dtype)
        if hot_rows == "trust":
            self.norm_x = torch.empty(batch_size, device=device, dtype=dtype)  # |x|^2
            self.norm_out = torch.empty(batch_size + m * negatives, device=device, dtype=dtype)  # |y|^2, |n|^2
            self.norm_group = torch.empty(2, m, device=device, dtype=dtype)  # sum_g |x_g|^2, sum_k |n_k|^2

    def extra_repr(self) -> str:
        s = f"group={self.group}, negatives={self.k}, hot_rows={self.hot_rows!r}"
        if self.hot_rows == "cap":
            s += f", cap={self.cap:g}"
        if self.hot_rows == "trust":
            s += f", trust={self.trust:g}"
        return s + (f", sub_batch={self.sub_batch}" if self.sub_batch else "")

    def __repr__(self) -> str:
        return f"SGNSStep({self.extra_repr()})"

    @torch.no_grad()
    def __call__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor,
        lr: float | torch.Tensor,
        with_loss: bool = False,
    ) -> Optional[torch.Tensor]:
        """Update the tables in place for one batch.

        Args:
            inputs: context ids ``(B,)``; targets: center ids ``(B,)``.
            negatives: ``(B // G, K)`` ids.
            lr: the learning rate of this step (a float, or a 0-d tensor on the device).
            with_loss: also return the batch's summed loss (a 0-d tensor, no host sync);
                with sub-batches, each one's loss before its own update.
        """
        if self.sub_batch is None:
            return self._step(inputs, targets, negatives, lr, with_loss)
        losses = []
        s, mg = self.sub_batch, self.sub_batch // self.group
        for j, a in enumerate(range(0, inputs.numel(), s)):
            part = slice(a, a + s), slice(j * mg, j * mg + mg)
            losses.append(self._step(inputs[part[0]], targets[part[0]], negatives[part[1]], lr, with_loss))
        return torch.stack(losses).sum() if with_loss else None

    def _scale(self, load: torch.Tensor, ids: torch.Tensor, share: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Each id's factor from its row's summed load (see the class); the loads back to zero."""
        load.index_add_(0, ids, share)
        torch.index_select(load, 0, ids, out=out)  # > 0 for counts: each id counts itself
        if self.hot_rows == "mean":
            out.reciprocal_()
        elif self.hot_rows == "sqrt":
            out.rsqrt_()
        else:  # min(1, c0 / load); a zero load gives inf, then 1
            out.reciprocal_().mul_(self.cap if self.hot_rows == "cap" else self.trust).clamp_(max=1.0)
        load.index_fill_(0, ids, 0)
        return out

    def _step(self, inputs, targets, negatives, lr, with_loss):
        b, g, k = inputs.numel(), self.group, self.k
        m = b // g
        nk = m * k
        d = self.x.shape[1]
        x = self.x[:b]
        ids = self.out_ids[: b + nk]
        ids[:b] = targets
        ids[b:] = negatives.reshape(-1)
        rows = self.out_rows[: b + nk]
        # One exchange for both tables when they are spread over processes.
        gather_all([(self.model.input, inputs, x), (self.model.output, ids, rows)])  # (B, D), (B + M K, D)
        y, n = rows[:b], rows[b:].view(m, k, d)  # (B, D), (M, K, D)
        pos = torch.sum(torch.mul(x, y, out=self.dx[:b]), 1, out=self.pos[:b])  # (B,)
        neg = torch.bmm(x.view(m, g, d), n.transpose(1, 2), out=self.neg[:m])  # (M, G, K)
        loss = None
        if with_loss:
            loss = -(F.logsigmoid(pos).sum() + F.logsigmoid(neg.neg()).sum())
        grad = self.out_grad[: b + nk]
        trust = self.hot_rows == "trust"
        if trust:  # the squared norms, with the gradient buffers as scratch
            norm_x = torch.sum(torch.mul(x, x, out=self.dx[:b]), 1, out=self.norm_x[:b])  # (B,)
            norm_out = torch.sum(torch.mul(rows, rows, out=grad), 1, out=self.norm_out[: b + nk])  # (B + M K,)
        gpos = torch.sigmoid(pos.neg_(), out=pos).mul_(lr)  # a (1 - s(x.y)), (B,)
        gneg = torch.sigmoid(neg, out=neg).mul_(-lr)  # -a s(x.n), (M, G, K)
        dx = self.dx[:b]
        torch.bmm(gneg, n, out=dx.view(m, g, d))  # sum_k g_k n_k
        dx.addcmul_(gpos.unsqueeze(1), y)
        torch.mul(x, gpos.unsqueeze(1), out=grad[:b])  # g x
        torch.bmm(gneg.transpose(1, 2), x.view(m, g, d), out=grad[b:].view(m, k, d))  # sum_g g_k x
        if self.hot_rows != "sum":
            share_in, share_out = self.share_in[:b], self.share_out[: b + nk]
            if trust:  # a |p|^2 / 4 summed over the pair's partners
                sum_x, sum_n = self.norm_group[0, :m], self.norm_group[1, :m]
                torch.sum(norm_x.view(m, g), 1, out=sum_x)  # (M,)
                torch.sum(norm_out[b:].view(m, k), 1, out=sum_n)  # (M,)
                torch.add(norm_out[:b].view(m, g), sum_n.unsqueeze(1), out=share_in.view(m, g))  # |y|^2 + sum_k |n_k|^2
                share_out[:b].copy_(norm_x)  # |x|^2
                share_out[b:].view(m, k).copy_(sum_x.unsqueeze(1))  # sum_g |x_g|^2
                share_in.mul_(lr).mul_(0.25)
                share_out.mul_(lr).mul_(0.25)
            else:  # counts: 1 per pair, G per negative (its update sums the group's pairs)
                share_out[:b].fill_(1)
                share_out[b:].fill_(g)
            # Scaling each pair's share of a row's update by the row's factor scales the sum.
            dx.mul_(self._scale(self.load_in, inputs, share_in, self.scale_in[:b]).unsqueeze(1))
            grad.mul_(self._scale(self.load_out, ids, share_out, self.scale_out[: b + nk]).unsqueeze(1))
        index_add_all([(self.model.input, inputs, dx), (self.model.output, ids, grad)])
        return loss


class FusedSGNS:
    """:class:`SGNSStep`'s update over many batches in one call of the CPU kernel.

    Within a batch every score comes from the weights before the batch and the updates
    are summed, as in :class:`SGNSStep` (equal up to float rounding); batches follow one
    another. The kernel splits each batch among ``threads`` threads and lets each row be
    written by one thread in pair order, so the tables end bitwise the same for any
    thread count and any run.

    Use :meth:`unsupported` first: the kernel needs float32 tables whose shards share one
    contiguous CPU buffer (the layer's default layout) and a working C compiler.

    Args:
        model: the tables to update.
        group: pairs sharing one negative set.
        threads: threads the kernel runs on.
    """

    def __init__(self, model: SkipGramNS, group: int, threads: int) -> None:
        why = self.unsupported(model)
        if why:
            raise RuntimeError(f"the fused CPU step cannot run: {why}")
        self.model, self.group, self.threads = model, group, threads
        self.phase_seconds = np.zeros(len(kernel.PHASES))  # wall time per kernel phase (kernel.PHASES), summed

    @staticmethod
    def unsupported(model: SkipGramNS) -> Optional[str]:
        """Why the kernel cannot train ``model``; ``None`` when it can."""
        for layer in (model.input, model.output):
            flat = layer.flat_table()
            if flat is None:
                return "the shards do not share one buffer"
            if flat.device.type != "cpu" or flat.dtype != torch.float32:
                return f"the tables are {flat.dtype} on {flat.device}, the kernel takes float32 on the CPU"
        return kernel.unavailable()

    @torch.no_grad()
    def __call__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor,
        batch_size: int,
        lrs: Sequence[float],
        measure: Sequence[bool],
    ) -> np.ndarray:
        """Train on consecutive batches of ``batch_size`` pairs.

        Args:
            inputs, targets: context and center ids, ``(P,)``, ``P`` a multiple of the group.
            negatives: ``(P // G, K)`` ids, one row per group.
            batch_size: pairs per batch (a multiple of the group); the last may be shorter.
            lrs, measure: per batch, its learning rate and whether to compute its loss.

        Returns:
            the summed loss of each batch, ``nan`` where not measured.
        """
        win, wout = self.model.input.flat_table(), self.model.output.flat_table()
        rows_in = self.model.input.flat_index(inputs.long()).contiguous()
        rows_out = self.model.output.flat_index(targets.long()).contiguous()
        rows_neg = self.model.output.flat_index(negatives.long()).contiguous()
        return kernel.sgns_train(
            win, wout, rows_in, rows_out, rows_neg, self.group, batch_size, lrs, measure, self.threads,
            self.phase_seconds,
        )
