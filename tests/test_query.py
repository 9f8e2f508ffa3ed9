"""The query command line: one-shot forms, the prompt, and user errors."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from w2v.query import main, parse_expression
from w2v.vectors import WordVectors

# king - man + woman = queen (exactly, before normalising); "prince" is close to king
WORDS = ["<unk>", "man", "woman", "king", "queen", "prince", "apple"]
TABLE = [[0, 0, 0, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [1, 0.1, 1, 0.1], [-1, 0, 0, 0.2]]


@pytest.fixture
def vectors_file(tmp_path):
    path = tmp_path / "vectors.bin"
    WordVectors(WORDS, np.asarray(TABLE, dtype=np.float32)).save(path)
    return path


def test_parse_expression():
    assert parse_expression("king - man + woman") == (["king", "woman"], ["man"])
    assert parse_expression("- man") == ([], ["man"])
    assert parse_expression("well-known word") == (["well-known", "word"], [])
    assert parse_expression("  ") == ([], [])


def test_word(vectors_file, capsys):
    assert main([str(vectors_file), "--word", "king", "--topn", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[0] == "prince" and len(out) == 4
    assert "king" not in [line.split()[0] for line in out[2:]]


def test_analogy(vectors_file, capsys):
    assert main([str(vectors_file), "--analogy", "man", "king", "woman", "--topn", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    unit = {w: np.asarray(v) / np.linalg.norm(v) for w, v in zip(WORDS, TABLE)}
    query = unit["king"] - unit["man"] + unit["woman"]  # 3CosAdd adds unit vectors
    assert out[2].split() == ["queen", f"{query @ unit['queen'] / np.linalg.norm(query):.6f}"]
    assert len(out) == 5


def test_json(vectors_file, capsys):
    assert main([str(vectors_file), "--analogy", "man", "king", "woman", "--json", "--topn", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["positive"] == ["king", "woman"] and result["negative"] == ["man"]
    assert [r["word"] for r in result["results"]][0] == "queen"
    assert 0.9 < result["results"][0]["cosine"] < 1
    assert len(result["results"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--word", "zebra"], "error: 'zebra' is not in the vocabulary (7 words)"),
    (["--word", "King"], "did you mean 'king'?"),
    (["--analogy", "man", "king", "unicorn"], "'unicorn' is not in the vocabulary"),
    (["--word", "king", "--analogy", "a", "b", "c"], "either --word or --analogy"),
    (["--word", "king", "--topn", "0"], "argument --topn: must be a whole number >= 1 in digits, got '0'"),
])
def test_user_errors_are_one_line(vectors_file, capsys, argv, message):
    assert main([str(vectors_file)] + argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_missing_and_corrupt_files(tmp_path, vectors_file, capsys):
    assert main([str(tmp_path / "nope.bin"), "--word", "king"]) == 2
    assert "nope.bin: no such file; check the path" in capsys.readouterr().err
    vectors_file.write_bytes(vectors_file.read_bytes()[:50])
    assert main([str(vectors_file), "--word", "king"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "expected 7 vectors, file ends after" in err and err.count("\n") == 1


def test_prompt_reads_stdin(vectors_file, capsys, monkeypatch):
    lines = "king\n\nking - man + woman\nzebra\nEXIT\nqueen\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main([str(vectors_file), "--topn", "1"]) == 0
    out = capsys.readouterr().out
    assert "(query: king)" in out and "prince" in out
    assert "(query: king + woman - man)" in out and "queen" in out
    assert "'zebra' is not in the vocabulary" in out
    assert "(query: queen)" not in out  # stopped at EXIT


def test_prompt_json_lines(vectors_file, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("king\nzebra\n"))
    assert main([str(vectors_file), "--json", "--topn", "2"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert results[0]["results"][0]["word"] == "prince" and "error" in results[1]


def test_module_runs_as_a_program(vectors_file, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "w2v.query", str(vectors_file), "--topn", "1"],
                        input="king - man + woman\n", capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "queen" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "w2v.query", str(tmp_path / "missing.txt")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == f"error: {tmp_path / 'missing.txt'}: no such file; check the path"


# --- hostile input: clamp, bound, refuse; never hang, never a traceback ---------------------

import os  # noqa: E402
import tracemalloc  # noqa: E402

from w2v import formats  # noqa: E402




def one_line_error(capsys, message):
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_a_huge_topn_is_clamped_to_the_vocabulary(vectors_file, capsys):
    wv = WordVectors.load(vectors_file)
    tracemalloc.start()
    try:
        near = wv.most_similar("king", topn=10**8)  # 1.2 GB if arrays were sized by topn
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(near) == len(WORDS) - 1 and peak < 1 << 20
    assert main([str(vectors_file), "--word", "king", "--topn", str(10**12), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == len(WORDS) - 1


@pytest.mark.parametrize("argv, message", [
    (["--word", "king", "--topn", "1e12"], "argument --topn: must be a whole number >= 1 in digits, got '1e12'"),
    (["--word", "king", "--topn", "ten"], "argument --topn: must be a whole number"),
    (["--word", "king", "--limit", "-3"], "argument --limit: must be a whole number >= 1 in digits, got '-3'"),
    (["--word", "king", "--limit", "0"], "argument --limit: must be a whole number >= 1"),
    (["--word", "king", "--restrict-vocab", "-1"], "argument --restrict-vocab: must be a whole number >= 0 (0: all)"),
    (["--word", "king", "--format", "h5"], "unknown vectors format 'h5'"),
    (["--word"], "argument --word: expected one argument"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_are_one_line(vectors_file, capsys, argv, message):
    assert main([str(vectors_file)] + argv) == 2
    one_line_error(capsys, message)


def test_restrict_vocab_zero_searches_every_word(vectors_file, capsys):
    assert main([str(vectors_file), "--word", "king", "--restrict-vocab", "0", "--topn", "1"]) == 0
    assert "prince" in capsys.readouterr().out


def test_a_fifo_is_refused_not_waited_on(tmp_path, capsys, no_hang):
    fifo = tmp_path / "vectors.bin"
    os.mkfifo(fifo)
    assert main([str(fifo), "--word", "king"]) == 2
    one_line_error(capsys, f"{fifo} is a FIFO, not a regular file")


def test_a_device_is_refused_not_read_forever(capsys, no_hang):
    assert main(["/dev/zero", "--format", "txt", "--word", "king"]) == 2
    one_line_error(capsys, "/dev/zero is a character device, not a regular file")


@pytest.mark.parametrize("content, message", [
    (b"7 4" + b"0" * 9000, "v.txt:1: a line longer than 4,096 bytes"),  # the header
    (b"7 4\nking " + b"1" * 9000, "v.txt:2: a line longer than 4,096 bytes"),  # a vector
])
def test_a_text_file_without_newlines_is_read_with_a_bound(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 4096)
    (tmp_path / "v.txt").write_bytes(content)
    assert main([str(tmp_path / "v.txt"), "--word", "king"]) == 2
    one_line_error(capsys, message)


def test_a_binary_file_without_spaces_is_read_with_a_bound(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(formats, "MAX_WORD_BYTES", 1024)
    (tmp_path / "v.bin").write_bytes(b"7 4\n" + b"k" * 5000)
    assert main([str(tmp_path / "v.bin"), "--word", "king"]) == 2
    one_line_error(capsys, "word 1 is longer than 1,024 bytes")


def test_an_npy_header_claiming_a_trillion_rows(tmp_path, capsys):
    WordVectors(WORDS, np.asarray(TABLE, dtype=np.float32)).save(tmp_path / "v.npy")
    data = (tmp_path / "v.npy").read_bytes()
    header = data[: data.index(b"\n") + 1]
    forged = header.replace(b"(7, 4)", b"(1000000000000, 4)")
    forged = forged[:-1].rstrip(b" ")[: len(header) - 1].ljust(len(header) - 1) + b"\n"  # same header length
    (tmp_path / "v.npy").write_bytes(forged + data[len(header):])
    tracemalloc.start()
    try:
        assert main([str(tmp_path / "v.npy"), "--word", "king"]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line_error(capsys, "v.npy: not a readable .npy file (the header announces a float32 array of shape "
                           "(1000000000000, 4) (16,000,000,000,000 bytes) but only 112 bytes follow it)")
    assert peak < 1 << 24


def test_a_query_line_without_end_is_refused(vectors_file, capsys, monkeypatch):
    import w2v.query as query

    monkeypatch.setattr(query, "MAX_QUERY_CHARS", 100)
    monkeypatch.setattr(sys, "stdin", io.StringIO("king\n" + "x" * 1000))
    assert main([str(vectors_file), "--topn", "1"]) == 2
    captured = capsys.readouterr()
    assert "prince" in captured.out and captured.err.startswith("error: a query line longer than 100 characters")


def test_nan_cosines_are_json_null(tmp_path, capsys, monkeypatch):
    table = np.asarray(TABLE, dtype=np.float32)
    table[5] = np.nan  # a damaged row: its cosines are NaN
    WordVectors(WORDS, table).save(tmp_path / "v.bin")
    assert main([str(tmp_path / "v.bin"), "--word", "king", "--json", "--topn", "6"]) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    cosines = {r["word"]: r["cosine"] for r in result["results"]}
    assert cosines["prince"] is None and isinstance(cosines["queen"], float)
    monkeypatch.setattr(sys, "stdin", io.StringIO("king\n"))  # the prompt's JSON lines too
    assert main([str(tmp_path / "v.bin"), "--json", "--topn", "6"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_usage_errors_from_the_program_are_one_line(vectors_file):
    r = subprocess.run([sys.executable, "-m", "w2v.query", str(vectors_file), "--word", "king", "--topn", "1e12"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: argument --topn: must be a whole number >= 1 in digits, got '1e12' (see python -m w2v.query --help)"]
