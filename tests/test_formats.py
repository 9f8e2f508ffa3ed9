"""Vectors files: round trips, gensim interop, and clear errors for damaged files."""

import os

import numpy as np
import pytest
import torch

from w2v import formats
from w2v.vectors import WordVectors
from w2v.vocab import Vocab

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")

WORDS = ["<unk>", "the", "König", "naïve", "日本", "a-b", "x"] + [f"w{i}" for i in range(40)]


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(WORDS), 12)).astype(np.float32)
    vectors[3] *= 1e-30  # tiny and huge magnitudes survive the text form too
    vectors[4] *= 1e30
    return WORDS, vectors


SUFFIXES = {"bin": "v.bin", "txt": "v.txt", "glove": "v.glove.txt", "npy": "v.npy", "pt": "v.pt"}


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_round_trip_every_format(tmp_path, table, fmt):
    words, vectors = table
    path = tmp_path / SUFFIXES[fmt]
    WordVectors(words, vectors, counts=np.arange(len(words))).save(path)
    back = WordVectors.load(path)
    assert back.index_to_key == words
    np.testing.assert_array_equal(back.vectors, vectors)  # exact, text included
    if fmt in ("npy", "pt"):
        assert back.counts.tolist() == list(range(len(words)))
    assert sorted(os.listdir(tmp_path)) == sorted([path.name] + (["v.vocab.txt"] if fmt == "npy" else []))


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_format_argument_overrides_suffix(tmp_path, table, fmt):
    words, vectors = table
    path = tmp_path / "vectors.data"
    WordVectors(words, vectors).save(path, format=fmt)
    np.testing.assert_array_equal(WordVectors.load(path, format=fmt).vectors, vectors)


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_reads_ours_and_we_read_gensims(tmp_path, table, binary):
    words, vectors = table
    ours = tmp_path / ("ours.bin" if binary else "ours.txt")
    WordVectors(words, vectors).save_word2vec_format(ours, binary=binary)
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert kv.index_to_key == words
    np.testing.assert_array_equal(kv.vectors, vectors)

    theirs = tmp_path / "theirs.data"
    kv.save_word2vec_format(str(theirs), binary=binary)
    back = WordVectors.load_word2vec_format(theirs, binary=binary)
    assert back.index_to_key == words
    np.testing.assert_array_equal(back.vectors, vectors)


def test_reads_the_c_tools_text_layout(tmp_path):
    # word2vec.c writes "%lf " per value: six decimals and a trailing space
    path = tmp_path / "c.txt"
    path.write_bytes(b"2 3\n</s> 0.001000 -0.002000 0.003000 \nking 1.500000 2.000000 -3.250000 \n")
    wv = WordVectors.load(path)
    assert wv.index_to_key == ["</s>", "king"]
    np.testing.assert_allclose(wv["king"], [1.5, 2.0, -3.25])


def test_binary_with_and_without_newlines(tmp_path, table):
    words, vectors = table
    ours = tmp_path / "ours.bin"
    formats.write_word2vec(ours, words, vectors, binary=True)  # C tool layout: newline after each vector
    gensim_style = tmp_path / "gensim.bin"
    with open(gensim_style, "wb") as f:  # gensim's layout: no newline
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for w, v in zip(words, vectors):
            f.write(w.encode() + b" " + v.astype("<f4").tobytes())
    assert ours.stat().st_size == gensim_style.stat().st_size + len(words)
    for path in (ours, gensim_style):
        got_words, got = formats.read_word2vec(path, binary=True)
        assert got_words == words
        np.testing.assert_array_equal(got, vectors)


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_limit_reads_the_first_vectors(tmp_path, table, fmt):
    words, vectors = table
    path = tmp_path / SUFFIXES[fmt]
    formats.write_vectors(path, words, vectors)
    got_words, got, _ = formats.read_vectors(path, limit=5)
    assert got_words == words[:5]
    np.testing.assert_array_equal(got, vectors[:5])
    assert WordVectors.load(path, limit=100).vectors.shape == vectors.shape


def test_torch_file_holds_plain_values(tmp_path, table):
    words, vectors = table
    path = tmp_path / "v.pt"
    WordVectors(words, vectors).save(path)
    obj = torch.load(path, weights_only=True)
    assert obj["index_to_key"] == words
    assert torch.equal(obj["vectors"], torch.from_numpy(vectors))


def test_npy_reads_the_trainers_vocab_txt(tmp_path, table):
    words, vectors = table
    np.save(tmp_path / "vectors.npy", vectors)
    Vocab(words, list(range(len(words), 0, -1))).save(tmp_path / "vocab.txt")
    wv = WordVectors.load(tmp_path / "vectors.npy")
    assert wv.index_to_key == words and wv.counts[0] == len(words)
    np.save(tmp_path / "vectors.npy", vectors[:-1])
    with pytest.raises(ValueError, match="rows but .* lists"):
        WordVectors.load(tmp_path / "vectors.npy")
    os.remove(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="vectors.vocab.txt or .*vocab.txt"):
        WordVectors.load(tmp_path / "vectors.npy")


