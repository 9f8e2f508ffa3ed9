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
            self.input = DistributedEmbedding(num_embeddings, embedding_dim, partition_strategy, device=device)
            self.output = DistributedEmbedding(num_embeddings, embedding_dim, partition_strategy, device=device)
        else:
            kw = dict(num_shards=num_shards, partition_strategy=partition_strategy, device=device)
            self.input = ShardedEmbedding(num_embeddings, embedding_dim, **kw)
            self.output = ShardedEmbedding(num_embeddings, embedding_dim, **kw)
        self.reset_parameters()

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """word2vec's initialisation; with a generator, reproducible for any sharding."""
        if generator is None:
            self.input.reset_parameters("word2vec_input")
        else:
            bound = 0.5 / self.input.embedding_dim
            table = torch.rand(self.input.num_embeddings, self.input.embedding_dim, generator=generator)
            self.input.copy_table_(table.mul_(2).sub_(1).mul_(bound))
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


class SGNSStep:
    """word2vec's SGD step for skip-gram with negatives shared by groups of pairs.

    For a pair with input row ``x``, target row ``y`` and its group's negatives ``n_k``,
    with ``a`` the learning rate::

        g = a * (1 - s(x.y)),  g_k = -a * s(x.n_k)
        x += g y + sum_k g_k n_k,   y += g x,   n_k += g_k x

    all computed from the weights before the step and summed over the batch, exactly the
    per-pair updates of word2vec.c applied together. Buffers are allocated once, so a
    step allocates nothing; each worker thread owns its own ``SGNSStep``.

    Args:
        model: the tables to update.
        batch_size: the largest number of pairs in a step.
        group: pairs sharing one negative set; batch sizes must be multiples of it.
        negatives: negatives per group.
    """

    def __init__(self, model: SkipGramNS, batch_size: int, group: int, negatives: int) -> None:
        if batch_size % group:
            raise ValueError(f"batch_size={batch_size} must be a multiple of the group size {group}")
        self.model, self.group, self.k = model, group, negatives
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
            with_loss: also return the batch's summed loss (a 0-d tensor, no host sync).
        """
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
        gpos = torch.sigmoid(pos.neg_(), out=pos).mul_(lr)  # a (1 - s(x.y)), (B,)
        gneg = torch.sigmoid(neg, out=neg).mul_(-lr)  # -a s(x.n), (M, G, K)
        dx = self.dx[:b]
        torch.bmm(gneg, n, out=dx.view(m, g, d))  # sum_k g_k n_k
        dx.addcmul_(gpos.unsqueeze(1), y)
        grad = self.out_grad[: b + nk]
        torch.mul(x, gpos.unsqueeze(1), out=grad[:b])  # g x
        torch.bmm(gneg.transpose(1, 2), x.view(m, g, d), out=grad[b:].view(m, k, d))  # sum_g g_k x
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
