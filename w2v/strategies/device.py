"""The fused Triton step fed by pairs drawn on the device: the GPU's way of training.

Per chunk, on the device and without a host round trip: the chunk's ids are sliced from
the token stream kept on the device, subsampled, windowed and given negatives into
fixed-capacity buffers (:class:`~w2v.device_pairs.DevicePairSampler`), the learning rate of
every batch is computed from the pair count there (:func:`~w2v.device_pairs.batch_learning_rates`),
and :class:`~w2v.triton_step.TritonSGNS` trains every batch, adding each batch's loss into a
device buffer. The next chunk is drawn on a second CUDA stream while this one trains.

The host reads the device once per chunk: the pair count of the chunk about to train
(drawn a chunk ahead, so the read waits on the drawing stream only), which sets how many
batches to launch. Losses come back without blocking: a copy to pinned memory whose event
is polled, checked for NaN and shown as progress when it lands; the epoch's total is read
when the strategy returns. On CPU (Triton's interpreter, for tests) the same code runs
with no streams.
"""

from __future__ import annotations

import time
from typing import List, Optional

import torch

from w2v.chunks import ChunkPlan
from w2v.device_pairs import DevicePairSampler, batch_learning_rates
from w2v.model import SkipGramNS
from w2v.state import WorkerStats
from w2v.strategies.base import Loop, Progress, Strategy, check_loss
from w2v.triton_step import TritonSGNS


