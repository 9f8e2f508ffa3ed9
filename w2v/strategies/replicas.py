"""Several processes, each with both whole tables, merging what they changed (``torchrun``).

Data parallelism with infrequent synchronisation, as the fast distributed word2vec
trainers do (Ji et al. 2016; Spark's word2vec averages per-partition models): each rank
holds a plain local :class:`~w2v.model.SkipGramNS` and trains its share of the corpus
with the step a single process would run (the compiled CPU kernel, the torch step, the
Triton step on a GPU), and the ranks merge their changes (:class:`~w2v.replica_sync.ReplicaSync`).

The corpus goes out in rounds of one chunk per rank (chunk ``i`` to rank ``i % N``; one
per worker thread when the local strategy runs threads that each train their own chunks),
with the same draws a single process would make. After each round the ranks merge the rows of
the most frequent words (ids are frequency ranks, so a prefix of each table), rarer words'
rows less often, and every row at the end of each period of ``train.merge_every_words``
corpus words (:meth:`Replicas.merge_rows`). Where merges fall depends only on the corpus
position, never on timing, so a run is reproducible; checkpoints and stops land at the
end of a period, where the replicas are equal, so a checkpoint is one whole-table file
(rank 0 writes it) that resumes exactly, in any number of processes.

Before each period one small all-reduce agrees on whether a checkpoint or a stop is due
on any rank. A local strategy that trains one chunk at a time (the CPU kernel) runs a
whole period in one call and merges from its chunk hook (``Loop.chunk_trained``), so its
drawing thread keeps drawing while the ranks merge; others run one round per call.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Dict, List, Optional

import torch

from w2v import budget, parallel
from w2v.chunks import ChunkPlan
from w2v.model import SkipGramNS
from w2v.replica_sync import ReplicaSync
from w2v.state import TrainState, WorkerStats
from w2v.strategies.base import Loop, Progress, Strategy

TIER = 4  # each tier of rows merges TIER times less often than the one before, and is TIER times larger
_RANK_SUMS = ("epoch_pairs", "epoch_loss_sum", "epoch_loss_pairs")  # TrainState fields each rank counts alone


class _Between:
    """The loop as the local strategy sees it inside a period: nothing is due; a chunk trained may end a round."""

    stop_signal = None

    def __init__(self, loop: Loop, replicas: "Replicas") -> None:
        self.loop, self.replicas = loop, replicas

    @property
    def global_step(self) -> int:
        return self.loop.global_step

    @global_step.setter
    def global_step(self, value: int) -> None:
        self.loop.global_step = value

    def due(self, epoch: int, index: int) -> bool:
        return False

    def chunk_trained(self, epoch: int, index: int) -> None:
        self.replicas.rounds_done(index // self.replicas.round_chunks + 1)


class Replicas(Strategy):
    """One rank of a data-parallel run: a local strategy on whole tables, merged by round.

    Args:
        model: this rank's local tables (the same on every rank when training starts).
        plan: the chunks (a resolved config).
        local: the strategy a single process would run on ``model``.
        rank, world_size: this process's place in the run.
    """

    name = "replicas"

    def __init__(self, model: SkipGramNS, plan: ChunkPlan, local: Strategy, rank: int, world_size: int) -> None:
        cfg = plan.cfg
        self.model, self.plan, self.local, self.rank, self.world_size = model, plan, local, rank, world_size
        self.num_workers = local.num_workers
        # Rounds of one chunk per rank (per thread for threads that each train their own);
        # every row merges at least every `full` rounds.
        self.round_chunks = world_size * (1 if local.chunk_hook else local.num_workers)
        self.full = max(1, -(-cfg.merge_every_words // (cfg.chunk_tokens * self.round_chunks)))
        self.rounds = -(-len(plan) // self.round_chunks)  # per epoch, the last may be partial
        self.num_rows = model.input.num_embeddings
        with parallel.peer_failures("setting up the merges"):
            self.sync = ReplicaSync([*model.input.shards, *model.output.shards], cfg.merge)
        # Wall seconds of this rank by part: its own chunks, the merges' all-reduces (which
        # wait for the slowest rank), the merges' own arithmetic, agreeing on stops.
        self.seconds = dict.fromkeys(("train", "all-reduce", "merge", "agree"), 0.0)
        self._period: Optional[dict] = None  # what rounds_done needs: the loop's todo, stats, progress...
        self._merging = 0.0  # seconds merging inside the current period

    def describe(self) -> str:
        cfg = self.plan.cfg
        words = self.full * self.round_chunks * cfg.chunk_tokens
        hot = f", the {cfg.merge_hot_rows:,} most frequent words' rows every round" if cfg.merge_hot_rows else ""
        return (f"{self.local.describe()} on each of {self.world_size} replicas, merged ({cfg.merge}) "
                f"every {words:,} words{hot}")

    def merge_rows(self, r: int) -> int:
        """Rows merged after round ``r`` of an epoch: a prefix of the tables (ids are frequency ranks).

        All of them at the end of a period of ``full`` rounds and of the epoch; between,
        the ``H = merge_hot_rows`` most frequent words' rows every round, the ``4 H`` most
        frequent every 4 rounds, ``16 H`` every 16...: a row's merges are about as far apart
        as its updates are rare, so no row goes through many updates unmerged (Ji et al.
        2016 tie a word's synchronisation to its frequency the same way).
        """
        if (r + 1) % self.full == 0 or r + 1 == self.rounds:
            return self.num_rows
        rows, every = self.plan.cfg.merge_hot_rows, 1
        while rows and rows < self.num_rows and (r + 1) % (every * TIER) == 0:
            rows, every = rows * TIER, every * TIER
        return min(rows, self.num_rows)

    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        with parallel.peer_failures(f"training epoch {epoch + 1}"):
            try:
                self._run(loop, epoch, todo, stats, progress)
            finally:
                self._period = None

    def _run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        plan, world, rank, size = self.plan, self.world_size, self.rank, self.round_chunks
        if self.sync.base is None:  # the tables as they start (fresh, or restored from a checkpoint)
            self.sync.snapshot()
        between = _Between(loop, self)
        stat = stats[0]
        reported = [time.perf_counter(), stat.loss_sum, stat.loss_pairs]  # the last progress report
        while todo:
            # A period: the rounds up to the next merge of every row, where checkpoints and stops land.
            first = todo[-1]
            end = min((first // size // self.full + 1) * self.full, self.rounds)  # its last round + 1
            signum = loop.stop_signal or 0
            began = time.perf_counter()
            due, signum = parallel.all_reduce([loop.due(epoch, first), signum], "max", plan.device)
            self.seconds["agree"] += time.perf_counter() - began
            if signum and loop.stop_signal is None:  # another rank was asked to stop: all stop
                loop.stop_signal = int(signum)
            loop.stop_agreed = int(signum) or None  # what the loop stops on: every rank read the same
            if due:
                return
            self._period = dict(todo=todo, stats=stats, progress=progress, reported=reported, round=first // size, end=end)
            mine = [i for i in range(min(end * size, len(plan)) - 1, first - 1, -1) if i % world == rank]
            self._skip_rounds_without_mine(mine)
            began, self._merging = time.perf_counter(), 0.0
            if self.local.chunk_hook:  # the whole period in one call; rounds end in the hook
                self.local.run(between, epoch, mine, stats, None)
            while mine:  # one round per call
                index = mine[-1]
                chunks = [i for i in mine if i // size == index // size]
                del mine[-len(chunks):]
                self.local.run(between, epoch, chunks, stats, None)
                between.chunk_trained(epoch, index)
            self.seconds["train"] += time.perf_counter() - began - self._merging
            self._skip_rounds_without_mine(mine)
            assert self._period["round"] == end, "a round of the period was not merged"

    def _skip_rounds_without_mine(self, mine: List[int]) -> None:
        """Merge the rounds, from the current one, that hold no chunk of this rank (cut short by a resume or the epoch's end)."""
        period = self._period
        upto = mine[-1] // self.round_chunks if mine else period["end"]
        if upto > period["round"]:
            self.rounds_done(upto)

    def rounds_done(self, upto: int) -> None:
        """Merge after every round before ``upto`` not yet merged, and count them done (a collective)."""
        p, plan, world, size = self._period, self.plan, self.world_size, self.round_chunks
        stat, todo = p["stats"][0], p["todo"]
        began = time.perf_counter()
        for r in range(p["round"], upto):
            a, b = max(r * size, todo[-1]), min((r + 1) * size, len(plan))
            merged = self.sync.merge(self.merge_rows(r))
            stat.spent("merge: all-reduce (waits for the slowest rank)", merged.reduce)
            stat.spent("merge: deltas and bases", merged.seconds - merged.reduce)
            self.seconds["all-reduce"] += merged.reduce
            self.seconds["merge"] += merged.seconds - merged.reduce
            del todo[-(b - a):]
            # The loop counts the epoch's words over all ranks: add the other ranks' chunks.
            stat.words += sum(plan.bounds[i][1] - plan.bounds[i][0] for i in range(a, b) if i % world != self.rank)
        p["round"] = max(p["round"], upto)
        self._merging += time.perf_counter() - began
        now, reported = time.perf_counter(), p["reported"]
        if p["progress"] is not None and now - reported[0] >= 0.5 and stat.loss_pairs > reported[2]:
            recent = (stat.loss_sum - reported[1]) / (stat.loss_pairs - reported[2])
            p["progress"](sum(s.words for s in p["stats"]), p["stats"], recent)
            reported[:] = [now, stat.loss_sum, stat.loss_pairs]

    def shared_state(self, state: TrainState) -> TrainState:
        """The state a checkpoint holds: the loss totals summed over the ranks (a collective)."""
        with parallel.peer_failures("taking a checkpoint"):
            sums = parallel.all_reduce([getattr(state, k) for k in _RANK_SUMS], "sum", self.plan.device)
        return replace(state, **{k: type(getattr(state, k))(v) for k, v in zip(_RANK_SUMS, sums)})

    def measures(self) -> Dict[str, object]:
        return self.local.measures()

    def traffic(self, global_step: int) -> Dict[str, float]:
        """What the merges cost on this rank: their number, bytes all-reduced per merge, seconds."""
        merges = max(self.sync.merges, 1)
        return {
            "distributed": "replicas",
            "merge_transport": self.sync.transport,
            "merges": self.sync.merges,
            "merge_bytes": self.sync.sent_bytes / merges,
            "merge_rows": self.sync.merged_rows / merges,
            "merge_seconds": self.seconds["all-reduce"] + self.seconds["merge"],
            "rank_seconds": {part: round(seconds, 3) for part, seconds in self.seconds.items()},
        }


def cores_per_process() -> int:
    """The cores of this machine over the processes ``torchrun`` started on it (``LOCAL_WORLD_SIZE``)."""
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    return max(1, (os.cpu_count() or 1) // (int(local) if local.isdigit() and int(local) > 0 else 1))


def sharded_tables(cfg, device: torch.device, world: int, vocab_size: int, corpus_tokens: int) -> bool:
    """Whether the run spreads its tables over the ranks (``train.distributed``), after checking it fits.

    ``auto`` gives every rank whole tables (replicas) when they fit on every rank, and
    spreads them otherwise; all ranks agree (one small all-reduce).

    Raises:
        ValueError: the chosen layout does not fit in memory (the message names the key to lower).
    """
    mode = cfg.train.distributed
    if world == 1:
        budget.check_run(cfg, device, 1, vocab_size, corpus_tokens)
        return False
    if mode == "auto":
        plan = budget.plan_for(cfg, device, world, vocab_size, corpus_tokens, replicas=True)
        misfit = budget.refusal(plan, budget.available(device), str(device)) is not None
        with parallel.peer_failures("choosing where the tables live"):
            (misfit,) = parallel.all_reduce([misfit], "max", device)
        mode = "sharded" if misfit else "replicas"
    budget.check_run(cfg, device, world, vocab_size, corpus_tokens, replicas=mode == "replicas")
    return mode == "sharded"

