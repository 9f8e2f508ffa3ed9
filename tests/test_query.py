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
    (["--word", "king", "--topn", "0"], "--topn must be at least 1"),
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
