"""The corpus as a sequence of chunks: their bounds, draws and learning rates.

The token stream is cut into chunks of ``chunk_tokens`` tokens, the unit of work of every
way of training (:mod:`w2v.strategies`). Every random draw of a chunk comes from a
generator seeded by ``(seed, epoch, chunk)``, and the learning rate of a batch is a pure
function of its position in the corpus, so a run does not depend on which worker, thread
or process took which chunk, and a checkpoint needs no RNG state.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

from . import kernel
from .batching import subsample, window_pairs, window_reach
from .sampling import NoiseSampler, keep_probabilities
from .state import chunk_seed, learning_rate


class ChunkPlan:
    """What every strategy needs to know about the corpus and the schedule.

    Args:
        tokens: frequency-rank ids of the corpus, ``(N,)`` (a numpy array or memory map).
        rank_to_id: vocabulary id of each rank, ``(T,)``.
        counts: corpus count of each vocabulary id, ``(V,)``.
        cfg: a resolved :class:`~w2v.config.TrainConfig` (no ``auto`` left).
        device: where ids and draws live.
        on_device: keep the whole token stream on ``device`` (no host copies per chunk).
    """

    def __init__(self, tokens, rank_to_id, counts, cfg, device, on_device: bool = False) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.tokens = tokens
        self.num_tokens = len(tokens)
        self.rank_to_id = torch.as_tensor(np.asarray(rank_to_id, dtype=np.int64), device=self.device)
        self.keep_prob = torch.as_tensor(keep_probabilities(counts, cfg.sample), device=self.device)
        self.noise = NoiseSampler(counts, cfg.ns_exponent, device=self.device)
        self.total_words = self.num_tokens * cfg.epochs
        step = cfg.chunk_tokens
        self.bounds: List[Tuple[int, int]] = [(a, min(a + step, self.num_tokens)) for a in range(0, self.num_tokens, step)]
        self.device_tokens = None
        if on_device:
            self.device_tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int32)).to(self.device)
        self.c_windows = False  # window pairs from the C loop (the CPU kernel's strategy turns it on)

    def __len__(self) -> int:
        return len(self.bounds)

    def position(self, epoch: int, index: int) -> int:
        """Corpus words before chunk ``index`` of ``epoch``, counted over all epochs."""
        return epoch * self.num_tokens + self.bounds[index][0]

    def ids(self, index: int) -> torch.Tensor:
        """The vocabulary ids of chunk ``index``, ``(b - a,)`` int64 on the plan's device."""
        a, b = self.bounds[index]
        if self.device_tokens is not None:
            ranks = self.device_tokens[a:b].long()
        else:
            ranks = torch.from_numpy(np.asarray(self.tokens[a:b], dtype=np.int64)).to(self.device)
        return self.rank_to_id[ranks]

    def seed(self, gen: torch.Generator, epoch: int, index: int) -> torch.Generator:
        """Seed ``gen`` for chunk ``index`` of ``epoch``; returns it."""
        return gen.manual_seed(chunk_seed(self.cfg.seed, epoch, index))

    def pairs(self, epoch: int, index: int, gen: torch.Generator):
        """The chunk's pairs and negatives: ``(centers, contexts, noise)``, seeded by the chunk."""
        cfg = self.cfg
        self.seed(gen, epoch, index)
        kept = subsample(self.ids(index), self.keep_prob, gen)
        reach = window_reach(kept.numel(), cfg.window, gen, kept.device)
        if self.c_windows:  # the same pairs from the C loop, ~10x faster than torch's masks
            centers, contexts = kernel.window_pairs(kept, reach, cfg.window)
        else:
            centers, contexts = window_pairs(kept, cfg.window, reach=reach)
        # One draw for the whole chunk: the groups of batch j are rows [j*M, j*M + M).
        noise = self.noise.sample((max(centers.numel(), 1) // cfg.shared_negatives + 1, cfg.negatives), gen)
        return centers, contexts, noise

    def batch_lr(self, epoch: int, index: int, j: int, total_pairs: int) -> float:
        """The learning rate of batch ``j`` of a chunk of ``total_pairs`` pairs: a function of its position."""
        a, b = self.bounds[index]
        done = j * self.cfg.batch_size / max(total_pairs, 1)
        return learning_rate(epoch * self.num_tokens + a + done * (b - a), self.total_words, self.cfg.lr, self.cfg.min_lr)