# --- damaged files -------------------------------------------------------------------------


def test_truncated_binary_names_file_and_counts(tmp_path, table):
    words, vectors = table
    path = tmp_path / "vectors.bin"
    formats.write_word2vec(path, words, vectors, binary=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"vectors.bin: expected {len(words)} vectors, file ends after \d+; "
                                         "the file is truncated"):
        WordVectors.load(path)
    assert WordVectors.load_word2vec_format(path, binary=True, limit=3).vectors.shape == (3, 12)


def test_truncated_text(tmp_path, table):
    words, vectors = table
    path = tmp_path / "vectors.txt"
    formats.write_word2vec(path, words, vectors)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:11]))
    with pytest.raises(ValueError, match=f"expected {len(words)} vectors, file ends after 10"):
        WordVectors.load(path)


def test_malformed_text_names_the_line(tmp_path, table):
    words, vectors = table
    path = tmp_path / "vectors.txt"
    formats.write_word2vec(path, words, vectors)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = lines[:]
    bad[5] = bad[5].replace(" ", " 1.0x ", 1).replace(" ", "", 0)
    bad[5] = " ".join(bad[5].split()[:-1]) + "\n"  # same count of fields, one is not a number
    path.write_text("".join(bad), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vectors.txt:6: b?'1.0x' is not a number"):
        WordVectors.load(path)
    bad = lines[:]
    bad[7] = bad[7].rstrip("\n") + " 4.5\n"
    path.write_text("".join(bad), encoding="utf-8")
    with pytest.raises(ValueError, match="vectors.txt:8: expected a word and 12 numbers, got 13"):
        WordVectors.load(path)
    path.write_text("".join(lines) + "extra 1 2 3 4 5 6 7 8 9 10 11 12\n", encoding="utf-8")
    with pytest.raises(ValueError, match="more lines than the"):
        WordVectors.load(path)


@pytest.mark.parametrize("first", [b"", b"hello world\n", b"3\n", b"the 0.1 0.2 0.3\n"])
def test_bad_header(tmp_path, first):
    path = tmp_path / "v.txt"
    path.write_bytes(first)
    with pytest.raises(ValueError, match="v.txt: the first line should be the word2vec header"):
        WordVectors.load(path)


def test_wrong_binary_flag_gets_a_hint(tmp_path, table):
    words, vectors = table
    formats.write_word2vec(tmp_path / "v.bin", words, vectors, binary=True)
    formats.write_word2vec(tmp_path / "v.txt", words, vectors, binary=False)
    with pytest.raises(ValueError, match="pass binary=True"):
        WordVectors.load_word2vec_format(tmp_path / "v.bin", binary=False)
    with pytest.raises(ValueError, match="pass binary=False"):
        WordVectors.load_word2vec_format(tmp_path / "v.txt", binary=True)


def test_trailing_bytes_after_binary(tmp_path, table):
    words, vectors = table
    path = tmp_path / "v.bin"
    formats.write_word2vec(path, words, vectors, binary=True)
    path.write_bytes(path.read_bytes() + b"junk " + bytes(48))
    with pytest.raises(ValueError, match="bytes follow the 47 vectors"):
        WordVectors.load(path)


def test_unicode_errors(tmp_path):
    path = tmp_path / "cut.bin"
    cut = "König".encode()[:2]  # b"K\xc3": cut inside "ö", as word2vec.c can do
    with open(path, "wb") as f:
        f.write(b"2 2\n" + cut + b" " + np.float32([1, 2]).tobytes() + b"\nok " + np.float32([3, 4]).tobytes())
    with pytest.raises(ValueError, match="word 1 is not valid UTF-8.*unicode_errors='ignore'"):
        WordVectors.load(path)
    assert WordVectors.load(path, unicode_errors="ignore").index_to_key == ["K", "ok"]
    assert WordVectors.load(path, unicode_errors="replace").index_to_key == ["K\ufffd", "ok"]


def test_duplicate_words_keep_the_first_like_gensim(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("3 2\na 1 2\nb 3 4\na 5 6\n")
    wv = WordVectors.load(path)
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path))
    assert wv.index_to_key == ["a", "b"] and list(kv.key_to_index) == ["a", "b"]
    np.testing.assert_array_equal(wv.vectors, kv[["a", "b"]])  # gensim 4.4 leaves a None in index_to_key


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin: no such file"):
        WordVectors.load(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        WordVectors.load(tmp_path, format="bin")


def test_unknown_suffix_and_format(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the vectors format"):
        formats.format_from_path(tmp_path / "v.h5")
    with pytest.raises(ValueError, match="unknown vectors format 'h5'"):
        formats.format_from_path(tmp_path / "v.bin", format="h5")


def test_damaged_npy_and_pt(tmp_path, table):
    words, vectors = table
    WordVectors(words, vectors).save(tmp_path / "v.npy")
    (tmp_path / "v.npy").write_bytes((tmp_path / "v.npy").read_bytes()[:200])
    with pytest.raises(ValueError, match="v.npy: not a readable .npy file"):
        WordVectors.load(tmp_path / "v.npy")
    (tmp_path / "v.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="v.pt: not a readable torch vectors file"):
        WordVectors.load(tmp_path / "v.pt")
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not one of w2v's vectors files"):
        WordVectors.load(tmp_path / "other.pt")


def test_words_with_whitespace_are_refused(tmp_path):
    wv = WordVectors(["a", "new york"], np.ones((2, 3)))
    for name in ("v.txt", "v.bin", "v.npy"):
        with pytest.raises(ValueError, match="'new york' is empty or holds whitespace"):
            wv.save(tmp_path / name)
    assert os.listdir(tmp_path) == []


# --- atomic writes -------------------------------------------------------------------------


def test_atomic_write_leaves_old_file_and_no_temp_on_error(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with formats.atomic_write(path) as f:
            f.write(b"partial")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["v.bin"]


def test_failed_save_leaves_no_partial_file(tmp_path, table, monkeypatch):
    words, vectors = table

    def broken_save(f, *args, **kwargs):
        f.write(b"\x93NUMPY partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(formats.np, "save", broken_save)
    with pytest.raises(OSError, match="no space left"):
        WordVectors(words, vectors).save(tmp_path / "v.npy")
    assert not (tmp_path / "v.npy").exists()
    assert all(not name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_write_into_missing_folder(tmp_path, table):
    words, vectors = table
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist; create it first"):
        WordVectors(words, vectors).save(tmp_path / "missing" / "v.bin")


def test_unicode_errors_in_text(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(b"2 2\nK\xc3 1 2\nok 3 4\n")
    with pytest.raises(ValueError, match="cut.txt: line 2 is not valid UTF-8"):
        WordVectors.load(path)
    assert WordVectors.load(path, unicode_errors="ignore").index_to_key == ["K", "ok"]


@pytest.mark.parametrize("fmt", ["txt", "glove"])
def test_text_read_in_small_blocks(tmp_path, table, monkeypatch, fmt):
    from w2v import files

    monkeypatch.setattr(files, "BLOCK_BYTES", 100)  # lines cut by every block end
    words, vectors = table
    path = tmp_path / SUFFIXES[fmt]
    WordVectors(words, vectors).save(path)
    wv = WordVectors.load(path)
    assert wv.index_to_key == words and np.array_equal(wv.vectors, vectors)
    assert WordVectors.load(path, limit=5).index_to_key == words[:5]
    if fmt == "txt":
        path.write_bytes(path.read_bytes() + b"extra 1 2 3 4 5 6 7 8 9 10 11 12\n")
        with pytest.raises(ValueError, match="more lines than the 47 vectors the header announces"):
            WordVectors.load(path)


def test_limit_must_be_a_count(tmp_path, table):
    words, vectors = table
    WordVectors(words, vectors).save(tmp_path / "v.bin")
    for bad in (-3, 2.5, "10"):
        with pytest.raises(ValueError, match="limit must be a whole number >= 0"):
            WordVectors.load(tmp_path / "v.bin", limit=bad)
    assert len(WordVectors.load(tmp_path / "v.bin", limit=0)) == 0


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def test_text_with_nan_or_inf_is_written_and_read_back(tmp_path):
    table = np.array([[1.5, np.nan], [-np.inf, 2.0]], dtype=np.float32)
    text, ends = formats.scientific(table)
    assert text.decode().splitlines() == ["1.50000000e+00 nan", "-inf 2.00000000e+00"] and ends.tolist() == [19, 39]
    path = tmp_path / "v.txt"
    formats.write_word2vec(path, ["a", "b"], table)
    words, back = formats.read_word2vec(path)[:2]
    assert list(words) == ["a", "b"]
    np.testing.assert_array_equal(np.isnan(back), np.isnan(table))


def test_text_file_of_many_blocks_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(1)
    table = (rng.standard_normal((3000, 300)) * 0.1).astype(np.float32)  # several of the writer's blocks
    words = [f"w{i}é" for i in range(len(table))]
    path = tmp_path / "v.txt"
    formats.write_word2vec(path, words, table)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "3000 300" and lines[1].startswith("w0é ") and lines[-1].startswith("w2999é ")
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path))
    assert kv.index_to_key == words
    np.testing.assert_array_equal(_bits(kv.vectors), _bits(table))
