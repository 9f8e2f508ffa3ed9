"""Several processes whose tables are spread over the ranks (``torchrun``).

Chunks go out in rounds: in a round of ``N`` ranks, rank ``k`` trains the round's ``k``-th
chunk, drawn from the same seeds as in a single process. Every step is a collective (the
layer's exchanges), so the ranks take the same number of steps: one small all-reduce per
round agrees on the round's largest batch count, ranks with fewer batches step with empty
ones, and the same all-reduce carries whether a checkpoint or a stop is due on any rank.
Rounds finish whole, so the finished chunks stay a prefix.
"""

from __future__ import annotations

import time
from typing import Dict, List

import torch

from w2v import parallel
from w2v.chunks import ChunkPlan
from w2v.model import SkipGramNS
from w2v.state import WorkerStats
from w2v.strategies.base import Loop, Progress, Strategy, check_loss
from w2v.strategies.threads import torch_step


class Ranks(Strategy):
    """One rank of a row-sharded run: the torch step, one thread, collectives every step."""

    name = "ranks"

    def __init__(self, model: SkipGramNS, plan: ChunkPlan, rank: int, world_size: int) -> None:
        self.model, self.plan, self.rank, self.world_size = model, plan, rank, world_size

    def describe(self) -> str:
        return f"torch step, rank {self.rank} of {self.world_size}, tables sharded over the ranks"

    def traffic(self, global_step: int) -> Dict[str, float]:
        """Bytes the tables' exchanges sent per step, summed over the ranks (a collective)."""
        sent_bytes = self.model.input.sent_bytes + self.model.output.sent_bytes
        with parallel.peer_failures("summing the traffic"):
            sent, steps = parallel.all_reduce([sent_bytes, global_step], "sum", self.plan.device)
        return {"distributed": "sharded", "sent_bytes_per_step": sent / max(steps / self.world_size, 1)}

    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        with parallel.peer_failures(f"training epoch {epoch + 1}"):
            self._run(loop, epoch, todo, stats, progress)

    def _run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        plan, cfg, world, rank = self.plan, self.plan.cfg, self.world_size, self.rank
        device = plan.device
        step = torch_step(self.model, cfg)
        gen = torch.Generator(device=device)
        stat = stats[0]
        group, per_batch = cfg.shared_negatives, cfg.batch_size // cfg.shared_negatives
        empty = torch.empty(0, dtype=torch.int64, device=device)
        no_negatives = torch.empty(0, cfg.negatives, dtype=torch.int64, device=device)
        reported = time.perf_counter()
        while todo:
            chunks = todo[-world:][::-1]  # this round's, in corpus order
            due = loop.due(epoch, chunks[0])
            began = time.perf_counter()
            mine = chunks[rank] if rank < len(chunks) else None
            pairs = plan.pairs(epoch, mine, gen) if mine is not None else (empty, empty, no_negatives)
            stat.spent("batch generation", time.perf_counter() - began)
            usable = pairs[0].numel() - pairs[0].numel() % group
            signum = loop.stop_signal or 0
            steps, due, signum = parallel.all_reduce([-(-usable // cfg.batch_size), due, signum], "max", device)
            if signum and loop.stop_signal is None:  # another rank was asked to stop: all stop
                loop.stop_signal = int(signum)
            loop.stop_agreed = int(signum) or None  # what the loop stops on: every rank read the same
            if due:
                return
            del todo[-len(chunks):]
            began = time.perf_counter()
            centers, contexts, noise = pairs
            summed = torch.zeros((), dtype=torch.float64, device=device)  # one host sync per round
            for j in range(int(steps)):
                a, b = min(j * cfg.batch_size, usable), min((j + 1) * cfg.batch_size, usable)
                measure = b > a and j % cfg.log_every == 0
                lr = plan.batch_lr(epoch, mine, j, pairs[0].numel()) if mine is not None else stat.lr
                negs = noise[j * per_batch : j * per_batch + (b - a) // group] if b > a else no_negatives
                loss = step(contexts[a:b], centers[a:b], negs, lr, with_loss=measure)
                loop.global_step += 1
                if measure:
                    summed += loss
                    stat.loss_pairs += b - a
                stat.pairs += b - a
                stat.lr = lr
            chunk_loss = float(summed)
            stat.spent("step", time.perf_counter() - began)
            check_loss(chunk_loss, epoch, cfg)
            stat.loss_sum += chunk_loss
            stat.words += sum(plan.bounds[i][1] - plan.bounds[i][0] for i in chunks)  # the round's, all ranks'
            now = time.perf_counter()
            if progress is not None and now - reported >= 0.5 and stat.loss_pairs:
                progress(stat.words, stats, stat.loss_sum / stat.loss_pairs)
                reported = now
