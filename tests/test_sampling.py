import numpy as np
import pytest
import torch

from w2v.batching import batches, subsample, window_pairs
from w2v import sampling
from w2v.sampling import NoiseSampler, alias_table, keep_probabilities

from conftest import compiled_or

way = compiled_or(sampling, "python")  # each test that takes it builds the alias table in C and in Python


def test_keep_probability_matches_word2vec_formula():
    counts = np.array([0, 5000, 300, 20, 1])
    sample = 1e-3
    t = sample * counts.sum()
    p = keep_probabilities(counts, sample)
    for c, got in zip(counts[1:], p[1:]):
        assert np.isclose(got, min(1.0, (np.sqrt(c / t) + 1) * t / c), rtol=1e-6)
    assert p[0] == 1.0 and p[1] < 0.2
    assert (keep_probabilities(counts, 0) == 1).all()


def test_subsample_keeps_the_expected_fraction():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 2, (200_000,), generator=g)
    kept = subsample(tokens, torch.tensor([0.25, 1.0]), g)
    assert (kept == 1).sum() == (tokens == 1).sum()
    frac = float((kept == 0).sum()) / float((tokens == 0).sum())
    assert abs(frac - 0.25) < 0.01


def test_noise_follows_unigram_to_the_power():
    counts = np.array([1, 16, 81, 0])
    s = NoiseSampler(counts, 0.75)
    expected = np.array([1, 8, 27, 0]) / 36
    assert np.allclose(s.probs.numpy(), expected)
    draws = s.sample((300_000,), torch.Generator().manual_seed(1))
    freq = np.bincount(draws.numpy(), minlength=4) / 300_000
    assert np.allclose(freq, expected, atol=0.005) and freq[3] == 0


def test_window_pairs_are_exactly_the_dynamic_window():
    tokens = torch.arange(100, 140)
    g = torch.Generator().manual_seed(3)
    centers, contexts = window_pairs(tokens, 4, g)
    reach = torch.randint(1, 5, (40,), generator=torch.Generator().manual_seed(3))
    expected = sorted(
        (100 + i, 100 + j) for i in range(40) for j in range(40) if i != j and abs(i - j) <= int(reach[i])
    )
    assert sorted(zip(centers.tolist(), contexts.tolist())) == expected


def test_pairs_are_grouped_by_offset_so_neighbours_have_different_centers():
    tokens = torch.arange(1000)
    centers, contexts = window_pairs(tokens, 5, torch.Generator().manual_seed(0))
    offsets = (contexts - centers).tolist()
    # blocks: +1, -1, +2, -2, ...: the offset sequence only changes at block edges
    changes = [offsets[i] for i in range(1, len(offsets)) if offsets[i] != offsets[i - 1]]
    assert changes == [-1, 2, -2, 3, -3, 4, -4, 5, -5]
    for start in range(0, len(centers) - 32, 32):
        assert len(set(centers[start : start + 32].tolist())) == 32


def test_batches_cut_to_group_multiples():
    c = torch.arange(100)
    sizes = [len(b[0]) for b in batches(c, c, 40, 8)]
    assert sizes == [40, 40, 16]


def test_the_alias_table_draws_the_distribution_exactly(way):
    rng = np.random.default_rng(0)
    probs = rng.pareto(1.0, 5000) ** 0.75  # Zipf-like: a few heavy words, many light ones
    probs[rng.integers(0, 5000, 50)] = 0  # words never drawn
    probs /= probs.sum()
    accept, alias = alias_table(probs)
    # each word's probability is its own column's kept share plus what other columns hand it
    total = accept.copy()
    np.add.at(total, alias, 1.0 - accept)
    np.testing.assert_allclose(total / len(probs), probs, atol=1e-12)  # zero for the words never drawn


def test_the_compiled_alias_table_is_pythons_bit_for_bit(monkeypatch):
    if sampling._native() is None:
        pytest.skip("no C compiler here")
    probs = np.random.default_rng(1).random(20_000) ** 3
    probs /= probs.sum()
    compiled = alias_table(probs)
    monkeypatch.setattr(sampling, "_native", lambda: None)
    python = alias_table(probs)
    assert np.array_equal(compiled[0], python[0]) and np.array_equal(compiled[1], python[1])
