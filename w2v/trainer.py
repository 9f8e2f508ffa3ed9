"""The training loop: chunks of the token stream, checkpoints, stops and progress, written once.

The corpus is cut into chunks (:class:`~w2v.chunks.ChunkPlan`); a strategy
(:mod:`w2v.strategies`) trains them: the compiled CPU kernel, torch threads, several
processes, or the fused Triton step on a GPU. Every random draw of a chunk comes from a
generator seeded by ``(seed, epoch, chunk)``, and the learning rate of a batch is a pure
function of its position in the corpus, so a run does not depend on which worker took
which chunk.

Checkpoints are taken at chunk boundaries: when one is due (``checkpoint_every_words``,
``checkpoint_every_minutes``, or a stop asked for by :meth:`Trainer.request_stop`), the
strategy stops taking chunks, the chunks in flight finish, and the checkpoint callback gets
a :class:`TrainState`. Chunks are handed out in order, so the finished ones are always the
first ``chunks_done`` of the epoch; with the tables, that position is all a resumed run
needs to continue exactly where this one stopped.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional

import torch

from . import parallel, strategies
from .chunks import ChunkPlan
from .model import SkipGramNS
from .state import (
    FitResult,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    WorkerStats,
    all_finite,
    learning_rate,
)

__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted", "TrainState", "FitResult", "learning_rate"]


class Trainer:
    """Trains a :class:`SkipGramNS` on an encoded token stream.

    Args:
        model: the tables, already on ``device``.
        tokens: frequency-rank ids of the corpus, ``(N,)`` (a numpy array or memory map).
        rank_to_id: vocabulary id of each rank, ``(T,)``.
        counts: corpus count of each vocabulary id, ``(V,)``.
        cfg: a :class:`~w2v.config.TrainConfig`.
        device: where the step runs.
        writer: optional TensorBoard ``SummaryWriter`` (only ``add_scalar`` is used).
    """

    def __init__(self, model: SkipGramNS, tokens, rank_to_id, counts, cfg, device, writer=None) -> None:
        self.model, self.device, self.writer = model, torch.device(device), writer
        self.rank, self.world_size = parallel.rank_and_size()  # sharded tables, or a replica on each rank
        kind = strategies.choose(cfg, model, self.device, self.world_size)
        self.cfg = strategies.resolve(cfg, kind, self.device, self.world_size > 1 and kind != "ranks")  # no ``auto`` left
        self.plan = ChunkPlan(tokens, rank_to_id, counts, self.cfg, self.device, on_device=self.device.type == "cuda")
        self.strategy = strategies.build(kind, model, self.plan, self.rank, self.world_size)
        self.num_tokens, self.total_words, self.chunks = self.plan.num_tokens, self.plan.total_words, self.plan.bounds
        self.num_workers = self.strategy.num_workers
        self.global_step = 0
        self.state = self._fresh_state()
        self._save: Optional[Callable[[TrainState], None]] = None
        self.stop_signal: Optional[int] = None
        # Over several processes, the stop the ranks agreed on at the last boundary: a signal
        # that lands on one rank after the agreement waits for the next one, or the ranks part.
        self.stop_agreed: Optional[int] = None
        self._last_checkpoint = (time.monotonic(), 0)  # (clock, corpus position)

    @property
    def fused(self) -> bool:
        """Whether the compiled CPU kernel trains this run."""
        return self.strategy.name == "cpu-kernel"

    def _fresh_state(self, epoch: int = 0, losses: Optional[List[float]] = None) -> TrainState:
        return TrainState(
            epoch=epoch,
            words=epoch * self.num_tokens,
            corpus_tokens=self.num_tokens,
            chunk_tokens=self.cfg.chunk_tokens,
            epoch_losses=list(losses or []),
            finished=epoch >= self.cfg.epochs,
        )

    def check_start(self, state: TrainState) -> None:
        """Raise ``ValueError`` naming the fix if ``state`` is not a position in this corpus."""
        if state.corpus_tokens != self.num_tokens:
            raise ValueError(
                f"train.resume: the checkpoint was taken on a corpus of {state.corpus_tokens:,} tokens but "
                f"data.corpus has {self.num_tokens:,}; resume with the data.corpus of the checkpoint's run"
            )
        if state.chunk_tokens != self.cfg.chunk_tokens:
            raise ValueError(
                f"train.resume: the checkpoint counts chunks of {state.chunk_tokens} tokens; "
                f"set train.chunk_tokens={state.chunk_tokens}"
            )
        if state.epoch < 0 or not 0 <= state.chunks_done < len(self.chunks):
            raise ValueError(
                f"train.resume: the checkpoint's position (epoch {state.epoch}, chunk {state.chunks_done}) "
                "is not in this corpus; resume with the data.corpus of the checkpoint's run"
            )

    def request_stop(self, signum: int = 0) -> None:
        """Stop at the next chunk boundary: checkpoint, then raise :class:`TrainingInterrupted`.

        Safe to call from a signal handler: it only sets a flag that is read before the
        next chunk is handed out.
        """
        self.stop_signal = signum

    # -- checkpoints -------------------------------------------------------------------
    def due(self, epoch: int, index: int) -> bool:
        """Whether to stop handing out chunks before chunk ``index``: a stop or a checkpoint is due."""
        if self.stop_signal is not None:
            return True
        if self._save is None:
            return False
        position = epoch * self.num_tokens + self.chunks[index][0]
        every_words = self.cfg.checkpoint_every_words
        # Words-based checkpoints fall on the first boundary past each multiple of N: the
        # same boundaries in every run, whatever the workers and wherever it was resumed.
        if every_words and position // every_words > self._last_checkpoint[1] // every_words:
            return True
        minutes = self.cfg.checkpoint_every_minutes
        # At least one chunk between two checkpoints, however short the interval.
        moved = position > self._last_checkpoint[1]
        return bool(minutes) and moved and time.monotonic() - self._last_checkpoint[0] >= minutes * 60

    def chunk_trained(self, epoch: int, index: int) -> None:
        """Nothing to do between two chunks in one process (see :class:`~w2v.strategies.Loop`)."""

    def _checkpoint(self, epoch: int) -> None:
        """Hand the state to the checkpoint callback; the workers are all stopped."""
        tables = list(self.model.input.shards) + list(self.model.output.shards)
        if not all(all_finite(t) for t in tables):  # never overwrite a good checkpoint
            raise TrainingDiverged(
                f"the vectors became NaN or infinite in epoch {epoch + 1}; lower train.lr "
                f"(now {self.cfg.lr}) or train.batch_size (now {self.cfg.batch_size})"
            )
        if self._save is not None:
            self._save(self.strategy.shared_state(self.state))
        self._last_checkpoint = (time.monotonic(), self.state.words)

    # -- one epoch -------------------------------------------------------------------
    def run_epoch(self, epoch: int, progress=None) -> FitResult:
        """Train one pass over the corpus, from ``self.state`` if it is a position in this epoch.

        ``progress`` is called with ``(words, stats, recent_loss)``; the result counts the
        words and pairs trained by this call, and the loss of the whole epoch.

        Raises:
            TrainingInterrupted: :meth:`request_stop` was called (after the checkpoint).
            TrainingDiverged: the loss or the tables became NaN or infinite.
        """
        if self.state.epoch != epoch:
            self.state = self._fresh_state(epoch, self.state.epoch_losses)
        state = self.state
        todo = list(range(len(self.chunks) - 1, state.chunks_done - 1, -1))
        stats = [WorkerStats() for _ in range(self.num_workers)]
        # The epoch's totals so far start the first worker's counters, so a resumed epoch
        # sums its losses in the order of an uninterrupted one (the same mean, bitwise).
        resumed = WorkerStats(
            words=self.chunks[state.chunks_done][0] if state.chunks_done else 0,
            pairs=state.epoch_pairs,
            loss_sum=state.epoch_loss_sum,
            loss_pairs=state.epoch_loss_pairs,
        )
        stats[0] = WorkerStats(**{k: getattr(resumed, k) for k in ("words", "pairs", "loss_sum", "loss_pairs")})
        started = time.perf_counter()
        while True:
            self.strategy.run(self, epoch, todo, stats, progress)
            done = len(self.chunks) - len(todo)
            state.chunks_done = done
            state.words = epoch * self.num_tokens + (self.chunks[done][0] if todo else self.num_tokens)
            state.epoch_pairs = sum(s.pairs for s in stats)
            state.epoch_loss_sum = sum(s.loss_sum for s in stats)
            state.epoch_loss_pairs = sum(s.loss_pairs for s in stats)
            if not todo:
                break
            self._checkpoint(epoch)  # todo is left only when a checkpoint or a stop is due
            stop = self.stop_signal if self.world_size == 1 else self.stop_agreed
            if stop is not None:
                raise TrainingInterrupted(stop, state)
        loss_sum, loss_pairs = state.epoch_loss_sum, state.epoch_loss_pairs
        if self.world_size > 1:  # each rank measured its own pairs
            with parallel.peer_failures(f"ending epoch {epoch + 1}"):
                loss_sum, loss_pairs = parallel.all_reduce([loss_sum, loss_pairs], "sum", self.device)
        loss = loss_sum / max(loss_pairs, 1)
        self.state = self._fresh_state(epoch + 1, state.epoch_losses + [loss])
        return FitResult(
            words=sum(s.words for s in stats) - resumed.words,
            pairs=state.epoch_pairs - resumed.pairs,
            seconds=time.perf_counter() - started,
            loss=loss,
            profile={part: sum(s.profile.get(part, 0.0) for s in stats) for part in {k for s in stats for k in s.profile}},
        )

    def fit(
        self,
        on_epoch_end: Optional[Callable[[int, FitResult], None]] = None,
        progress=None,
        checkpoint: Optional[Callable[[TrainState], None]] = None,
        start: Optional[TrainState] = None,
    ) -> FitResult:
        """Train up to ``cfg.epochs`` epochs.

        Args:
            on_epoch_end: ``on_epoch_end(epoch, result)`` runs after each epoch.
            progress: ``progress(epoch)`` returns the progress callback of an epoch.
            checkpoint: called with the :class:`TrainState` at the chunk boundaries where
                ``cfg.checkpoint_every_words`` or ``cfg.checkpoint_every_minutes`` says, and
                before stopping on :meth:`request_stop`; the tables are quiet meanwhile.
            start: a state saved by an earlier run, to continue from; the tables must
                already hold that run's values (see :func:`w2v.resume.restore_tables`).

        Returns:
            the words, pairs and seconds of this call, the loss of every epoch.
        """
        if start is not None:
            self.check_start(start)
            self.state = TrainState.from_dict(start.to_dict())
        self._save = checkpoint
        self._last_checkpoint = (time.monotonic(), self.state.words)
        total = FitResult(epoch_losses=list(self.state.epoch_losses))
        if total.epoch_losses:
            total.loss = total.epoch_losses[-1]
        for epoch in range(self.state.epoch, self.cfg.epochs):
            result = self.run_epoch(epoch, progress=None if progress is None else progress(epoch))
            total.words += result.words
            total.pairs += result.pairs
            total.seconds += result.seconds
            total.loss = result.loss
            total.epoch_losses.append(result.loss)
            for part, seconds in result.profile.items():
                total.profile[part] = total.profile.get(part, 0.0) + seconds
            if on_epoch_end is not None:
                on_epoch_end(epoch, result)
        return total
