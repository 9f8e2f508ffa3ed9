"""The training loop: chunks of the token stream, worker threads, progress.

The corpus is cut into chunks of ``chunk_tokens`` tokens. A worker takes a chunk, maps
its frequency ranks to vocabulary ids, subsamples, draws window pairs, and runs
:class:`~w2v.model.SGNSStep` on consecutive batches. Every random draw of a chunk comes
from a generator seeded by ``(seed, epoch, chunk)``, and the learning rate of a batch
is a pure function of its position in the corpus, so a run does not depend on which
worker took which chunk; with one worker it is bitwise reproducible.

On CPU the step is by default the compiled kernel (:class:`~w2v.model.FusedSGNS`): one
call per chunk, run by ``workers`` threads inside the kernel, while a Python thread draws
the next chunk's pairs. Chunks are applied in corpus order and the kernel's result does
not depend on its thread count, so a CPU run is bitwise reproducible.

With ``kernel=torch`` (or when the kernel cannot be built) several worker threads run
:class:`~w2v.model.SGNSStep` and update the shared tables without locks (Hogwild!, Recht
et al. 2011, as word2vec.c and gensim do). Each runs single-threaded torch ops, which
release the GIL; on 2 cores this beat torch's own OpenMP threads, which also collapse
when another process is busy on a core. On a GPU one worker feeds the device.

Checkpoints are taken at chunk boundaries: when one is due (``checkpoint_every_words``,
``checkpoint_every_minutes``, or a stop asked for by :meth:`Trainer.request_stop`), workers
stop taking chunks, the chunks in flight finish, and the checkpoint callback gets a
:class:`TrainState`. Chunks are handed out in order, so the finished ones are always the
first ``chunks_done`` of the epoch; with the tables, that position is all a resumed run
needs to continue exactly where this one stopped.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from typing import Callable, List, Optional

import numpy as np
import torch

from . import kernel, parallel
from .batching import batches, subsample, window_pairs, window_reach
from .kernel import PHASES
from .model import FusedSGNS, SGNSStep, SkipGramNS
from .sampling import NoiseSampler, keep_probabilities
from .state import (
    FitResult,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    WorkerStats,
    all_finite,
    chunk_seed,
    learning_rate,
)


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
        self.fused = False
        self.rank, self.world_size = getattr(model.input, "rank", 0), getattr(model.input, "world_size", 1)
        if self.world_size > 1:
            if getattr(cfg, "kernel", "auto") == "fused":
                raise ValueError("train.kernel=fused runs in one process; with several processes use train.kernel=auto or torch")
            self.num_workers = 1  # one stream of collectives per rank
            self.device_tokens = None
        elif self.device.type == "cuda":
            self.num_workers = 1
            # The whole stream lives on the device: no host copies inside the loop.
            self.device_tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int32)).to(self.device)
        else:
            self.num_workers = cfg.workers or os.cpu_count() or 1
            self.device_tokens = None
            kernel = getattr(cfg, "kernel", "auto")
            plain = getattr(cfg, "hot_rows", "sum") == "sum" and getattr(cfg, "sub_batch", None) is None
            if kernel != "torch" and plain:  # the kernel applies the plain sum only
                why = FusedSGNS.unsupported(model)
                if why and kernel == "fused":
                    raise ValueError(f"train.kernel=fused, but {why}; use train.kernel=auto or torch")
                self.fused = why is None
        if self.world_size > 1 and self.device.type == "cuda":
            self.device_tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int32)).to(self.device)
        if self.device.type == "cuda" and getattr(cfg, "kernel", "auto") == "fused":
            raise ValueError("train.kernel=fused is a CPU kernel; use train.kernel=auto on a GPU")
        self.global_step = 0
        self.state = self._fresh_state()
        self._save: Optional[Callable[[TrainState], None]] = None
        self._stop_signal: Optional[int] = None
        self._last_checkpoint = (time.monotonic(), 0)  # (clock, corpus position)

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
        self._stop_signal = signum

    def _step(self) -> SGNSStep:
        """A torch step with the run's hot-row settings (one per worker)."""
        cfg = self.cfg
        return SGNSStep(
            self.model, cfg.batch_size, cfg.shared_negatives, cfg.negatives,
            hot_rows=getattr(cfg, "hot_rows", "sum"), cap=getattr(cfg, "hot_rows_cap", 64.0),
            trust=getattr(cfg, "hot_rows_trust", 2.0), sub_batch=getattr(cfg, "sub_batch", None),
        )

    # -- one chunk -------------------------------------------------------------------
    def _chunk_ids(self, a: int, b: int) -> torch.Tensor:
        if self.device_tokens is not None:
            ranks = self.device_tokens[a:b].long()
        else:
            ranks = torch.from_numpy(np.asarray(self.tokens[a:b], dtype=np.int64))
        return self.rank_to_id[ranks]

    def _chunk_pairs(self, epoch: int, index: int, gen: torch.Generator):
        """The chunk's pairs and negatives: ``(centers, contexts, noise)``, seeded by the chunk."""
        cfg = self.cfg
        a, b = self.chunks[index]
        gen.manual_seed(chunk_seed(cfg.seed, epoch, index))
        kept = subsample(self._chunk_ids(a, b), self.keep_prob, gen)
        reach = window_reach(kept.numel(), cfg.window, gen, kept.device)
        if self.fused:  # the same pairs from the C loop, ~10x faster than torch's masks
            centers, contexts = kernel.window_pairs(kept, reach, cfg.window)
        else:
            centers, contexts = window_pairs(kept, cfg.window, reach=reach)
        # One draw for the whole chunk: the groups of batch j are rows [j*M, j*M + M).
        noise = self.noise.sample((max(centers.numel(), 1) // cfg.shared_negatives + 1, cfg.negatives), gen)
        return centers, contexts, noise

    def _batch_lr(self, epoch: int, index: int, j: int, total_pairs: int) -> float:
        """The learning rate of batch ``j``: a function of its position in the corpus."""
        a, b = self.chunks[index]
        done = j * self.cfg.batch_size / max(total_pairs, 1)
        return learning_rate(epoch * self.num_tokens + a + done * (b - a), self.total_words, self.cfg.lr, self.cfg.min_lr)

    def _run_chunk(self, epoch: int, index: int, step: SGNSStep, gen: torch.Generator, stats: WorkerStats) -> None:
        cfg = self.cfg
        a, b = self.chunks[index]
        began = time.perf_counter()
        centers, contexts, noise = self._chunk_pairs(epoch, index, gen)
        drawn = time.perf_counter()
        stats.spent("batch generation", drawn - began)
        group = cfg.shared_negatives
        per_batch = cfg.batch_size // group
        # Measured losses add up on the device: one host sync per chunk, none per step.
        summed = torch.zeros((), dtype=torch.float64, device=self.device)
        for j, (c, x) in enumerate(batches(centers, contexts, cfg.batch_size, group)):
            lr = self._batch_lr(epoch, index, j, centers.numel())
            negs = noise[j * per_batch : j * per_batch + c.numel() // group]
            measure = j % cfg.log_every == 0
            loss = step(x, c, negs, lr, with_loss=measure)
            if measure:
                summed += loss
                stats.loss_pairs += c.numel()
            stats.pairs += c.numel()
            stats.lr = lr
        chunk_loss = float(summed)
        if not math.isfinite(chunk_loss):  # the first batch of a chunk is always measured
            raise TrainingDiverged(
                f"the loss became {chunk_loss} in epoch {epoch + 1}; lower train.lr "
                f"(now {cfg.lr}) or train.batch_size (now {cfg.batch_size})"
            )
        stats.loss_sum += chunk_loss
        stats.words += b - a

    def _run_fused_chunk(self, epoch: int, index: int, pairs, step: FusedSGNS, stats: WorkerStats) -> None:
        """:meth:`_run_chunk` with the kernel: every batch of the chunk in one call."""
        cfg = self.cfg
        a, b = self.chunks[index]
        centers, contexts, noise = pairs
        total = centers.numel()
        usable = total - total % cfg.shared_negatives  # as `batches` drops the last partial group
        if usable:
            nb = -(-usable // cfg.batch_size)
            lrs = [self._batch_lr(epoch, index, j, total) for j in range(nb)]
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

    # -- checkpoints -------------------------------------------------------------------
    def _due(self, epoch: int, index: int) -> bool:
        """Whether to stop handing out chunks before chunk ``index``: a stop or a checkpoint is due."""
        if self._stop_signal is not None:
            return True
        if self._save is None:
            return False
        position = epoch * self.num_tokens + self.chunks[index][0]
        every_words = getattr(self.cfg, "checkpoint_every_words", None)
        # Words-based checkpoints fall on the first boundary past each multiple of N: the
        # same boundaries in every run, whatever the workers and wherever it was resumed.
        if every_words and position // every_words > self._last_checkpoint[1] // every_words:
            return True
        minutes = getattr(self.cfg, "checkpoint_every_minutes", None)
        # At least one chunk between two checkpoints, however short the interval.
        moved = position > self._last_checkpoint[1]
        return bool(minutes) and moved and time.monotonic() - self._last_checkpoint[0] >= minutes * 60

    def _checkpoint(self, epoch: int) -> None:
        """Hand the state to the checkpoint callback; the workers are all stopped."""
        tables = list(self.model.input.shards) + list(self.model.output.shards)
        if not all(all_finite(t) for t in tables):  # never overwrite a good checkpoint
            raise TrainingDiverged(
                f"the vectors became NaN or infinite in epoch {epoch + 1}; lower train.lr "
                f"(now {self.cfg.lr}) or train.batch_size (now {self.cfg.batch_size})"
            )
        if self._save is not None:
            self._save(self.state)
        self._last_checkpoint = (time.monotonic(), self.state.words)

    # -- one epoch -------------------------------------------------------------------
    def _run_workers(self, epoch: int, todo: List[int], stats: List[WorkerStats], progress) -> None:
        """Run the workers on ``todo`` (popped from the end) until it is empty or a checkpoint is due.

        On return every worker has stopped and the chunks taken are finished.
        """
        cfg = self.cfg
        lock = threading.Lock()
        stop = threading.Event()
        errors: List[BaseException] = []

        def work(w: int) -> None:
            try:
                step = self._step()
                gen = torch.Generator(device=self.device)
                while not stop.is_set():
                    with lock:
                        if not todo or self._due(epoch, todo[-1]):
                            return
                        index = todo.pop()
                    self._run_chunk(epoch, index, step, gen, stats[w])
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)
                stop.set()

        threads_before = torch.get_num_threads()
        if self.device.type == "cpu":
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

    def _run_fused(self, epoch: int, todo: List[int], stats: List[WorkerStats], progress) -> None:
        """:meth:`_run_workers` for the kernel: chunks applied one at a time, in corpus order.

        A thread draws the pairs of the next chunk while the kernel (itself on
        ``num_workers`` threads) applies the current one. The drawing thread hands out the
        chunks, so it is the one that stops when a checkpoint is due; the chunk it has drawn
        is still applied, which keeps the finished chunks a prefix.
        """
        cfg = self.cfg
        step = FusedSGNS(self.model, cfg.shared_negatives, self.num_workers)
        ready: "queue.Queue" = queue.Queue(maxsize=1)
        stop = threading.Event()
        errors: List[BaseException] = []
        drawer_stats = WorkerStats()

        def draw() -> None:
            gen = torch.Generator()
            try:
                while not stop.is_set() and todo and not self._due(epoch, todo[-1]):
                    index = todo.pop()
                    began = time.perf_counter()
                    pairs = self._chunk_pairs(epoch, index, gen)
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
        reported = (time.perf_counter(), stats[0].loss_sum, stats[0].loss_pairs)
        try:
            while True:
                item = ready.get()
                if item is None:
                    break
                index, pairs = item
                before = stats[0].loss_sum
                self._run_fused_chunk(epoch, index, pairs, step, stats[0])
                loss = stats[0].loss_sum - before
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} in epoch {epoch + 1}; lower train.lr "
                        f"(now {cfg.lr}) or train.batch_size (now {cfg.batch_size})"
                    )
                now = time.perf_counter()
                if progress is not None and now - reported[0] >= 0.5 and stats[0].loss_pairs > reported[2]:
                    recent = (stats[0].loss_sum - reported[1]) / (stats[0].loss_pairs - reported[2])
                    progress(stats[0].words, stats, recent)
                    reported = (now, stats[0].loss_sum, stats[0].loss_pairs)
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
                stats[0].spent(part, seconds)
        if errors:
            raise errors[0]

    def _run_ranks(self, epoch: int, todo: List[int], stats: List[WorkerStats], progress) -> None:
        """:meth:`_run_workers` over several processes whose tables are spread over the ranks.

        Chunks go out in rounds: in a round of ``N`` ranks, rank ``k`` trains the round's
        ``k``-th chunk, drawn from the same seeds as in a single process. Every step is a
        collective (the layer's exchanges), so the ranks take the same number of steps: one
        small all-reduce per round agrees on the round's largest batch count, ranks with fewer
        batches step with empty ones, and the same all-reduce carries whether a checkpoint or a
        stop is due on any rank. Rounds finish whole, so the finished chunks stay a prefix.
        """
        cfg, world, rank = self.cfg, self.world_size, self.rank
        step = self._step()
        gen = torch.Generator(device=self.device)
        stat = stats[0]
        group, per_batch = cfg.shared_negatives, cfg.batch_size // cfg.shared_negatives
        empty = torch.empty(0, dtype=torch.int64, device=self.device)
        no_negatives = torch.empty(0, cfg.negatives, dtype=torch.int64, device=self.device)
        reported = time.perf_counter()
        while todo:
            chunks = todo[-world:][::-1]  # this round's, in corpus order
            due = self._due(epoch, chunks[0])
            began = time.perf_counter()
            mine = chunks[rank] if rank < len(chunks) else None
            pairs = self._chunk_pairs(epoch, mine, gen) if mine is not None else (empty, empty, no_negatives)
            stat.spent("batch generation", time.perf_counter() - began)
            usable = pairs[0].numel() - pairs[0].numel() % group
            signum = self._stop_signal or 0
            steps, due, signum = parallel.all_reduce([-(-usable // cfg.batch_size), due, signum], "max", self.device)
            if signum and self._stop_signal is None:  # another rank was asked to stop: all stop
                self._stop_signal = int(signum)
            if due:
                return
            del todo[-len(chunks):]
            began = time.perf_counter()
            centers, contexts, noise = pairs
            summed = torch.zeros((), dtype=torch.float64, device=self.device)  # one host sync per round
            for j in range(int(steps)):
                a, b = min(j * cfg.batch_size, usable), min((j + 1) * cfg.batch_size, usable)
                measure = b > a and j % cfg.log_every == 0
                lr = self._batch_lr(epoch, mine, j, pairs[0].numel()) if mine is not None else stat.lr
                negs = noise[j * per_batch : j * per_batch + (b - a) // group] if b > a else no_negatives
                loss = step(contexts[a:b], centers[a:b], negs, lr, with_loss=measure)
                self.global_step += 1
                if measure:
                    summed += loss
                    stat.loss_pairs += b - a
                stat.pairs += b - a
                stat.lr = lr
            chunk_loss = float(summed)
            stat.spent("step", time.perf_counter() - began)
            if not math.isfinite(chunk_loss):
                raise TrainingDiverged(
                    f"the loss became {chunk_loss} in epoch {epoch + 1}; lower train.lr "
                    f"(now {cfg.lr}) or train.batch_size (now {cfg.batch_size})"
                )
            stat.loss_sum += chunk_loss
            stat.words += sum(self.chunks[i][1] - self.chunks[i][0] for i in chunks)  # the round's, all ranks'
            now = time.perf_counter()
            if progress is not None and now - reported >= 0.5 and stat.loss_pairs:
                progress(stat.words, stats, stat.loss_sum / stat.loss_pairs)
                reported = now

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
            if self.world_size > 1:
                with parallel.peer_failures(f"training epoch {epoch + 1}"):
                    self._run_ranks(epoch, todo, stats, progress)
            else:
                (self._run_fused if self.fused else self._run_workers)(epoch, todo, stats, progress)
            done = len(self.chunks) - len(todo)
            state.chunks_done = done
            state.words = epoch * self.num_tokens + (self.chunks[done][0] if todo else self.num_tokens)
            state.epoch_pairs = sum(s.pairs for s in stats)
            state.epoch_loss_sum = sum(s.loss_sum for s in stats)
            state.epoch_loss_pairs = sum(s.loss_pairs for s in stats)
            if not todo:
                break
            self._checkpoint(epoch)  # todo is left only when a checkpoint or a stop is due
            if self._stop_signal is not None:
                raise TrainingInterrupted(self._stop_signal, state)
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
                already hold that run's values (see :func:`w2v.checkpoint.restore_tables`).

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
