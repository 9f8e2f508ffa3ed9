"""Correlation coefficients and their p-values, with numpy alone (scipy's numbers, tested against it).

:func:`pearson` and :func:`spearman` return ``(statistic, pvalue)`` as
``scipy.stats.pearsonr`` and ``spearmanr`` do, the p-value from a t-test with ``n - 2``
degrees of freedom (the regularised incomplete beta function, :func:`_betainc`), so word
similarity scores need no scipy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Correlation(NamedTuple):
    """A correlation coefficient and its two-sided p-value (a t-test with n - 2 degrees of freedom)."""

    statistic: float
    pvalue: float


def rankdata(x) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (scipy's ``rankdata(method="average")``).

    >>> rankdata([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(new)  # 1-based group of each sorted value
    bounds = np.r_[np.flatnonzero(new), len(x)]
    ranks = np.empty(len(x))
    ranks[order] = 0.5 * (bounds[group - 1] + 1 + bounds[group])
    return ranks


def pearson(x, y) -> Correlation:
    """Pearson's r and its two-sided p-value.

    >>> round(pearson([1, 2, 3, 4], [1, 3, 2, 4]).statistic, 3)
    0.8
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    r = float(np.clip((xm / nx) @ (ym / ny), -1.0, 1.0)) if nx > 0 and ny > 0 else math.nan
    if abs(r) > 1.0 - 1e-12:  # a perfect correlation up to rounding: say so, and p = 0
        r = math.copysign(1.0, r)
    return Correlation(r, _t_pvalue(r, len(x)))


def spearman(x, y) -> Correlation:
    """Spearman's rank correlation (Pearson's r of the ranks) and its two-sided p-value."""
    return pearson(rankdata(x), rankdata(y))


def _t_pvalue(r: float, n: int) -> float:
    """P(|T| >= t) for t = r sqrt((n-2) / (1-r^2)): the regularised beta I_{1-r^2}((n-2)/2, 1/2)."""
    if n < 3 or math.isnan(r):
        return math.nan
    return _betainc((n - 2) / 2.0, 0.5, max(0.0, 1.0 - r * r))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes' continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float, tiny: float = 1e-300) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h
