"""What every way of training shares: the interface the loop calls, and the loss check.

A strategy trains chunks of one epoch. The loop (:class:`w2v.trainer.Trainer`) owns the
bookkeeping written once for all of them: which chunks are left (``todo``, popped from
the end, so chunks go out in corpus order), when a checkpoint or a stop is due, the
epoch's totals, checkpoints and resuming. A strategy owns how a chunk becomes updates:
threads, a compiled kernel, several processes, or a GPU.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Protocol

from w2v.state import TrainingDiverged, TrainState, WorkerStats

# progress(words, stats, recent_loss): words of this epoch so far, per-worker stats, the
# mean loss of the pairs measured since the last call.
Progress = Optional[Callable[[int, List[WorkerStats], float], None]]


class Loop(Protocol):
    """What a strategy may ask of the loop that runs it."""

    stop_signal: Optional[int]  # set by a signal handler (or another rank): stop at a boundary
    stop_agreed: Optional[int]  # over several processes: the stop every rank agreed on at the last boundary
    global_step: int

    def due(self, epoch: int, index: int) -> bool:
        """Whether to stop handing out chunks before chunk ``index``: a checkpoint or a stop is due."""

    def chunk_trained(self, epoch: int, index: int) -> None:
        """Chunk ``index``'s updates are in the tables (called by strategies with ``chunk_hook``)."""


class Strategy:
    """One way of running the training step over chunks.

    Attributes:
        name: what the run reports (``"cpu-kernel"``, ``"threads"``, ``"ranks"``, ``"replicas"``, ``"triton"``).
        num_workers: how many :class:`WorkerStats` the loop keeps for it.
        chunk_hook: it trains one chunk at a time, in the order taken, and calls
            ``loop.chunk_trained`` after each from the thread that trains, while no other
            thread writes the tables (data-parallel replicas merge there).
    """

    name = "?"
    num_workers = 1
    chunk_hook = False

    def run(self, loop: Loop, epoch: int, todo: List[int], stats: List[WorkerStats], progress: Progress) -> None:
        """Train chunks popped from ``todo`` until it is empty or ``loop.due`` says stop.

        On return every chunk taken is finished, so the finished chunks are a prefix of the
        epoch; ``stats`` hold what was done (words, pairs, measured losses).
        """
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def shared_state(self, state: TrainState) -> TrainState:
        """The state a checkpoint holds (over several processes, a collective: every rank calls it)."""
        return state

    def measures(self) -> Dict[str, object]:
        """What this process measured of the way it trained, for ``metrics.json`` (``{}`` when nothing)."""
        return {}

    def traffic(self, global_step: int) -> Dict[str, float]:
        """What the processes sent each other (a collective over several processes); ``{}`` in one."""
        return {}


def check_loss(loss: float, epoch: int, cfg) -> None:
    """Raise :class:`TrainingDiverged` naming the fix when a measured loss is NaN or infinite."""
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"the loss became {loss} in epoch {epoch + 1}; lower train.lr "
            f"(now {cfg.lr}) or train.batch_size (now {cfg.batch_size})"
        )
