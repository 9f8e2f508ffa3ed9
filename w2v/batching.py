"""From a chunk of token ids to batches of (input, target) pairs with a dynamic window.

Pairs come out grouped by window offset rather than by center, which is the property the
shared-negative step relies on: ``G`` consecutive pairs have ``G`` different centers, so a
negative set shared by a group is pushed by unrelated words, not ~6 times by the same
center from the same stale weights (measured: sharing across consecutive pairs of one
center cost two thirds of the analogy score).
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch


def subsample(tokens: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each token with probability ``1 - keep_prob[token]`` (before windowing, as word2vec).

    Shape:
        tokens: ``(N,)`` ids; keep_prob: ``(V,)``; returns ``(M,)`` with ``M <= N``.
    """
    u = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    return tokens[u < keep_prob[tokens]]


def window_reach(n: int, window: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Each of ``n`` positions' window, drawn uniformly from ``1..window`` (int64 ``(n,)``)."""
    return torch.randint(1, window + 1, (n,), generator=generator, device=device)


def window_pairs(
    tokens: torch.Tensor, window: int, generator: torch.Generator | None = None, reach: torch.Tensor | None = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """All skip-gram pairs of a token stream with word2vec's dynamic window.

    Each position draws its window ``b`` uniformly from ``1..window`` and pairs with every
    position at distance ``<= b`` on both sides. Pairs are ordered by offset: all distance-1
    pairs to the right, then to the left, then distance 2, and so on. ``reach``: the
    windows, when already drawn (:func:`window_reach`; ``w2v.kernel.window_pairs`` takes
    the same ones).

    Returns:
        ``(centers, contexts)``, each of shape ``(P,)``.

    >>> c, x = window_pairs(torch.tensor([10, 11, 12]), 1)
    >>> list(zip(c.tolist(), x.tolist()))
    [(10, 11), (11, 12), (11, 10), (12, 11)]
    """
    n = tokens.numel()
    if reach is None:
        reach = window_reach(n, window, generator, tokens.device)
    centers, contexts = [], []
    for offset in range(1, min(window, n - 1) + 1):
        right = (reach[: n - offset] >= offset).nonzero().squeeze(1)  # i sees i + offset
        left = (reach[offset:] >= offset).nonzero().squeeze(1) + offset  # i sees i - offset
        centers += [tokens[right], tokens[left]]
        contexts += [tokens[right + offset], tokens[left - offset]]
    if not centers:
        empty = tokens.new_empty(0)
        return empty, empty
    return torch.cat(centers), torch.cat(contexts)


def batches(
    centers: torch.Tensor, contexts: torch.Tensor, batch_size: int, multiple: int = 1
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive slices of ``batch_size`` pairs; the last one is cut to a multiple of ``multiple``.

    The at most ``multiple - 1`` pairs that do not fill a negative-sharing group at the end
    of a chunk are dropped (under 1e-4 of the pairs at the default chunk size).
    """
    total = centers.numel()
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        stop -= (stop - start) % multiple
        if stop > start:
            yield centers[start:stop], contexts[start:stop]
