import gzip

import numpy as np
import pytest

from w2v import corpus
from w2v.corpus import Tokenizer, read_chunks, resolve_corpus
from w2v.token_cache import load_corpus


def test_tokenizer_letters_lowercase_and_unicode():
    assert Tokenizer().tokenize("Hello, World! 42 times café_au") == ["hello", "world", "times", "café", "au"]
    assert Tokenizer(lowercase=False).tokenize("Hello World") == ["Hello", "World"]
    assert Tokenizer(r"\S+").tokenize("a-b c.d") == ["a-b", "c.d"]


def test_word_by_word_tokens_are_the_default_patterns_matches_on_any_text():
    """The default tokenizer's word-by-word path gives findall's tokens, character class by character class."""
    import re

    from w2v.corpus import LETTERS, by_words, letter_runs

    findall = re.compile(LETTERS).findall
    # letters of several scripts, digits (decimal and not: ², ½, Ⅷ, ٣), marks, punctuation,
    # underscores, symbols and every kind of whitespace str.split knows
    kinds = [
        "abcxyzABC", "éßøłñ", "αβγΩ", "жщЯ", "中文字", "ｶﾀ", "ǅ", "ʰ", "0123456789", "²³½Ⅷↂ", "٣۴", "\u0301\u0308",
        ".,;:'\"-()[]!?/", "_", "€$+<=>|~^`", "🙂", "\x00\x07", " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u3000",
    ]
    rng = np.random.default_rng(0)
    for _ in range(300):
        picks = rng.integers(0, len(kinds), size=rng.integers(0, 60))
        text = "".join(rng.choice(list(kinds[k])) * int(rng.integers(1, 4)) for k in picks)
        assert by_words(text, findall) == findall(text), ascii(text)
        plain = "the quick brown fox " * 300  # a plain text: letter_runs goes word by word ...
        assert letter_runs(plain + text, findall) == findall(plain + text), ascii(text)
        assert letter_runs(text + plain, findall) == findall(text + plain), ascii(text)  # ... or not
    every = "".join(chr(c) for c in range(0x3000) if not 0xD800 <= c < 0xE000)  # every character of the BMP's first part
    spaced = " ".join(every[i : i + 7] for i in range(0, len(every), 7))
    assert by_words(spaced, findall) == findall(spaced)


def test_the_default_tokenizer_gives_the_regexs_tokens_on_real_text():
    text = "".join(read_chunks(corpus.Path(__file__).resolve().parent.parent / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz"))[:2_000_000]
    findall = Tokenizer().regex.findall
    assert Tokenizer().tokenize(text) == findall(text.lower())
    assert Tokenizer(lowercase=False).tokenize(text) == findall(text)
    assert corpus.by_words(text, findall) == findall(text)  # raw text goes to findall whole; word by word is the same
    normalised = " ".join(findall(text.lower()))  # text8-style: tokenized word by word
    assert Tokenizer().tokenize(normalised) == normalised.split()


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


def test_a_binary_file_names_the_undecodable_bytes(tmp_path):
    (tmp_path / "blob").write_bytes(bytes(range(128, 256)) * 3)
    with pytest.raises(ValueError, match=r"blob is not UTF-8 text: 384 of its first 384 bytes \(100%\) are not valid UTF-8"):
        load_corpus(str(tmp_path / "blob"), Tokenizer(), cache=False)
    (tmp_path / "tiny").write_bytes(bytes(range(200, 240)))  # too few bytes to judge, and no tokens
    with pytest.raises(ValueError, match="no tokens; 40 bytes were not valid UTF-8: is it a binary file"):
        load_corpus(str(tmp_path / "tiny"), Tokenizer(), cache=False)


# --- input that cannot be text --------------------------------------------------------------


def test_random_bytes_and_utf16_are_refused_a_few_bad_bytes_are_not(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "random.bin").write_bytes(rng.bytes(300_000))
    with pytest.raises(ValueError, match=r"random.bin is not UTF-8 text: .* bytes \(4\d%\) are not valid UTF-8"):
        load_corpus(str(tmp_path / "random.bin"), Tokenizer(), cache=False)
    text = "the cat sat on the mat\n" * 5000
    for encoding in ("utf-16", "utf-16-le"):  # with and without a byte-order mark
        (tmp_path / "wide.txt").write_text(text, encoding=encoding)
        with pytest.raises(ValueError, match=r"5\d% of its characters are NUL: UTF-16 text.*iconv -f UTF-16 -t UTF-8"):
            load_corpus(str(tmp_path / "wide.txt"), Tokenizer(), cache=False)
    few = ("the school was open and the cafe was busy, said José\n" * 3000).encode("latin-1")  # 2%: a warning
    (tmp_path / "few.txt").write_bytes(few)
    assert load_corpus(str(tmp_path / "few.txt"), Tokenizer(), cache=False).bad_bytes == 3000


def test_a_damaged_gzip_is_a_value_error(tmp_path):
    words = " ".join(f"w{i % 5000}" for i in range(200_000))  # compresses to ~300 KB
    data = bytearray(gzip.compress(words.encode()))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    (tmp_path / "bad.txt.gz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad.txt.gz: not a readable gzip file \(.*\); the file is damaged"):
        load_corpus(str(tmp_path / "bad.txt.gz"), Tokenizer(r"\w+"), cache=False)
