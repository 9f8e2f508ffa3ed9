"""Many analogy questions answered at once from their words' products (w2v.cosadd)."""

import numpy as np
import pytest
import torch

import w2v.cosadd as cosadd
from w2v.cosadd import cosadd_top_k, worth_it
from w2v.vectors import WordVectors

from conftest import compiled_or


def _questions(rng, words, n):
    """``n`` questions over the first ``words`` ids, no word twice in one question."""
    return np.array([rng.choice(words, 3, replace=False) for _ in range(n)], dtype=np.int64)


def _by_query_vectors(wv, abc, k, restrict_vocab):
    unit = wv.get_normed_vectors().astype(np.float64)
    query = unit[abc[:, 1]] - unit[abc[:, 0]] + unit[abc[:, 2]]
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return wv.top_k(query.astype(np.float32), k, exclude=abc, restrict_vocab=restrict_vocab)


way = compiled_or(cosadd, "torch")  # each test that takes it runs in C and with torch


@pytest.mark.parametrize("restrict_vocab", [None, 300])
def test_answers_equal_a_search_with_the_query_vectors(monkeypatch, restrict_vocab, way):
    rng = np.random.default_rng(0)
    wv = WordVectors([f"w{i}" for i in range(500)], rng.standard_normal((500, 16)).astype(np.float32))
    # Questions whose |b - a + c| is near 0 are scored from their query vector: a (row 10)
    # and b (row 11) are 60 degrees apart, so c = a - b (row 12, nudged) is a unit vector.
    e = np.eye(16, dtype=np.float32)
    wv.vectors[10], wv.vectors[11], wv.vectors[12] = e[0], 0.5 * e[0] + 0.75 ** 0.5 * e[1], 0.5 * e[0] - 0.75 ** 0.5 * e[1] + 0.05 * e[2]
    wv.fill_norms(force=True)
    assert np.linalg.norm(wv.get_normed_vectors()[[11, 12]].sum(0) - wv.get_normed_vectors()[10]) < cosadd._SHORT
    abc = np.concatenate([_questions(rng, 40, 200), [[10, 11, 12], [11, 10, 13]]])
    monkeypatch.setattr(cosadd, "_TILE", {"cpu": 64, "cuda": 64})  # several tiles of words...
    monkeypatch.setattr(cosadd, "_BLOCK", {"cpu": 64 * 16, "cuda": 64 * 16})  # ...and blocks of 16 questions
    got_s, got_i = cosadd_top_k(wv.unit_table(), abc, 6, restrict_vocab)
    want_s, want_i = _by_query_vectors(wv, abc, 6, restrict_vocab)
    np.testing.assert_allclose(got_s, want_s, atol=2e-6)
    close = np.abs(np.diff(want_s, axis=1)).min(axis=1) < 1e-5  # near-ties may come in either order
    np.testing.assert_array_equal(got_i[~close], want_i[~close])
    assert not (got_i[:, :, None] == abc[:, None, :]).any()  # a question's own words never answer it
    assert (got_i < (restrict_vocab or 500)).all()


def test_pads_when_too_few_words(way):
    wv = WordVectors(["a", "b", "c", "d", "e"], np.eye(5, dtype=np.float32))
    scores, ids = cosadd_top_k(wv.unit_table(), np.array([[0, 1, 2]]), 6, restrict_vocab=4)
    assert ids.tolist() == [[3, -1, -1, -1]] and np.isneginf(scores[0, 1:]).all()
    scores, ids = cosadd_top_k(wv.unit_table(), np.zeros((0, 3), dtype=np.int64), 6)
    assert scores.shape == ids.shape == (0, 5)


def test_the_compiled_search_scores_as_torch_does_bit_for_bit(monkeypatch):
    if cosadd._native() is None:
        pytest.skip("no C compiler here")
    rng = np.random.default_rng(3)
    wv = WordVectors([f"w{i}" for i in range(5000)], rng.standard_normal((5000, 24)).astype(np.float32))
    abc = _questions(rng, 300, 700)
    monkeypatch.setattr(cosadd, "_TILE", {"cpu": 1500, "cuda": 1500})  # tiles of 1,500 words, the last one short
    compiled = cosadd_top_k(wv.unit_table(), abc, 6, restrict_vocab=4700)
    monkeypatch.setattr(cosadd, "_native", lambda: None)
    plain = cosadd_top_k(wv.unit_table(), abc, 6, restrict_vocab=4700)
    np.testing.assert_array_equal(compiled[0], plain[0])  # the same float operations in the same order
    ties = (np.diff(plain[0], axis=1) == 0).any(axis=1)  # exact ties may list their words in either order
    np.testing.assert_array_equal(compiled[1][~ties], plain[1][~ties])


def test_worth_it_for_many_questions_over_few_words():
    rng = np.random.default_rng(1)
    assert worth_it(_questions(rng, 900, 12_000), 100)  # questions-words.txt's shape
    assert not worth_it(_questions(rng, 900, 12_000), 8)  # too few dimensions to save
    assert not worth_it(_questions(rng, 10_000, 500), 100)  # more words than questions
    assert not worth_it(np.zeros((0, 3), dtype=np.int64), 100)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_on_the_gpu_as_on_the_cpu():
    rng = np.random.default_rng(2)
    wv = WordVectors([f"w{i}" for i in range(3000)], rng.standard_normal((3000, 32)).astype(np.float32))
    abc = _questions(rng, 200, 400)
    cpu_s, cpu_i = cosadd_top_k(wv.unit_table(), abc, 6)
    gpu_s, gpu_i = cosadd_top_k(wv.unit_table("cuda"), abc, 6)
    np.testing.assert_allclose(gpu_s, cpu_s, atol=1e-5)
    assert (gpu_i == cpu_i).mean() > 0.99
