"""WordVectors: gensim's query semantics, batched queries, the norm cache, and to_embedding."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from w2v.vectors import WordVectors
from w2v.vocab import Vocab

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")


@pytest.fixture(scope="module")
def pair():
    """Our vectors and gensim's KeyedVectors over the same random table (with <unk> at 0)."""
    rng = np.random.default_rng(1)
    words = ["<unk>"] + [f"w{i}" for i in range(499)]
    vectors = (rng.standard_normal((500, 24)) * rng.uniform(0.2, 3.0, (500, 1))).astype(np.float32)
    kv = gensim_kv.KeyedVectors(24)
    kv.add_vectors(words, vectors)
    return WordVectors(words, vectors), kv


def same_results(ours, theirs, tol=1e-5):
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=tol)


def test_mapping_api():
    wv = WordVectors(["<unk>", "a", "b"], torch.arange(6.0).view(3, 2))
    assert wv.vectors.dtype == np.float32 and wv.vectors.shape == (3, 2) and wv.vector_size == 2
    assert len(wv) == 3 and "a" in wv and "z" not in wv and "<unk>" in wv
    assert wv.key_to_index == {"<unk>": 0, "a": 1, "b": 2}
    assert wv["b"].tolist() == [4.0, 5.0]
    assert wv[["b", "a"]].tolist() == [[4.0, 5.0], [2.0, 3.0]]
    np.testing.assert_allclose(np.linalg.norm(wv.get_vector("b", norm=True)), 1.0, rtol=1e-6)
    assert repr(wv) == "WordVectors(words=3, dim=2)"


def test_constructor_checks():
    with pytest.raises(ValueError, match="'a' occurs twice"):
        WordVectors(["a", "b", "a"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"3 words need vectors of shape \(3, D\)"):
        WordVectors(["a", "b", "c"], np.zeros((2, 2)))


def test_unknown_word_is_a_keyerror_with_a_hint():
    wv = WordVectors(["king", "queen"], np.eye(2))
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):
        wv["zzz"]
    with pytest.raises(KeyError, match="did you mean 'king'"):
        wv.most_similar("King")


@pytest.mark.parametrize(
    "positive, negative",
    [
        (["w1"], []),
        ("w7", None),
        (["w1", "w2"], ["w3"]),
        ([], ["w4"]),
        (["<unk>"], []),
        ([("w1", 2.0), "w5"], [("w9", -0.5)]),
    ],
)
def test_most_similar_matches_gensim(pair, positive, negative):
    wv, kv = pair
    same_results(wv.most_similar(positive, negative, topn=15), kv.most_similar(positive, negative, topn=15))


def test_most_similar_with_vectors_and_restrict_vocab(pair):
    wv, kv = pair
    vec = wv["w3"] * 2 + wv["w8"]
    same_results(wv.most_similar([vec], topn=5), kv.most_similar([vec], topn=5))
    same_results(wv.most_similar(torch.from_numpy(vec), topn=5), kv.most_similar(vec, topn=5))
    same_results(wv.similar_by_vector(vec, topn=5), kv.similar_by_vector(vec, topn=5))
    same_results(wv.most_similar("w3", topn=7, restrict_vocab=50), kv.most_similar("w3", topn=7, restrict_vocab=50))
    np.testing.assert_allclose(wv.most_similar("w3", topn=None), kv.most_similar("w3", topn=None), atol=1e-5)
    assert wv.most_similar("w3", topn=0) == []


def test_most_similar_needs_input(pair):
    with pytest.raises(ValueError, match="at least one word"):
        pair[0].most_similar([])


def test_similarity_and_analogy(pair):
    wv, kv = pair
    assert wv.similarity("w1", "w2") == pytest.approx(float(kv.similarity("w1", "w2")), abs=1e-6)
    assert wv.similarity("w1", "w1") == pytest.approx(1.0, abs=1e-6)
    same_results(wv.analogy("w1", "w2", "w3", topn=5), kv.most_similar(positive=["w2", "w3"], negative=["w1"], topn=5))


