"""The skip-gram negative-sampling step on a GPU: :class:`TritonSGNS` launches the fused kernels.

:class:`TritonSGNS` applies :class:`~w2v.model.SGNSStep`'s update (plain sum or ``trust``
damping of hot rows) with the kernels of :mod:`w2v.triton_kernels`, which read the rows of
each group of ``G`` pairs sharing ``K`` negatives straight from the tables: no gathered
copies, no ``(G, K, D)`` tensor. Two schedules:

* ``mode="sync"`` (batch-synchronous, :class:`SGNSStep`'s maths): every score of a batch
  comes from the weights before the batch and the updates are summed. A batch is three
  launches (two with ``hot_rows="sum"``): scores and gradients into preallocated buffers
  (and, with ``trust``, per-row loads), the gradients scaled by ``min(1, trust / load)``
  and added to the tables, the loads of the batch's rows back to zero.

  On CUDA, :meth:`TritonSGNS.train_chunk` captures one batch (its launches and the
  increment of the batch index, which kernels read from device memory) in a CUDA graph,
  so a batch costs one replay instead of several Python launches.
* ``mode="hogwild"``: one launch for a whole chunk; each group adds its updates to the
  tables with atomics as soon as they are computed (plain sum only). Groups then see
  each other's updates in whatever order the GPU runs them, as in Hogwild (Recht et al.,
  2011) and the GPU trainers that share negatives (BlazingText, FULL-W2V).

Nothing here reads a device value on the host: the number of valid pairs, the batch index,
the learning rates and the losses stay in device tensors, and programs past the valid
pairs return at once.

Without a GPU the kernels run on CPU tensors through Triton's interpreter: set
``TRITON_INTERPRET=1`` before this module is imported (tests do). :func:`unavailable`
says why the step cannot run on a model or device; this module imports without triton.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Optional

import torch

from . import triton_kernels as kernels
from .embedding import ShardedEmbedding
from .model import SkipGramNS
from .triton_kernels import launch_constants

HOT_ROWS = ("sum", "trust")
MODES = ("sync", "hogwild")
_GRAPHS_KEPT = 4  # captured batches kept, one per set of chunk buffers (e.g. double-buffered)


def unavailable(model_or_device) -> Optional[str]:
    """Why :class:`TritonSGNS` cannot train this model (or run on this device); ``None`` when it can.

    Args:
        model_or_device: a :class:`~w2v.model.SkipGramNS`, or a device (``torch.device`` or str).
    """
    if kernels.triton is None:
        return "triton is not installed (it comes with PyTorch's CUDA builds; else pip install triton)"
    if isinstance(model_or_device, SkipGramNS):
        for name in ("input", "output"):
            layer = getattr(model_or_device, name)
            if not isinstance(layer, ShardedEmbedding):
                return f"the {name} table is spread over processes; the Triton step takes a table in one process"
            flat = layer.flat_table()
            if flat is None:
                return f"the shards of the {name} table do not share one buffer (are they on one device?)"
            if flat.dtype != torch.float32:
                return f"the {name} table is {flat.dtype}; the Triton step takes float32 tables"
            if flat.dim() != 2 or flat.stride(1) != 1:
                return f"the rows of the {name} table are not contiguous"
        device = model_or_device.input.flat_table().device
    else:
        device = torch.device(model_or_device)
    if device.type == "cuda":
        return None
    if device.type == "cpu" and kernels.interpreted():
        return None
    if device.type == "cpu":
        return (
            "the tables are on the CPU: the Triton step runs on CUDA, or on the CPU with TRITON_INTERPRET=1 "
            "set before w2v.triton_step is imported"
        )
    return f"the tables are on {device}; the Triton step runs on CUDA"



class TritonSGNS:
    """:class:`~w2v.model.SGNSStep`'s update in fused Triton kernels (see the module).

    Args:
        model: the tables to update (float32, each table's shards in one buffer, on CUDA or,
            under ``TRITON_INTERPRET=1``, on the CPU; see :func:`unavailable`).
        batch_size: pairs per batch (``B``, a multiple of ``group``); in ``"hogwild"`` mode
            it only decides which learning rate and loss slot a pair's group uses.
        group: pairs sharing one negative set (``G``).
        negatives: negatives per group (``K``).
        hot_rows: ``"sum"`` or ``"trust"`` (:class:`~w2v.model.SGNSStep`'s).
        trust: the load ``a h`` past which ``hot_rows="trust"`` damps a row.
        mode: ``"sync"`` (batch-synchronous) or ``"hogwild"`` (one launch per chunk).
        graphs: replay each batch of :meth:`train_chunk` from a CUDA graph (sync mode on
            CUDA); ``None``: wherever that is possible.

    Example:
        >>> step = TritonSGNS(SkipGramNS(50, 8), 256, 8, 5, hot_rows="trust")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: SkipGramNS,
        batch_size: int,
        group: int,
        negatives: int,
        hot_rows: str = "sum",
        trust: float = 2.0,
        mode: str = "sync",
        graphs: Optional[bool] = None,
    ) -> None:
        if hot_rows not in HOT_ROWS:
            raise ValueError(
                f"hot_rows={hot_rows!r} is not in the Triton step; use one of {HOT_ROWS} (or the torch step, SGNSStep)"
            )
        if mode not in MODES:
            raise ValueError(f"unknown mode={mode!r}; use one of {MODES}")
        if mode == "hogwild" and hot_rows != "sum":
            raise ValueError(
                f"mode='hogwild' applies the plain sum; use hot_rows='sum', or mode='sync' for {hot_rows!r}"
            )
        if group < 1 or batch_size < 1 or batch_size % group:
            raise ValueError(f"batch_size={batch_size} must be a positive multiple of the group size {group} (>= 1)")
        if negatives < 0:
            raise ValueError(f"negatives={negatives} must be 0 or more")
        if not trust > 0:
            raise ValueError(f"trust={trust} must be positive")
        why = unavailable(model)
        if why:
            raise RuntimeError(f"the Triton step cannot run: {why}")
        self.model, self.batch_size, self.group, self.k = model, batch_size, group, negatives
        self.hot_rows, self.trust, self.mode = hot_rows, float(trust), mode
        win = model.input.flat_table()
        device, dim = win.device, win.shape[1]
        self.graphs = device.type == "cuda" and mode == "sync" and graphs is not False and not kernels.interpreted()
        self._graph_cache: OrderedDict = OrderedDict()
        self._staged = {}  # flat rows of sharded tables, reused so that captured graphs stay valid
        int64 = dict(dtype=torch.int64, device=device)
        self._batch = torch.zeros((), **int64)  # the batch index kernels read; a graph increments it
        self._zero = torch.zeros((), **int64)
        self._count = torch.zeros((), **int64)
        self._lr = torch.zeros(1, dtype=torch.float32, device=device)
        self._scratch = torch.zeros(1, dtype=torch.float32, device=device)  # a loss nobody reads
        f32 = dict(dtype=torch.float32, device=device)
        if mode == "sync":
            stride = -(-max(dim, 1) // 16) * 16  # rows of the gradient buffers start 64-byte aligned
            m = batch_size // group
            self._dx = torch.empty(batch_size, stride, **f32)  # (B, D)
            self._dout = torch.empty(batch_size + m * negatives, stride, **f32)  # (B + M K, D)
        else:
            self._dx = self._dout = torch.empty(1, 1, **f32)  # not used
        if hot_rows == "trust":  # per-row loads of a batch, zero between batches
            self._load_in = torch.zeros(win.shape[0], **f32)
            self._load_out = torch.zeros(model.output.flat_table().shape[0], **f32)
        else:
            self._load_in = self._load_out = torch.zeros(1, **f32)  # not used

    def __repr__(self) -> str:
        s = f"batch_size={self.batch_size}, group={self.group}, negatives={self.k}, hot_rows={self.hot_rows!r}"
        if self.hot_rows == "trust":
            s += f", trust={self.trust:g}"
        return f"TritonSGNS({s}, mode={self.mode!r})"

    @torch.no_grad()
    def __call__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor,
        lr: float | torch.Tensor,
        with_loss: bool = False,
    ) -> Optional[torch.Tensor]:
        """Update the tables in place for one batch, as :meth:`SGNSStep.__call__ <w2v.model.SGNSStep.__call__>`.

        Args:
            inputs: context ids ``(B,)``; targets: center ids ``(B,)``; ``B`` a multiple of
                the group, at most ``batch_size``. Ids are not range-checked (that would
                cost a host sync): an id outside the vocabulary is undefined behaviour.
            negatives: ``(B // G, K)`` ids.
            lr: the learning rate (a float, or a 0-d tensor on the device).
            with_loss: also return the batch's summed loss (a 0-d tensor, no host sync).
        """
        b, device = inputs.numel(), self._lr.device
        if any(t.device != device for t in (inputs, targets, negatives)):
            where = f"{inputs.device}, {targets.device}, {negatives.device}"
            raise ValueError(f"ids are on {where}; move them to the tables' {device}")
        if b % self.group or b > self.batch_size or targets.numel() != b:
            raise ValueError(
                f"{b} inputs and {targets.numel()} targets: give as many of each, a multiple of the group "
                f"size {self.group} and at most batch_size={self.batch_size}"
            )
        if tuple(negatives.shape) != (b // self.group, self.k):
            shape = (b // self.group, self.k)
            raise ValueError(f"negatives are {tuple(negatives.shape)}; give {shape} ids, one row per group")
        self._count.fill_(b)
        if isinstance(lr, torch.Tensor):
            self._lr.copy_(lr.reshape(1))
        else:
            self._lr.fill_(lr)
        losses = torch.zeros(1, dtype=torch.float32, device=device) if with_loss else self._scratch
        rows = self._rows(inputs.reshape(-1), targets.reshape(-1), negatives, stage=False)
        if self.mode == "hogwild":
            self._hogwild(rows, self._count, b, self._lr, losses)
        else:
            self._sync_batch(rows, self._count, self._zero, b, self._lr, losses, b // self.group)
        return losses[0] if with_loss else None

    @torch.no_grad()
    def train_chunk(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor,
        count: torch.Tensor,
        lrs: torch.Tensor,
        losses: torch.Tensor,
        batches: Optional[int] = None,
    ) -> None:
        """Train on the first ``count`` pairs of fixed-capacity buffers, batch after batch.

        Batch ``j`` covers pairs ``[j B, min((j + 1) B, usable))`` with ``usable = count -
        count % G`` (a last partial group is dropped); negative row ``r`` serves pairs
        ``[r G, (r + 1) G)``. ``lrs.numel()`` batches are launched; those past the valid
        pairs do nothing, so the caller may launch a fixed upper bound. Nothing here reads
        a device value on the host.

        Args:
            inputs, targets: context and center ids, int64 ``(P,)`` on the device.
            negatives: int64 ``(P // G + 1, K)`` (at least ``P // G`` rows).
            count: 0-d int64 device tensor, the number of valid pairs (at most ``P``).
            lrs: float32 ``(nb,)``, the learning rate of each batch.
            losses: float32 ``(nb,)``; each batch's summed loss is added to its entry.
            batches: launch only the first ``batches`` batches (at most ``nb``), when the
                caller knows how many hold pairs. The buffers keep their length, so a captured
                graph (which holds their addresses and sizes) serves every chunk.
        """
        p, nb, g = inputs.numel(), lrs.numel(), self.group
        device = self._lr.device
        for name, t in (("inputs", inputs), ("targets", targets), ("negatives", negatives), ("count", count)):
            if t.dtype != torch.int64 or t.device != device or not t.is_contiguous():
                raise ValueError(f"{name} must be a contiguous int64 tensor on {device}, got {t.dtype} on {t.device}")
        if inputs.dim() != 1 or targets.shape != inputs.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must be one (P,) shape")
        if negatives.dim() != 2 or negatives.shape[0] < p // g or negatives.shape[1] != self.k:
            shape = (p // g, self.k)
            raise ValueError(f"negatives are {tuple(negatives.shape)}; give at least {shape}, one row per group")
        if count.dim() != 0:
            raise ValueError(f"count must be a 0-d tensor, got shape {tuple(count.shape)}")
        for name, t in (("lrs", lrs), ("losses", losses)):
            if t.dtype != torch.float32 or t.device != device or not t.is_contiguous() or t.dim() != 1:
                raise ValueError(f"{name} must be a contiguous float32 (nb,) tensor on {device}")
        if losses.numel() != nb:
            raise ValueError(f"losses has {losses.numel()} entries for {nb} learning rates; give one per batch")
        rows = self._rows(inputs, targets, negatives, stage=True)
        if self.mode == "hogwild":
            self._hogwild(rows, count, p, lrs, losses)
            return
        self._batch.zero_()

        def batch():  # batch self._batch, then the index of the next one
            self._sync_batch(rows, count, self._batch, p, lrs, losses, self.batch_size // g)
            self._batch.add_(1)

        # A graph holds the addresses and sizes it was captured with: one per such set.
        key = (*(t.data_ptr() for t in (*rows, count, lrs, losses)), p, nb, *self._tables_key())
        graph = self._graph_cache.get(key) if self.graphs else None
        if graph is not None:
            self._graph_cache.move_to_end(key)
        for i in range(nb if batches is None else min(batches, nb)):
            if graph is not None:
                graph.replay()
                continue
            batch()  # the first batch runs eagerly: it also compiles the kernels before a capture
            if i == 0 and self.graphs and i + 1 < nb:
                graph = self._capture(key, batch)

    # -- internals ------------------------------------------------------------------------

    def _tables(self):
        win, wout = self.model.input.flat_table(), self.model.output.flat_table()
        if win is None or wout is None:
            raise RuntimeError("the Triton step cannot run: the shards of a table no longer share one buffer")
        return win, wout

    def _tables_key(self):
        return tuple(t.data_ptr() for t in self._tables())

    def _rows(self, inputs, targets, negatives, stage: bool):
        """Flat table rows of the ids (the ids themselves for one shard or ``div``)."""
        out = []
        for name, layer, ids in (("in", self.model.input, inputs), ("out", self.model.output, targets),
                                 ("neg", self.model.output, negatives)):
            rows = layer.flat_index(ids)
            if stage and rows is not ids:  # copy into a buffer that outlives the chunk: a graph holds its address
                buf = self._staged.get(name)
                if buf is None or buf.shape != rows.shape:
                    buf = self._staged[name] = torch.empty_like(rows)
                rows = buf.copy_(rows)
            out.append(rows.contiguous())
        return out

    def _constants(self, win, wout, hogwild=False):
        stride_grad = 0 if hogwild else self._dx.stride(0)
        return launch_constants(win.shape[1], self.group, self.k, win.stride(0), wout.stride(0), stride_grad)

    def _sync_batch(self, rows, count, batch, capacity, lrs, losses, programs):
        """One batch's launches, ``programs`` groups each: scores and gradients, apply, reset the loads."""
        win, wout = self._tables()
        trust = self.hot_rows == "trust"
        grid = (max(programs, 1),)
        sizes = dict(capacity=capacity, batch_size=self.batch_size, nb=lrs.numel())
        consts = self._constants(win, wout)
        buffers = (self._dx, self._dout, self._load_in, self._load_out)
        kernels.sgns_kernel[grid](
            win, wout, *rows, count, batch, lrs, losses, *buffers, **sizes, **consts, HOGWILD=False, TRUST=trust
        )
        kernels.apply_kernel[grid](win, wout, *rows, count, batch, *buffers, self.trust, **sizes, **consts, TRUST=trust)
        if trust:
            blocks = {name: consts[name] for name in ("K", "G", "BLOCK_G", "BLOCK_K")}
            kernels.reset_kernel[grid](*rows, count, batch, self._load_in, self._load_out, **sizes, **blocks)

    def _hogwild(self, rows, count, capacity, lrs, losses):
        """One launch: every group of the buffers adds its updates to the tables as it goes."""
        win, wout = self._tables()
        grid = (max(capacity // self.group, 1),)
        sizes = dict(capacity=capacity, batch_size=self.batch_size, nb=lrs.numel())
        buffers = (self._dx, self._dout, self._load_in, self._load_out)  # not used
        kernels.sgns_kernel[grid](
            win, wout, *rows, count, self._zero, lrs, losses, *buffers, **sizes,
            **self._constants(win, wout, hogwild=True), HOGWILD=True, TRUST=False,
        )

    def _capture(self, key, batch) -> Optional["torch.cuda.CUDAGraph"]:
        """``batch``'s launches captured in a CUDA graph (kept for these buffers); ``None`` if capture fails."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                batch()
        except Exception as e:  # any launch that cannot be captured: the eager path computes the same
            warnings.warn(f"CUDA graph capture of the Triton step failed ({e}); running its launches eagerly")
            self.graphs = False
            return None
        self._graph_cache[key] = graph
        while len(self._graph_cache) > _GRAPHS_KEPT:
            self._graph_cache.popitem(last=False)
        return graph
