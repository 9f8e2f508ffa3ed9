"""Subsampling of frequent words and the noise distribution for negative sampling."""

from __future__ import annotations

import numpy as np
import torch


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence of a word (word2vec's subsampling).

    With ``t = sample * total``, a word seen ``c`` times is kept with probability
    ``(sqrt(c / t) + 1) * t / c``, capped at 1: the formula of word2vec.c and gensim
    (a smoothed form of Mikolov et al. 2013's ``sqrt(t / f)``). ``sample=0`` keeps all.

    Args:
        counts: corpus count per id, shape ``(V,)``.
        sample: the threshold (word2vec's ``-sample``, typically 1e-3 to 1e-5).

    Returns:
        ``float32`` array of shape ``(V,)``.

    >>> [round(float(p), 3) for p in keep_probabilities(np.array([1000, 10, 0]), 1e-2)]
    [0.111, 1.0, 1.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts), dtype=np.float32)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / threshold) + 1) * threshold / counts
    p = np.where(counts > 0, np.minimum(p, 1.0), 1.0)
    return p.astype(np.float32)


class NoiseSampler:
    """Draws negatives from the unigram distribution raised to ``exponent``.

    Draws use inverse-CDF lookup (``searchsorted``) on a float64 CDF: exact for any
    vocabulary size, O(log V) a draw, on whatever device the CDF lives, with no
    word2vec-style 1e8-entry table.

    Args:
        counts: corpus count per id, shape ``(V,)``. Ids with count 0 are never drawn.
        exponent: 0.75 in word2vec.
        device: where draws are made.

    >>> s = NoiseSampler(np.array([0, 10, 10]), 1.0)
    >>> g = torch.Generator().manual_seed(0)
    >>> sorted(set(s.sample((100,), g).tolist()))
    [1, 2]
    """

    def __init__(self, counts: np.ndarray, exponent: float = 0.75, device=None) -> None:
        weights = np.asarray(counts, dtype=np.float64) ** exponent
        weights[np.asarray(counts) <= 0] = 0.0
        total = weights.sum()
        if total <= 0:
            raise ValueError("the noise distribution is empty: every count is zero")
        cdf = np.cumsum(weights / total)
        cdf[-1] = 1.0
        self.probs = torch.as_tensor(weights / total, device=device)
        self.cdf = torch.as_tensor(cdf, device=device)
        self.num_words = len(cdf)

    def sample(self, shape, generator: torch.Generator | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ids of the given shape (``int64``, on the sampler's device)."""
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=self.cdf.device)
        ids = torch.searchsorted(self.cdf, u, right=True, out=out)
        return ids.clamp_(max=self.num_words - 1)
