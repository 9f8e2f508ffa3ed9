import gzip

import numpy as np
import pytest

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
