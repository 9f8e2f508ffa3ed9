"""Correlations and their p-values against scipy's (w2v.correlation)."""

import numpy as np
import pytest

from w2v.correlation import pearson, rankdata, spearman


def test_rank_and_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (3, 10, 353):
        x = rng.integers(0, 5, n).astype(float)  # ties
        y = x + rng.standard_normal(n)
        np.testing.assert_array_equal(rankdata(x), stats.rankdata(x))
        for ours, theirs in ((pearson(x, y), stats.pearsonr(x, y)), (spearman(x, y), stats.spearmanr(x, y))):
            assert ours.statistic == pytest.approx(theirs[0], abs=1e-12)
            assert ours.pvalue == pytest.approx(theirs[1], rel=1e-8, abs=1e-300)


def test_correlation_edge_cases():
    assert pearson([1, 2, 3], [2, 4, 6]) == (1.0, 0.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]).statistic)
    assert np.isnan(spearman([1, 2], [2, 1]).pvalue)