def test_analogy_known_answer():
    # queen = king - man + woman exactly, in 3-D
    wv = WordVectors(["man", "woman", "king", "queen", "apple"],
                     [[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [-1, 0, 0]])
    assert wv.analogy("man", "king", "woman", topn=1)[0][0] == "queen"


def test_batch_equals_single_queries(pair):
    wv, _ = pair
    words = [f"w{i}" for i in range(0, 499, 7)] + ["<unk>"]
    batch = wv.most_similar_batch(words, topn=6)
    for word, got in zip(words, batch):
        same_results(got, wv.most_similar(word, topn=6))
    restricted = wv.most_similar_batch(["w1", "w100"], topn=4, restrict_vocab=30)
    same_results(restricted[1], wv.most_similar("w100", topn=4, restrict_vocab=30))


def test_top_k_across_tiles_with_exclusions(pair, monkeypatch):
    wv, _ = pair
    queries = wv.get_normed_vectors()[[5, 9, 300]]
    exclude = np.array([[5, -1], [9, 0], [300, 299]])
    want_s, want_i = wv.top_k(queries, 8, exclude=exclude)
    monkeypatch.setattr("w2v.topk._TILE", {"cpu": 64, "cuda": 64})  # tiles of 64 / 3 = 21 words
    monkeypatch.setattr("w2v.topk._QUERY_BLOCK", 2)
    got_s, got_i = wv.top_k(queries, 8, exclude=exclude)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_s, want_s, atol=1e-6)
    assert not set(got_i[1]) & {9, 0} and not set(got_i[2]) & {300, 299}
    scores = wv.get_normed_vectors() @ queries[0]
    scores[5] = -np.inf
    np.testing.assert_array_equal(want_i[0], np.argsort(-scores)[:8])


def test_top_k_pads_when_too_few_words(pair):
    wv, _ = pair
    scores, ids = wv.top_k(wv.get_normed_vectors()[:1], 5, exclude=[[0, 1]], restrict_vocab=4)
    assert ids.tolist() == [[2, 3, -1, -1]] or ids.tolist() == [[3, 2, -1, -1]]  # k is clamped to the 4 words searched
    assert np.isneginf(scores[0, 2:]).all()
    assert len(wv.most_similar("w1", topn=10, restrict_vocab=4)) == 3


def test_norm_cache_follows_the_vectors():
    wv = WordVectors(["a", "b", "c"], [[1, 0], [0, 1], [1, 0.1]])
    assert wv.most_similar("a", topn=1)[0][0] == "c"
    wv.vectors = np.array([[1, 0], [1, 0.1], [0, 1]])
    assert wv.most_similar("a", topn=1)[0][0] == "b"  # assigning drops the cache
    wv.vectors[2] = [1, 0.01]  # in place: stale until forced
    wv.fill_norms(force=True)
    assert wv.most_similar("a", topn=1)[0][0] == "c"


def test_zero_vector_does_not_poison_queries():
    wv = WordVectors(["<unk>", "a", "b"], [[0, 0], [1, 0], [1, 1]])
    assert [w for w, _ in wv.most_similar("a")] == ["b", "<unk>"]
    assert wv.most_similar("a")[1][1] == 0.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_on_gpu_matches_cpu(pair):
    wv, _ = pair
    words = [f"w{i}" for i in range(0, 499, 3)]
    for cpu, gpu in zip(wv.most_similar_batch(words, topn=5), wv.most_similar_batch(words, topn=5, device="cuda")):
        same_results(gpu, cpu)


# --- to_embedding --------------------------------------------------------------------------


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    return WordVectors(["<unk>", "the", "cat", "sat"], rng.standard_normal((4, 6)).astype(np.float32))


