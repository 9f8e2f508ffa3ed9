"""Where training stands and what stops it: the schedule, a run's state and results.

:class:`TrainState` is a position in training at a chunk boundary, all a checkpoint needs
besides the tables; :class:`FitResult` and :class:`WorkerStats` count what a call or a
worker did; :class:`TrainingDiverged` and :class:`TrainingInterrupted` end a run.
The loop itself is :mod:`w2v.trainer`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List

import torch


def learning_rate(position: float, total: float, lr: float, min_lr: float) -> float:
    """Linear decay from ``lr`` to ``min_lr`` over ``total`` words, as word2vec.

    >>> round(learning_rate(50, 100, 0.025, 0.0005), 6), learning_rate(200, 100, 0.025, 0.0005)
    (0.01275, 0.0005)
    """
    return max(min_lr, lr - (lr - min_lr) * position / total)


def chunk_seed(seed: int, epoch: int, chunk: int) -> int:
    """A generator seed for one chunk of one epoch (SplitMix-style mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + chunk * 0x94D049BB133111EB) % (1 << 64)
    x ^= x >> 31
    return x % (1 << 63)


def all_finite(table: torch.Tensor, block_bytes: int = 1 << 26) -> bool:
    """Whether every value of ``table`` is finite, checked in row blocks.

    ``torch.isfinite`` on the whole table would take ~1.25x its size in temporaries
    (``abs`` and two masks): 4.5 GB more for a 3M x 300 table.
    """
    rows = max(1, block_bytes // max(table[0].numel() * table.element_size(), 1)) if table.numel() else 1
    return all(bool(torch.isfinite(table[a : a + rows]).all()) for a in range(0, table.shape[0], rows))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped at a chunk boundary because :meth:`Trainer.request_stop` was called.

    Attributes:
        signum: the signal that asked for the stop (``signal.SIGINT``...), or 0.
        state: where training stopped (already given to the checkpoint callback).
    """

    def __init__(self, signum: int, state: "TrainState") -> None:
        super().__init__(f"training stopped by signal {signum} after {state.words:,} words")
        self.signum, self.state = signum, state


@dataclass
class TrainState:
    """Where training stands at a chunk boundary: with the two tables, all that resuming needs.

    No RNG state: every draw of a chunk comes from a generator seeded by ``(seed, epoch,
    chunk)`` and the learning rate is a function of the corpus position.
    """

    epoch: int = 0  # the epoch under way (== epochs when training is done)
    chunks_done: int = 0  # chunks 0..chunks_done-1 of ``epoch`` are finished, the rest are not
    words: int = 0  # corpus position: epoch * corpus_tokens + words of the finished chunks
    corpus_tokens: int = 0  # what the position refers to; a resumed run must match
    chunk_tokens: int = 0
    epoch_pairs: int = 0  # the epoch's progress so far, so its loss comes out whole
    epoch_loss_sum: float = 0.0
    epoch_loss_pairs: int = 0
    epoch_losses: List[float] = field(default_factory=list)  # mean loss of each finished epoch
    finished: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainState":
        """The state saved by :meth:`to_dict` (unknown keys are ignored).

        Raises:
            ValueError: a key is missing.
        """
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(
                f"the checkpoint's training state lacks {', '.join(missing)}: it was written by an older w2v "
                "and cannot be resumed; start without train.resume"
            )
        return cls(**{n: values[n] for n in names})


@dataclass
class WorkerStats:
    words: int = 0  # raw corpus tokens done (before subsampling), this epoch
    pairs: int = 0
    loss_sum: float = 0.0  # summed loss over the measured batches
    loss_pairs: int = 0
    lr: float = 0.0
    profile: Dict[str, float] = field(default_factory=dict)  # seconds by part of the work

    def spent(self, part: str, seconds: float) -> None:
        self.profile[part] = self.profile.get(part, 0.0) + seconds


@dataclass
class FitResult:
    words: int = 0
    pairs: int = 0
    seconds: float = 0.0
    loss: float = float("nan")  # mean per-pair loss of the last epoch's measured batches
    epoch_losses: List[float] = field(default_factory=list)
    # Seconds by part of the work, summed over threads: "batch generation" (subsampling,
    # windows, negatives), then the step's parts ("gradients" and "updates" for the
    # kernel, see w2v.kernel.PHASES; "step" for the torch step).
    profile: Dict[str, float] = field(default_factory=dict)

    @property
    def words_per_sec(self) -> float:
        return self.words / max(self.seconds, 1e-9)
