"""Hogwild! threads: each takes whole chunks, draws their pairs and trains them on its own.

Several worker threads each take a chunk, draw its pairs and update the shared tables
without locks (Hogwild!, Recht et al. 2011, as word2vec.c and gensim do): with the torch
step (:class:`~w2v.model.SGNSStep`, single-threaded torch ops, which release the GIL; on 2
cores this beat torch's own OpenMP threads, which also collapse when another process is
busy on a core), or with the compiled kernel on one thread each (``train.deterministic=false``:
no barriers between threads, so more cores add speed, but the result depends on timing).
With one worker a run is bitwise reproducible. On a GPU without Triton, one worker feeds
the torch step.
"""

from __future__ import annotations

import threading
import time
from typing import List

import torch

from w2v.batching import batches
from w2v.chunks import ChunkPlan
from w2v.model import FusedSGNS, SGNSStep, SkipGramNS
from w2v.state import WorkerStats
from w2v.strategies.base import Loop, Progress, Strategy, check_loss
from w2v.strategies.cpu_kernel import run_fused_chunk


def torch_step(model: SkipGramNS, cfg) -> SGNSStep:
    """A torch step with the run's batch and hot-row settings."""
    return SGNSStep(
        model, cfg.batch_size, cfg.shared_negatives, cfg.negatives,
        hot_rows=cfg.hot_rows, cap=cfg.hot_rows_cap, trust=cfg.hot_rows_trust, sub_batch=cfg.sub_batch,
    )


def run_chunk(plan: ChunkPlan, epoch: int, index: int, pairs, step: SGNSStep, stats: WorkerStats) -> None:
    """Train one chunk's drawn ``pairs`` batch by batch; one host sync (its loss) per chunk."""
    cfg = plan.cfg
    a, b = plan.bounds[index]
    centers, contexts, noise = pairs
    per_batch = cfg.batch_size // cfg.shared_negatives
    # Measured losses add up on the device: one host sync per chunk, none per step.
    summed = torch.zeros((), dtype=torch.float64, device=centers.device)
    for j, (c, x) in enumerate(batches(centers, contexts, cfg.batch_size, cfg.shared_negatives)):
        lr = plan.batch_lr(epoch, index, j, centers.numel())
        negs = noise[j * per_batch : j * per_batch + c.numel() // cfg.shared_negatives]
        measure = j % cfg.log_every == 0
        loss = step(x, c, negs, lr, with_loss=measure)
        if measure:
            summed += loss
            stats.loss_pairs += c.numel()
        stats.pairs += c.numel()
        stats.lr = lr
    chunk_loss = float(summed)
    check_loss(chunk_loss, epoch, cfg)  # the first batch of a chunk is always measured
    stats.loss_sum += chunk_loss
    stats.words += b - a


def _run_fused_chunk(plan: ChunkPlan, epoch: int, index: int, pairs, step: FusedSGNS, stats: WorkerStats) -> None:
    before = stats.loss_sum
    run_fused_chunk(plan, epoch, index, pairs, step, stats)
    check_loss(stats.loss_sum - before, epoch, plan.cfg)


class Threads(Strategy):
    """``workers`` threads, each taking whole chunks and running its own step on them.

    Args:
        kernel: each thread runs the compiled CPU kernel on one thread (else the torch step).
    """

    name = "threads"

    def __init__(self, model: SkipGramNS, plan: ChunkPlan, workers: int, kernel: bool = False) -> None:
        self.model, self.plan, self.num_workers, self.kernel = model, plan, workers, kernel
        if kernel:
            self.name = "kernel-threads"
            plan.c_windows = True

    def describe(self) -> str:
        if self.kernel:
            return f"CPU kernel, {self.num_workers} Hogwild thread(s)"
        return f"torch step, {self.num_workers} thread(s)" if self.plan.device.type == "cpu" else "torch step"

    def _step(self):
        """This thread's step and the function that trains a chunk with it."""
        if self.kernel:
            return FusedSGNS(self.model, self.plan.cfg.shared_negatives, 1), _run_fused_chunk
        return torch_step(self.model, self.plan.cfg), run_chunk

    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        plan = self.plan
        lock = threading.Lock()
        stop = threading.Event()
        errors: List[BaseException] = []

        def work(w: int) -> None:
            try:
                step, train = self._step()
                gen = torch.Generator(device=plan.device)
                while not stop.is_set():
                    with lock:
                        if not todo or loop.due(epoch, todo[-1]):
                            return
                        index = todo.pop()
                    began = time.perf_counter()
                    pairs = plan.pairs(epoch, index, gen)
                    stats[w].spent("batch generation", time.perf_counter() - began)
                    train(plan, epoch, index, pairs, step, stats[w])
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)
                stop.set()

        threads_before = torch.get_num_threads()
        if plan.device.type == "cpu":
            torch.set_num_threads(1)
        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(self.num_workers)]
        for t in threads:
            t.start()
        try:
            last_loss = (0.0, 0)
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(timeout=0.5)
                loss_sum = sum(s.loss_sum for s in stats)
                loss_pairs = sum(s.loss_pairs for s in stats)
                if loss_pairs > last_loss[1] and progress is not None and not errors:
                    recent = (loss_sum - last_loss[0]) / (loss_pairs - last_loss[1])
                    progress(sum(s.words for s in stats), stats, recent)
                last_loss = (loss_sum, loss_pairs)
        except BaseException:  # a second Ctrl-C or SIGTERM: abort after the chunks in flight
            stop.set()
            raise
        finally:
            for t in threads:
                t.join()
            torch.set_num_threads(threads_before)
        if errors:
            raise errors[0]