def test_to_embedding_follows_downstream_ids(small):
    emb, missing = small.to_embedding(["sat", "The", "dog", "cat"])
    assert isinstance(emb, torch.nn.Embedding) and emb.weight.shape == (4, 6)
    w = emb.weight.detach().numpy()
    np.testing.assert_array_equal(w[0], small["sat"])
    np.testing.assert_array_equal(w[1], small["the"])  # lowercase fallback
    np.testing.assert_array_equal(w[2], small["<unk>"])  # missing -> our <unk>
    np.testing.assert_array_equal(w[3], small["cat"])
    assert missing == ["dog"] and small.to_embedding(["dog"]).n_missing == 1
    ids = torch.tensor([[3, 0, 2], [1, 1, 0]])  # (2, 3)
    assert emb(ids).shape == (2, 3, 6)
    assert not emb.weight.requires_grad
    assert small.to_embedding(["cat"], freeze=False).embedding.weight.requires_grad


def test_to_embedding_inputs(small):
    by_dict = small.to_embedding({"cat": 1, "sat": 0}).embedding.weight.detach().numpy()
    np.testing.assert_array_equal(by_dict, small[["sat", "cat"]])
    vocab = Vocab(["<unk>", "sat", "mat"], [0, 5, 3])
    emb, missing = small.to_embedding(vocab, lowercase_fallback=False)
    assert missing == ["mat"] and emb.weight.shape == (3, 6)
    with pytest.raises(ValueError, match="ids 0..n-1"):
        small.to_embedding({"cat": 0, "sat": 2})
    with pytest.raises(ValueError, match="not one string"):
        small.to_embedding("cat")


def test_to_embedding_random_rows_are_seeded_and_scaled(small):
    words = ["cat"] + [f"x{i}" for i in range(400)]
    a = small.to_embedding(words, unk=None, seed=3).embedding.weight.detach().numpy()
    b = small.to_embedding(words, unk=None, seed=3).embedding.weight.detach().numpy()
    c = small.to_embedding(words, unk=None, seed=4).embedding.weight.detach().numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[1:], c[1:])
    assert a[1:].std() == pytest.approx(small.vectors.std(), rel=0.1)
    no_unk = WordVectors(["cat"], np.ones((1, 6)))
    assert no_unk.to_embedding(["dog"]).n_missing == 1  # no <unk> of ours: random row


def test_to_embedding_padding_row(small):
    emb, missing = small.to_embedding(["<pad>", "cat"], padding_idx=0)
    assert emb.padding_idx == 0 and missing == []
    assert emb.weight[0].abs().sum().item() == 0.0


def test_vectors_side_never_imports_the_trainer():
    code = ("import sys, w2v.vectors, w2v.formats, w2v.evaluate, w2v.query; "
            "print(sorted(m for m in sys.modules if m in ('w2v.train', 'w2v.model', 'w2v.embedding')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lstm_lm_script_smoke(tmp_path):
    """scripts/lstm_lm.py runs both trainings end to end on a tiny slice (a few seconds)."""
    root = Path(__file__).resolve().parent.parent
    text = tmp_path / "text.txt"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    text.write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(400)))
    WordVectors(["<unk>"] + words[:40], rng.standard_normal((41, 8))).save(tmp_path / "v.bin")
    cmd = [sys.executable, str(root / "scripts" / "lstm_lm.py"), str(text), "--vectors", str(tmp_path / "v.bin"),
           "--epochs", "1", "--hidden", "8", "--num-steps", "5", "--max-words", "3000", "--threads", "1", "--token-pattern", r"\S+"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "our vectors: 41 of 52 words found" in out.stdout
    tail = out.stdout.split("best validation perplexity:")[1].strip().splitlines()
    best = dict(line.strip().rsplit(None, 1) for line in tail)
    assert set(best) == {"random init", "our vectors"}
    assert 10 < float(best["random init"]) < 200  # 50 words drawn uniformly: about 50
    bad = subprocess.run(cmd + ["--emb-dim", "16"], capture_output=True, text=True, timeout=120, cwd=root)
    assert bad.returncode == 2 and "differs from the vectors' dim 8" in bad.stderr