class _Readback:
    """A device tensor copied to the host without blocking; :meth:`poll` says when it landed."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host = torch.zeros(size, dtype=torch.float64, pin_memory=self.cuda)
        self.event = torch.cuda.Event() if self.cuda else None
        self.meta = None
        self.busy = False

    def start(self, values: torch.Tensor, meta) -> None:
        self.host.copy_(values, non_blocking=self.cuda)
        if self.cuda:
            self.event.record()
        self.meta, self.busy = meta, True

    def poll(self, wait: bool = False):
        """``(values, meta)`` once the copy has landed (``wait``: block for it), else ``None``."""
        if not self.busy:
            return None
        if self.cuda:
            if wait:
                self.event.synchronize()
            elif not self.event.query():
                return None
        self.busy = False
        return self.host.tolist(), self.meta


class Triton(Strategy):
    """Chunks drawn and trained on the device, one host read per chunk.

    Args:
        model: the tables, on ``plan.device`` (CUDA; the CPU only under ``TRITON_INTERPRET=1``).
        plan: the chunks; its token stream must be on the device.
        mode: ``"sync"`` (batch-synchronous, ``hot_rows`` damping) or ``"hogwild"``.
    """

    name = "triton"

    def __init__(self, model: SkipGramNS, plan: ChunkPlan, mode: str = "sync") -> None:
        cfg = plan.cfg
        self.model, self.plan, self.mode = model, plan, mode
        device = plan.device
        self.cuda = device.type == "cuda"
        self.sampler = DevicePairSampler(
            plan.keep_prob, plan.noise, cfg.window, cfg.negatives, cfg.shared_negatives, cfg.chunk_tokens, device, buffers=2
        )
        self.step = TritonSGNS(
            model, cfg.batch_size, cfg.shared_negatives, cfg.negatives, hot_rows=cfg.hot_rows, trust=cfg.hot_rows_trust, mode=mode
        )
        self.max_batches = max(1, -(-self.sampler.capacity // cfg.batch_size))
        self.lrs = torch.zeros(self.max_batches, dtype=torch.float32, device=device)
        self.losses = torch.zeros(self.max_batches, dtype=torch.float32, device=device)
        self.loss_total = torch.zeros((), dtype=torch.float64, device=device)  # since the last readback
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.host_reads = 0  # blocking reads of the device, one per chunk

    def describe(self) -> str:
        cfg = self.plan.cfg
        return f"Triton step ({self.mode}, {cfg.batch_size:,}-pair batches, hot_rows={cfg.hot_rows})"

    # -- drawing a chunk ahead -----------------------------------------------------------
    def _draw(self, epoch: int, index: int, slot: int, gen: torch.Generator, after: Optional[torch.cuda.Event]):
        """Draw chunk ``index`` into buffer ``slot`` (on the side stream when on CUDA)."""
        plan = self.plan
        if not self.cuda:
            pairs = self.sampler.draw(plan.ids(index), plan.seed(gen, epoch, index), slot=slot)
            count = torch.stack([pairs.count, pairs.kept]).to(torch.float64)
            return index, slot, pairs, count, None
        with torch.cuda.stream(self.stream):
            if after is not None:  # the slot's previous chunk has finished training
                self.stream.wait_event(after)
            pairs = self.sampler.draw(plan.ids(index), plan.seed(gen, epoch, index), slot=slot)
            count = torch.empty(2, dtype=torch.float64, pin_memory=True)
            count.copy_(torch.stack([pairs.count, pairs.kept]).to(torch.float64), non_blocking=True)
            drawn = torch.cuda.Event()
            drawn.record(self.stream)
        return index, slot, pairs, count, drawn

    # -- the loop --------------------------------------------------------------------------
    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        plan, cfg, stat = self.plan, self.plan.cfg, stats[0]
        group, bsz = cfg.shared_negatives, cfg.batch_size
        gen = torch.Generator(device=plan.device)
        readback = _Readback(1, plan.device)
        trained: List[Optional[torch.cuda.Event]] = [None, None]  # per slot: its last chunk trained
        pending = None
        if todo and not loop.due(epoch, todo[-1]):
            pending = self._draw(epoch, todo.pop(), 0, gen, None)
        self._covered = stat.loss_pairs  # pairs whose losses have come back
        self._recent = float("nan")
        reported = time.perf_counter()
        try:
            while pending is not None:
                index, slot, pairs, count, drawn = pending
                # Draw the next chunk while this one trains (it is trained before returning).
                pending = None
                if todo and not loop.due(epoch, todo[-1]):
                    pending = self._draw(epoch, todo.pop(), 1 - slot, gen, trained[1 - slot])
                # The one blocking read of the chunk: how many pairs it has.
                if drawn is not None:
                    drawn.synchronize()
                    main = torch.cuda.current_stream()
                    main.wait_event(drawn)
                    for t in (pairs.centers, pairs.contexts, pairs.negatives, pairs.count, pairs.kept):
                        t.record_stream(main)  # made on the drawing stream, used on this one
                total, _kept = count.tolist()
                self.host_reads += 1
                total = int(total)
                usable = total - total % group
                nb = -(-usable // bsz)
                a, b = plan.bounds[index]
                if nb:
                    # Whole buffers: their addresses and sizes stay the same from chunk to
                    # chunk, so the step's captured graph serves them all; batches past the
                    # pairs are not launched.
                    batch_learning_rates(
                        pairs.count, self.max_batches, bsz, epoch, a, b, plan.num_tokens, plan.total_words, cfg.lr,
                        cfg.min_lr, out=self.lrs,
                    )
                    self.losses.zero_()
                    self.step.train_chunk(
                        pairs.contexts, pairs.centers, pairs.negatives, pairs.count, self.lrs, self.losses, batches=nb
                    )
                    self.loss_total += self.losses.sum(dtype=torch.float64)
                    stat.lr = plan.batch_lr(epoch, index, nb - 1, total)
                if self.cuda:
                    trained[slot] = torch.cuda.Event()
                    trained[slot].record()
                stat.pairs += usable
                stat.loss_pairs += usable
                stat.words += b - a
                # Losses come back when they land; a NaN stops the run there.
                landed = readback.poll()
                if landed is not None:
                    self._landed(landed, stat, epoch)
                if not readback.busy:
                    readback.start(self.loss_total.reshape(1), stat.loss_pairs)
                    self.loss_total.zero_()
                now = time.perf_counter()
                if progress is not None and now - reported >= 0.5 and self._recent == self._recent:
                    progress(stat.words, stats, self._recent)
                    reported = now
        finally:
            if self.cuda:
                torch.cuda.current_stream().wait_stream(self.stream)
            if pending is not None:  # drawn but not trained: hand it back (an error stopped the loop)
                todo.append(pending[0])
        # The epoch's losses are whole when the strategy returns.
        landed = readback.poll(wait=True)
        if landed is not None:
            self._landed(landed, stat, epoch)
        readback.start(self.loss_total.reshape(1), stat.loss_pairs)
        self.loss_total.zero_()
        self._landed(readback.poll(wait=True), stat, epoch)

    def _landed(self, landed, stat: WorkerStats, epoch: int) -> None:
        """Count losses that came back: the pairs trained up to ``covered`` since the last ones."""
        (loss,), covered = landed
        check_loss(loss, epoch, self.plan.cfg)
        stat.loss_sum += loss
        if covered > self._covered:
            self._recent = loss / (covered - self._covered)
        self._covered = covered
