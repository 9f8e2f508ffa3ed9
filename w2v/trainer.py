"""The training loop: chunks of the token stream, worker threads, progress.

The corpus is cut into chunks of ``chunk_tokens`` tokens. A worker takes a chunk, maps
its frequency ranks to vocabulary ids, subsamples, draws window pairs, and runs
:class:`~w2v.model.SGNSStep` on consecutive batches. Every random draw of a chunk comes
from a generator seeded by ``(seed, epoch, chunk)``, and the learning rate of a batch
is a pure function of its position in the corpus, so a run does not depend on which
worker took which chunk; with one worker it is bitwise reproducible.

On CPU, several worker threads update the shared tables without locks (Hogwild!, Recht
et al. 2011, as word2vec.c and gensim do). Each runs single-threaded torch ops, which
release the GIL; on 2 cores this beat torch's own OpenMP threads, which also collapse
when another process is busy on a core. On a GPU one worker feeds the device.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from .batching import batches, subsample, window_pairs
from .model import SGNSStep, SkipGramNS
from .sampling import NoiseSampler, keep_probabilities


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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class WorkerStats:
    words: int = 0  # raw corpus tokens done (before subsampling), this epoch
    pairs: int = 0
    loss_sum: float = 0.0  # summed loss over the measured batches
    loss_pairs: int = 0
    lr: float = 0.0


@dataclass
class FitResult:
    words: int = 0
    pairs: int = 0
    seconds: float = 0.0
    loss: float = float("nan")  # mean per-pair loss of the last epoch's measured batches
    epoch_losses: List[float] = field(default_factory=list)

    @property
    def words_per_sec(self) -> float:
        return self.words / max(self.seconds, 1e-9)


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
        self.model, self.cfg, self.device, self.writer = model, cfg, torch.device(device), writer
        self.tokens = tokens
        self.num_tokens = len(tokens)
        self.rank_to_id = torch.as_tensor(np.asarray(rank_to_id, dtype=np.int64), device=self.device)
        self.keep_prob = torch.as_tensor(keep_probabilities(counts, cfg.sample), device=self.device)
        self.noise = NoiseSampler(counts, cfg.ns_exponent, device=self.device)
        self.total_words = self.num_tokens * cfg.epochs
        self.chunks = [(a, min(a + cfg.chunk_tokens, self.num_tokens)) for a in range(0, self.num_tokens, cfg.chunk_tokens)]
        if self.device.type == "cuda":
            self.num_workers = 1
            # The whole stream lives on the device: no host copies inside the loop.
            self.device_tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int32)).to(self.device)
        else:
            self.num_workers = cfg.workers or os.cpu_count() or 1
            self.device_tokens = None
        self.global_step = 0

    # -- one chunk -------------------------------------------------------------------
    def _chunk_ids(self, a: int, b: int) -> torch.Tensor:
        if self.device_tokens is not None:
            ranks = self.device_tokens[a:b].long()
        else:
            ranks = torch.from_numpy(np.asarray(self.tokens[a:b], dtype=np.int64))
        return self.rank_to_id[ranks]

    def _run_chunk(self, epoch: int, index: int, step: SGNSStep, gen: torch.Generator, stats: WorkerStats) -> None:
        cfg = self.cfg
        a, b = self.chunks[index]
        gen.manual_seed(chunk_seed(cfg.seed, epoch, index))
        kept = subsample(self._chunk_ids(a, b), self.keep_prob, gen)
        centers, contexts = window_pairs(kept, cfg.window, gen)
        total_pairs = max(centers.numel(), 1)
        group = cfg.shared_negatives
        start = epoch * self.num_tokens + a
        # One draw for the whole chunk: the groups of batch j are rows [j*M, j*M + M).
        noise = self.noise.sample((total_pairs // group + 1, cfg.negatives), gen)
        per_batch = cfg.batch_size // group
        for j, (c, x) in enumerate(batches(centers, contexts, cfg.batch_size, group)):
            done = j * cfg.batch_size / total_pairs
            lr = learning_rate(start + done * (b - a), self.total_words, cfg.lr, cfg.min_lr)
            negs = noise[j * per_batch : j * per_batch + c.numel() // group]
            measure = j % cfg.log_every == 0
            loss = step(x, c, negs, lr, with_loss=measure)
            if measure:
                stats.loss_sum += float(loss)
                stats.loss_pairs += c.numel()
            stats.pairs += c.numel()
            stats.lr = lr
        stats.words += b - a

    # -- one epoch -------------------------------------------------------------------
    def run_epoch(self, epoch: int, progress=None) -> FitResult:
        """Train one pass over the corpus; ``progress`` is called with ``(words, stats)``."""
        cfg = self.cfg
        todo = list(range(len(self.chunks)))
        todo.reverse()
        lock = threading.Lock()
        stop = threading.Event()
        errors: List[BaseException] = []
        stats = [WorkerStats() for _ in range(self.num_workers)]

        def work(w: int) -> None:
            try:
                step = SGNSStep(self.model, cfg.batch_size, cfg.shared_negatives, cfg.negatives)
                gen = torch.Generator(device=self.device)
                while not stop.is_set():
                    with lock:
                        if not todo:
                            return
                        index = todo.pop()
                    self._run_chunk(epoch, index, step, gen, stats[w])
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)
                stop.set()

        threads_before = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        started = time.perf_counter()
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
                if loss_pairs > last_loss[1]:
                    recent = (loss_sum - last_loss[0]) / (loss_pairs - last_loss[1])
                    last_loss = (loss_sum, loss_pairs)
                    if not math.isfinite(recent):
                        stop.set()
                        errors.append(
                            TrainingDiverged(
                                f"the loss became {recent} in epoch {epoch + 1}; lower train.lr "
                                f"(now {cfg.lr}) or train.batch_size (now {cfg.batch_size})"
                            )
                        )
                        break
                    if progress is not None:
                        progress(sum(s.words for s in stats), stats, recent)
        except KeyboardInterrupt:
            stop.set()
            raise
        finally:
            for t in threads:
                t.join()
            torch.set_num_threads(threads_before)
        if errors:
            raise errors[0]
        seconds = time.perf_counter() - started
        loss_pairs = sum(s.loss_pairs for s in stats)
        return FitResult(
            words=sum(s.words for s in stats),
            pairs=sum(s.pairs for s in stats),
            seconds=seconds,
            loss=sum(s.loss_sum for s in stats) / max(loss_pairs, 1),
        )

    def fit(self, on_epoch_end: Optional[Callable[[int, FitResult], None]] = None, progress=None) -> FitResult:
        """Train ``cfg.epochs`` epochs; ``on_epoch_end(epoch, result)`` runs after each."""
        total = FitResult()
        for epoch in range(self.cfg.epochs):
            result = self.run_epoch(epoch, progress=None if progress is None else progress(epoch))
            total.words += result.words
            total.pairs += result.pairs
            total.seconds += result.seconds
            total.loss = result.loss
            total.epoch_losses.append(result.loss)
            if on_epoch_end is not None:
                on_epoch_end(epoch, result)
        return total
