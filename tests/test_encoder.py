"""Text to provisional ids in worker processes: the same encoded corpus, bitwise, as one process."""

import os
import re
import threading

import numpy as np
import pytest

from w2v import encoder, native_tokens
from w2v.corpus import Tokenizer
from w2v.encoder import TypeIds, can_fork, encode_pieces
from w2v.token_cache import encode, load_corpus

needs_fork = pytest.mark.skipif(not can_fork(), reason="workers are forked on Linux only")


def write_corpus(path, words=60_000, seed=0):
    """Zipf-like text with punctuation, digits, accents and long lines: many new words in every piece."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{chr(97 + i % 26)}{'é' if i % 7 == 0 else ''}{i:x}".replace("0", "o") for i in range(5_000)]
    ranks = np.minimum(rng.zipf(1.3, size=words), len(vocab)) - 1
    parts = [vocab[r] + (", " if i % 11 == 0 else " 42 " if i % 13 == 0 else "\n" if i % 97 == 0 else " ")
             for i, r in enumerate(ranks.tolist())]
    path.write_text("".join(parts), encoding="utf-8")
    return path


@needs_fork
@pytest.mark.parametrize("workers,table", [(2, None), (3, None), (2, 300)], ids=["2", "3", "2-small-tables"])
def test_workers_encode_the_same_corpus_bitwise_as_one_process(tmp_path, monkeypatch, workers, table):
    monkeypatch.setattr(native_tokens, "_native", lambda: None)  # Python's tokenizer: the one workers run
    monkeypatch.setattr("w2v.corpus.CHUNK_CHARS", 4096)  # ~100 pieces: words first met in every worker
    if table:  # each worker starts its word table afresh many times (forked: it sees the patch)
        monkeypatch.setattr(encoder, "WORKER_TYPES", table)
    files = [write_corpus(tmp_path / "a.txt"), write_corpus(tmp_path / "b.txt", 20_000, seed=1)]
    out = {}
    for n in (1, workers):
        work = tmp_path / f"work{n}"
        work.mkdir()
        out[n] = encode(files, Tokenizer(), work, workers=n)
    one, many = out[1], out[workers]
    assert len(one) > 70_000 and len(one.types) > 500
    np.testing.assert_array_equal(one.tokens, many.tokens)
    assert one.types == many.types and one.counts.tolist() == many.counts.tolist()
    assert one.fingerprint == many.fingerprint
    for name in ("tokens.npy", "types.txt", "meta.json"):
        assert (tmp_path / "work1" / name).read_bytes() == (tmp_path / f"work{workers}" / name).read_bytes()


@pytest.mark.skipif(native_tokens._native() is None, reason="no C compiler here")
def test_the_c_tokenizer_writes_the_same_cache_entry_bitwise_as_pythons(tmp_path, monkeypatch):
    monkeypatch.setattr("w2v.corpus.CHUNK_CHARS", 4096)
    files = [write_corpus(tmp_path / "a.txt"), write_corpus(tmp_path / "b.txt", 20_000, seed=1)]
    for way in ("c", "python"):
        if way == "python":
            monkeypatch.setattr(native_tokens, "_native", lambda: None)
        (tmp_path / way).mkdir()
        encode(files, Tokenizer(), tmp_path / way, workers=1)
    for name in ("tokens.npy", "types.txt", "meta.json"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "python" / name).read_bytes()
    assert len((tmp_path / "c" / "types.txt").read_text().splitlines()) > 500


@needs_fork
def test_first_seen_order_survives_words_new_to_a_worker_but_not_to_the_corpus():
    pieces = ["b a ", "a c ", "c b d ", "e a ", ["f", "b"], "g f "]
    seen = {}
    for workers in (1, 2):
        ids = TypeIds(r"[^\W\d_]+")
        seen[workers] = (np.concatenate(list(encode_pieces(iter(pieces), Tokenizer(), ids, workers))).tolist(), ids.words)
    assert seen[1] == seen[2] == ([0, 1, 1, 2, 2, 0, 3, 4, 1, 5, 0, 6, 5], ["b", "a", "c", "d", "e", "f", "g"])


@needs_fork
def test_a_bad_token_pattern_is_refused_from_a_worker_with_the_same_message(tmp_path, cache_dir):
    (tmp_path / "c.txt").write_text("the cat sat\n" * 5000)
    with pytest.raises(ValueError, match=re.escape("data.token_pattern '[a-z]+ ?' makes the token 'the ', with whitespace")):
        load_corpus(str(tmp_path / "c.txt"), Tokenizer("[a-z]+ ?"), cache_dir=cache_dir, workers=2)
    assert not [p for p in os.listdir(cache_dir) if not p.startswith(".")]  # nothing cached


def _dying(text):
    os._exit(9)  # as a worker killed for memory


@needs_fork
def test_a_worker_that_dies_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(native_tokens, "_native", lambda: None)
    monkeypatch.setattr(encoder, "_encode_in_worker", _dying)
    (tmp_path / "c.txt").write_text("the cat sat\n" * 5000)
    (tmp_path / "work").mkdir()
    with pytest.raises(ValueError, match=r"a tokenizing process ended unexpectedly .* data.tokenize_workers=1"):
        encode([tmp_path / "c.txt"], Tokenizer(), tmp_path / "work", workers=2)


@needs_fork
def test_workers_are_not_forked_while_another_thread_works(tmp_path):
    release = threading.Event()
    monitor = threading.Thread(target=release.wait, daemon=True)  # as tqdm's monitor
    monitor.start()
    assert can_fork()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork()
        ids = TypeIds(r"[^\W\d_]+")  # still encodes, in this process
        assert np.concatenate(list(encode_pieces(iter(["a b a "]), Tokenizer(), ids, 4))).tolist() == [0, 1, 0]
    finally:
        release.set()
        other.join()
        monitor.join()


def test_small_corpora_are_encoded_in_this_process(tmp_path, monkeypatch):
    monkeypatch.setattr(native_tokens, "_native", lambda: None)
    calls = []
    monkeypatch.setattr(encoder, "_Workers", lambda *a: calls.append(a))
    (tmp_path / "c.txt").write_text("the cat sat\n" * 100)
    (tmp_path / "work").mkdir()
    enc = encode([tmp_path / "c.txt"], Tokenizer(), tmp_path / "work")  # workers=None: by size
    assert len(enc) == 300 and not calls


def test_reading_ahead_keeps_the_order_raises_errors_in_turn_and_stops_when_closed():
    def pieces(fail_at=None, log=None):
        for i in range(100):
            if i == fail_at:
                raise ValueError("corpus file x is not UTF-8 text")
            if log is not None:
                log.append(i)
            yield f"p{i} "

    assert list(encoder._read_ahead(pieces())) == [f"p{i} " for i in range(100)]
    got = []
    with pytest.raises(ValueError, match="not UTF-8"):
        for piece in encoder._read_ahead(pieces(fail_at=50)):
            got.append(piece)
    assert got == [f"p{i} " for i in range(50)]  # every piece before the error, then the error
    read = []
    ahead = encoder._read_ahead(pieces(log=read), depth=2)
    assert next(ahead) == "p0 "
    ahead.close()
    for _ in range(50):
        if not any(t.name == "w2v-read-corpus" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "w2v-read-corpus" for t in threading.enumerate())
    assert len(read) <= 5  # the thread stopped at depth + a few pieces, not at the end
