"""Reading the files a user names: regular files only, lines of bounded length."""

import io
import os

import pytest

from w2v import files


def test_line_blocks_join_lines_cut_by_a_block_end(monkeypatch):
    monkeypatch.setattr(files, "BLOCK_BYTES", 7)
    text = b"alpha beta\ngamma\n\ndelta epsilon zeta\nlast"
    got = [line for block in files.line_blocks(io.BytesIO(text), "t", 100) for line in block]
    assert got == text.split(b"\n")
    assert [line for block in files.line_blocks(io.BytesIO(b"a\nb\n"), "t", 100) for line in block] == [b"a", b"b"]


def test_a_line_past_the_bound_names_its_number(monkeypatch):
    monkeypatch.setattr(files, "BLOCK_BYTES", 8)
    blocks = files.line_blocks(io.BytesIO(b"one\ntwo\n" + b"x" * 100), "f.txt", 20)
    with pytest.raises(ValueError, match=r"f.txt:3: a line longer than 20 bytes"):
        list(blocks)
    with pytest.raises(ValueError, match=r"f.txt:2: a line longer than 10 bytes"):
        list(files.lines(io.BytesIO(b"ok\n" + b"y" * 50), "f.txt", 10))
    assert list(files.lines(io.BytesIO(b"ok\n" + b"y" * 10), "f.txt", 10)) == [b"ok\n", b"y" * 10]


def test_check_regular(tmp_path):
    (tmp_path / "f").write_text("x")
    files.check_regular(tmp_path / "f")
    os.symlink(tmp_path / "f", tmp_path / "link")
    files.check_regular(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="fifo is a FIFO, not a regular file"):
        files.check_regular(tmp_path / "fifo")
    with pytest.raises(ValueError, match="/dev/null is a character device"):
        files.check_regular("/dev/null")
    with pytest.raises(IsADirectoryError):
        files.check_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        files.check_regular(tmp_path / "missing")
