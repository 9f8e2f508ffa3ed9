"""The token cache: encoding a corpus once, reusing the entry, and noticing when it is stale or damaged."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from w2v import safefile, token_cache
from w2v.corpus import Tokenizer, read_chunks
from w2v.token_cache import load_corpus


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


def test_encoding_a_repeated_stream_counts_every_copy(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat\n")
    streams = (read_chunks(path) for _ in range(1000))
    (tmp_path / "work").mkdir()
    enc = token_cache.encode_streams(streams, Tokenizer(), tmp_path / "work")
    assert len(enc) == 6000
    assert dict(zip(enc.types, enc.counts.tolist())) == {"the": 2000, "cat": 1000, "sat": 1000, "on": 1000, "mat": 1000}
    assert sorted(os.listdir(tmp_path / "work")) == ["meta.json", "tokens.npy", "types.txt"]
    assert np.load(tmp_path / "work" / "tokens.npy").tolist()[:6] == [0, 1, 2, 3, 0, 4]


@pytest.mark.parametrize(
    "pattern, message",
    [("[a-z]+ ?", "makes the token 'the ', with whitespace in it"), ("[a-z]*", "matches the empty string")],
)
def test_a_token_pattern_whose_tokens_no_file_can_hold_is_refused(tmp_path, cache_dir, pattern, message):
    (tmp_path / "c.txt").write_text("the cat sat\n")
    with pytest.raises(ValueError, match=rf"data.token_pattern '{re.escape(pattern)}' {message}"):
        load_corpus(str(tmp_path / "c.txt"), Tokenizer(pattern), cache_dir=cache_dir)
    assert not [p for p in os.listdir(cache_dir) if not p.startswith(".")]  # nothing cached


@pytest.mark.parametrize(
    "error, reason",
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError("4194304 requested and 0 written"), "4194304 requested and 0 written: is the disk full?"),  # numpy's
    ],
)
def test_a_full_cache_disk_is_a_value_error_and_leaves_nothing(tmp_path, cache_dir, monkeypatch, error, reason):
    (tmp_path / "c.txt").write_text("the cat sat on the mat\n" * 100)
    real = token_cache._renumber

    def full(raw, rank, n, dest, *args, **kwargs):  # the disk fills up while the ranks are written
        dest.write_bytes(b"\x93NUMPY partial")
        raise error

    monkeypatch.setattr(token_cache, "_renumber", full)
    with pytest.raises(ValueError) as err:
        load_corpus(str(tmp_path / "c.txt"), Tokenizer(), cache_dir=cache_dir)
    assert str(err.value) == (
        f"cannot write the tokenized corpus into data.cache_dir={cache_dir} ({reason}); free space there, "
        "or set data.cache_dir (or $W2V_CACHE_DIR) to a folder with room, or data.cache=false"
    )
    assert os.listdir(cache_dir) == []
    monkeypatch.setattr(token_cache, "_renumber", real)
    assert load_corpus(str(tmp_path / "c.txt"), Tokenizer(), cache_dir=cache_dir).types[0] == "the"


# --- cache identity --------------------------------------------------------------------------


def entry(cache_dir):
    (folder,) = [p for p in Path(cache_dir).iterdir() if not p.name.startswith(".")]
    return folder


@pytest.mark.parametrize("damage", ["types_cut_short", "meta_missing", "tokens_too_short", "meta_garbage"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path, cache_dir, damage):
    path = tmp_path / "c.txt"
    corpus_words = [f"w{'abcdefgh'[i % 8]}{'xyz'[i % 3]}" for i in range(3000)]
    path.write_text(" ".join(corpus_words) + "\n")
    fresh = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir)
    fresh.tokens = np.array(fresh.tokens)  # off the memory map, whose file is about to be damaged
    folder = entry(cache_dir)
    if damage == "types_cut_short":
        lines = (folder / "types.txt").read_text().splitlines(keepends=True)
        (folder / "types.txt").write_text("".join(lines[:5]))
    elif damage == "meta_missing":
        (folder / "meta.json").unlink()
    elif damage == "tokens_too_short":
        np.save(folder / "tokens.npy", fresh.tokens[:100])
    else:
        (folder / "meta.json").write_text("{not json")
    warnings = []
    again = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir, warn=warnings.append)
    assert len(warnings) == 1 and "is damaged" in warnings[0] and "tokenizing again" in warnings[0], warnings
    assert again.types == fresh.types and np.array_equal(again.tokens, fresh.tokens)
    assert again.fingerprint == fresh.fingerprint
    assert load_corpus(str(path), Tokenizer(), cache_dir=cache_dir, warn=warnings.append) and len(warnings) == 1


def test_a_corpus_rewritten_with_the_same_size_and_mtime_is_tokenized_again(tmp_path, cache_dir):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat\nthe dog ran\n")
    before = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir)
    stat = path.stat()
    path.write_text("the dog ran\nthe cat sat\n")  # same bytes, other order
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    warnings = []
    after = load_corpus(str(path), Tokenizer(), cache_dir=cache_dir, warn=warnings.append)
    assert [after.types[r] for r in after.tokens] == ["the", "dog", "ran", "the", "cat", "sat"]
    assert len(warnings) == 1 and "c.txt changed since it was tokenized" in warnings[0]
    assert after.fingerprint != before.fingerprint and len(after) == len(before)
    assert len([p for p in os.listdir(cache_dir) if not p.startswith(".")]) == 1


def test_a_killed_tokenization_is_swept_by_the_next_run(tmp_path, cache_dir):
    from test_safefile import dead_pid

    os.makedirs(cache_dir)
    left = safefile.temp_dir(cache_dir)
    (left / "provisional.u32").write_bytes(b"\0" * 4096)
    stale = left.with_name(left.name.replace(safefile.owner(), f"{dead_pid()}@{safefile._HOST}"))
    os.rename(left, stale)
    live = safefile.temp_dir(cache_dir)  # a tokenization under way in this process
    (tmp_path / "c.txt").write_text("one two\n")
    load_corpus(str(tmp_path / "c.txt"), Tokenizer(), cache_dir=cache_dir)
    assert not stale.exists() and live.exists()


def test_counts_added_in_batches_are_the_counts(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    words = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in rng.zipf(1.5, size=20_000) % 600]
    (tmp_path / "c.txt").write_text(" ".join(words))
    monkeypatch.setattr("w2v.corpus.CHUNK_CHARS", 997)  # many pieces
    out = {}
    for batch in (token_cache.COUNT_BATCH, 1000):  # once at the end, and every ~1,000 ids
        monkeypatch.setattr(token_cache, "COUNT_BATCH", batch)
        (tmp_path / str(batch)).mkdir()
        out[batch] = token_cache.encode([tmp_path / "c.txt"], Tokenizer(), tmp_path / str(batch), workers=1)
    a, b = out.values()
    assert a.counts.tolist() == b.counts.tolist() and a.types == b.types and int(a.counts.sum()) == len(words)
    expected = {w: words.count(w) for w in set(words)}
    assert dict(zip(b.types, b.counts.tolist())) == expected


def test_types_with_spaces_in_words_read_back_line_by_line(tmp_path):
    from w2v.token_cache import _read_types

    path = tmp_path / "types.txt"
    path.write_text("new york 3\nparis 2\nlong\u2028line 1\n", encoding="utf-8")  # a token_pattern that allows spaces
    words, counts = _read_types(path)
    assert words == ["new york", "paris", "long\u2028line"] and counts.tolist() == [3, 2, 1]
    path.write_text("paris 2\nrome 1\n", encoding="utf-8")
    words, counts = _read_types(path)
    assert words == ["paris", "rome"] and counts.dtype == np.int64 and counts.tolist() == [2, 1]
    path.write_text("paris 2\nrome 1", encoding="utf-8")  # cut short
    with pytest.raises(ValueError):
        _read_types(path)


def test_a_corpus_another_process_is_tokenizing_is_waited_for_and_read_not_tokenized_twice(tmp_path, cache_dir, monkeypatch):
    import threading

    (tmp_path / "c.txt").write_text("the cat sat on the mat\n" * 100)
    files, tokenizer, root = [(tmp_path / "c.txt").resolve()], Tokenizer(), Path(cache_dir)
    folder = root / token_cache.cache_key(files, tokenizer)
    encoded = []
    real = token_cache.encode
    monkeypatch.setattr(token_cache, "encode", lambda *a, **k: encoded.append(1) or real(*a, **k))
    got = []
    with token_cache._one_tokenizer(root, folder.name):  # as another process tokenizing it
        reader = threading.Thread(target=lambda: got.append(load_corpus(str(tmp_path / "c.txt"), tokenizer, cache_dir=cache_dir)))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive()  # waiting for the lock
        ours = token_cache._encode_into(root, files, tokenizer, None, 1, folder)
    reader.join(30)
    assert not reader.is_alive() and len(encoded) == 1  # read what the holder published
    assert got[0].fingerprint == ours.fingerprint and got[0].types == ours.types
    assert sorted(os.listdir(cache_dir)) == [folder.name]  # the lock file is gone
