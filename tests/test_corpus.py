import gzip
import os

import numpy as np
import pytest

from w2v import corpus
from w2v.corpus import Tokenizer, load_corpus, read_chunks, resolve_corpus


def test_tokenizer_letters_lowercase_and_unicode():
    assert Tokenizer().tokenize("Hello, World! 42 times café_au") == ["hello", "world", "times", "café", "au"]
    assert Tokenizer(lowercase=False).tokenize("Hello World") == ["Hello", "World"]
    assert Tokenizer(r"\S+").tokenize("a-b c.d") == ["a-b", "c.d"]


def test_bad_pattern_is_a_value_error():
    with pytest.raises(ValueError, match="token_pattern"):
        Tokenizer("([")


@pytest.mark.parametrize("size", [1, 3, 7, 64])
def test_stream_never_splits_tokens_whatever_the_chunking(size):
    text = "alpha beta\ngamma  delta epsilon\n\nzeta"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    flat = [t for toks in Tokenizer().stream(chunks) for t in toks]
    assert flat == Tokenizer().tokenize(text)


def test_single_line_file_is_read_in_bounded_chunks(tmp_path):
    words = [f"w{i % 97}x" for i in range(300_000)]  # ~2 MB on one line, no newline
    path = tmp_path / "one.txt"
    path.write_text(" ".join(words))
    chunks = list(read_chunks(path, chunk_chars=1 << 16))
    assert max(map(len, chunks)) <= 1 << 16 and len(chunks) > 20
    enc = load_corpus(str(path), Tokenizer(r"\w+"), cache=False)
    assert len(enc) == 300_000
    assert [enc.types[r] for r in enc.tokens[:3]] == ["w0x", "w1x", "w2x"]


def test_files_folders_globs_and_gzip(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one two two\n")
    with gzip.open(tmp_path / "d" / "b.txt.gz", "wt") as f:
        f.write("three three three\n")
    (tmp_path / "d" / ".hidden").write_text("secret\n")
    assert [p.name for p in resolve_corpus(str(tmp_path / "d"))] == ["a.txt", "b.txt.gz"]
    assert [p.name for p in resolve_corpus(str(tmp_path / "d" / "*.gz"))] == ["b.txt.gz"]
    enc = load_corpus(str(tmp_path / "d"), Tokenizer(), cache=False)
    assert enc.types == ["three", "two", "one"] and enc.counts.tolist() == [3, 2, 1]
    assert [enc.types[r] for r in enc.tokens] == ["one", "two", "two", "three", "three", "three"]


def test_missing_and_empty_corpora(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.corpus"):
        resolve_corpus(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("  123 ,,, \n")
    with pytest.raises(ValueError, match="no tokens"):
        load_corpus(str(tmp_path / "empty.txt"), Tokenizer(), cache=False)


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"good \xff\xfe words here\n")
    enc = load_corpus(str(tmp_path / "bad.txt"), Tokenizer(), cache=False)
    assert enc.bad_bytes == 2 and sorted(enc.types) == ["good", "here", "words"]


def test_cache_is_reused_and_keyed_by_settings(tmp_path, cache_dir):
    path = tmp_path / "c.txt"
    path.write_text("The the THE cat\n")
    a = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir)
    b = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir)
    assert isinstance(b.tokens, np.memmap) and b.types == a.types == ["the", "cat"]
    c = load_corpus(str(path), Tokenizer(lowercase=False), cache_dir=cache_dir)
    assert c.types == ["The", "the", "THE", "cat"]
    path.write_text("dog dog\n")  # a changed file is a new key
    assert load_corpus(str(path), Tokenizer(), cache_dir=cache_dir).types == ["dog"]


def test_a_line_of_a_million_tokens_is_counted_whole(tmp_path):
    n = 1_200_000  # gensim would keep the first 10,000 of this "sentence"
    path = tmp_path / "line.txt"
    path.write_text(" ".join(("x", "yy", "zzz")[i % 3] for i in range(n)))  # ~3.6 MB, no newline
    enc = load_corpus(str(path), Tokenizer(), cache=False)
    assert len(enc) == n and enc.counts.tolist() == [n // 3] * 3
    assert [enc.types[r] for r in enc.tokens[-3:]] == ["x", "yy", "zzz"]


def test_a_line_without_whitespace_is_never_cut_inside_a_token(tmp_path):
    n = 1_200_000
    path = tmp_path / "commas.txt"
    # ~7 MB and one "word" for gensim; 1 MB chunk ends fall inside tokens
    path.write_text(",;".join(f"w{'abc'[i % 3]}{'de'[i % 2]}" for i in range(n)))
    enc = load_corpus(str(path), Tokenizer(), cache=False)
    assert len(enc) == n and sorted(enc.counts.tolist()) == [n // 6] * 6 and all(len(t) == 3 for t in enc.types)


@pytest.mark.parametrize("size", [1, 5, 13, 64])
def test_whitespace_free_runs_longer_than_a_chunk_keep_their_tokens(monkeypatch, size):
    monkeypatch.setattr(corpus, "CHUNK_CHARS", 16)  # so the fallback runs on a short text
    text = "Alpha,BETA;gamma.delta--epsilon,zeta,eta,theta " + ",".join(["Iota", "KAPPA"] * 20)
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    flat = [t for toks in Tokenizer().stream(chunks) for t in toks]
    assert flat == Tokenizer().tokenize(text)


def test_encoding_a_repeated_stream_counts_every_copy(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat\n")
    streams = (read_chunks(path) for _ in range(1000))
    (tmp_path / "work").mkdir()
    enc = corpus.encode_streams(streams, Tokenizer(), tmp_path / "work")
    assert len(enc) == 6000
    assert dict(zip(enc.types, enc.counts.tolist())) == {"the": 2000, "cat": 1000, "sat": 1000, "on": 1000, "mat": 1000}
    assert sorted(os.listdir(tmp_path / "work")) == ["meta.json", "tokens.npy", "types.txt"]
    assert np.load(tmp_path / "work" / "tokens.npy").tolist()[:6] == [0, 1, 2, 3, 0, 4]


def test_a_binary_file_names_the_undecodable_bytes(tmp_path):
    (tmp_path / "blob").write_bytes(bytes(range(128, 256)) * 3)
    with pytest.raises(ValueError, match="384 bytes were not valid UTF-8: is it a binary file"):
        load_corpus(str(tmp_path / "blob"), Tokenizer(), cache=False)
