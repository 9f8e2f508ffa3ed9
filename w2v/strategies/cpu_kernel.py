"""The compiled CPU kernel: chunks applied one at a time, in corpus order, on ``workers`` threads.

One kernel call (:class:`~w2v.model.FusedSGNS`) trains every batch of a chunk, split among
the kernel's own threads so that each row is written by one thread in pair order: the
result does not depend on the thread count, so a CPU run is bitwise reproducible, and the
count can change from chunk to chunk: :class:`~w2v.strategies.team.TeamSize` runs a chunk on
fewer threads while fewer measure faster. A Python thread draws the next chunk's pairs
(window pairs from the C loop) meanwhile.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import List

import numpy as np
import torch

from w2v.chunks import ChunkPlan
from w2v.kernel import PHASES
from w2v.model import FusedSGNS, SkipGramNS
from w2v.state import WorkerStats
from w2v.strategies.base import Loop, Progress, Strategy, check_loss
from w2v.strategies.team import TeamSize


def run_fused_chunk(plan: ChunkPlan, epoch: int, index: int, pairs, step: FusedSGNS, stats: WorkerStats) -> None:
    """Every batch of a chunk's drawn ``pairs`` in one kernel call."""
    cfg = plan.cfg
    a, b = plan.bounds[index]
    centers, contexts, noise = pairs
    total = centers.numel()
    usable = total - total % cfg.shared_negatives  # as `batches` drops the last partial group
    if usable:
        nb = -(-usable // cfg.batch_size)
        lrs = [plan.batch_lr(epoch, index, j, total) for j in range(nb)]
        measure = [j % cfg.log_every == 0 for j in range(nb)]
        before = step.phase_seconds.copy()
        losses = step(contexts[:usable], centers[:usable], noise[: usable // cfg.shared_negatives], cfg.batch_size, lrs, measure)
        for part, seconds in zip(PHASES, step.phase_seconds - before):
            stats.spent(part, seconds)
        sizes = np.minimum(cfg.batch_size, usable - np.arange(nb) * cfg.batch_size)
        stats.loss_sum += float(losses[measure].sum())
        stats.loss_pairs += int(sizes[measure].sum())
        stats.pairs += usable
        stats.lr = lrs[-1]
    stats.words += b - a


class CpuKernel(Strategy):
    """The compiled kernel fed by a drawing thread, one chunk ahead."""

    name = "cpu-kernel"
    chunk_hook = True

    def __init__(self, model: SkipGramNS, plan: ChunkPlan, threads: int) -> None:
        self.model, self.plan, self.threads = model, plan, threads
        plan.c_windows = True
        self.step = FusedSGNS(model, plan.cfg.shared_negatives, threads)
        self.team = TeamSize(threads, adapt=plan.cfg.adapt_workers)

    def describe(self) -> str:
        fewer = " (fewer while fewer measure faster)" if len(self.team.sizes) > 1 else ""
        return f"CPU kernel, {self.threads} thread(s){fewer}"

    def measures(self) -> dict:
        return {"kernel_threads": self.team.summary(), "kernel_threads_changes": self.team.changes}

    def _run_chunk(self, epoch: int, index: int, pairs, stats: WorkerStats) -> None:
        self.step.threads = size = self.team.next()
        pairs_before, began = stats.pairs, time.perf_counter()
        run_fused_chunk(self.plan, epoch, index, pairs, self.step, stats)
        self.team.record(size, stats.pairs - pairs_before, time.perf_counter() - began)

    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        """The drawing thread hands out the chunks, so it is the one that stops when a
        checkpoint is due; the chunk it has drawn is still applied, which keeps the finished
        chunks a prefix."""
        plan = self.plan
        ready: "queue.Queue" = queue.Queue(maxsize=1)
        stop = threading.Event()
        errors: List[BaseException] = []
        drawer_stats = WorkerStats()

        def draw() -> None:
            gen = torch.Generator()
            try:
                while not stop.is_set() and todo and not loop.due(epoch, todo[-1]):
                    index = todo.pop()
                    began = time.perf_counter()
                    pairs = plan.pairs(epoch, index, gen)
                    drawer_stats.spent("batch generation", time.perf_counter() - began)
                    while not stop.is_set():
                        try:
                            ready.put((index, pairs), timeout=0.1)
                            break
                        except queue.Full:
                            pass
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)
            finally:
                ready.put(None)

        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        drawer = threading.Thread(target=draw, daemon=True)
        drawer.start()
        stat = stats[0]
        reported = (time.perf_counter(), stat.loss_sum, stat.loss_pairs)
        try:
            while True:
                item = ready.get()
                if item is None:
                    break
                index, pairs = item
                before = stat.loss_sum
                self._run_chunk(epoch, index, pairs, stat)
                check_loss(stat.loss_sum - before, epoch, plan.cfg)
                loop.chunk_trained(epoch, index)
                now = time.perf_counter()
                if progress is not None and now - reported[0] >= 0.5 and stat.loss_pairs > reported[2]:
                    recent = (stat.loss_sum - reported[1]) / (stat.loss_pairs - reported[2])
                    progress(stat.words, stats, recent)
                    reported = (now, stat.loss_sum, stat.loss_pairs)
        finally:
            stop.set()
            while drawer.is_alive():  # unblock a drawer waiting on the full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    pass
                drawer.join(timeout=0.05)
            torch.set_num_threads(threads_before)
            for part, seconds in drawer_stats.profile.items():
                stat.spent(part, seconds)
        if errors:
            raise errors[0]
