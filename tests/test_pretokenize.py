"""The corpus tokenized in a child process while the command imports torch."""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from w2v import pretokenize

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux only")

HEADER = """
import json, sys, time
from types import SimpleNamespace
from w2v import pretokenize
from w2v.corpus import Tokenizer
from w2v.token_cache import is_cached
data = SimpleNamespace(corpus=sys.argv[1], token_pattern=r"[^\\W\\d_]+", lowercase=True, cache=True,
                       cache_dir=sys.argv[2], tokenize_workers=None)
"""


def run_script(body, corpus, cache_dir):
    """``body`` in a fresh interpreter (no torch there, as in the command before its imports)."""
    code = HEADER + textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", code, str(corpus), str(cache_dir)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_run_reads_what_the_child_tokenized_without_tokenizing_again(tmp_path):
    (tmp_path / "c.txt").write_text("the cat sat on the mat\n" * 1000)
    got = run_script(
        """
        import os
        from pathlib import Path
        from w2v import token_cache
        child = pretokenize.start(data)
        root = Path(data.cache_dir)
        for _ in range(400):  # until the child holds the entry's lock (or has published it)
            if root.is_dir() and os.listdir(root):
                break
            time.sleep(0.025)
        def tokenize_here(*a, **k):
            raise AssertionError("the run tokenized the corpus itself")
        token_cache.encode = tokenize_here
        corpus = token_cache.load_corpus(data.corpus, Tokenizer(), cache_dir=data.cache_dir)  # waits for the child
        status = child.stop()
        again = pretokenize.start(data)  # cached now: nothing to do
        import torch
        data.cache_dir = data.cache_dir + "-other"
        with_torch = pretokenize.start(data)  # never forked once torch is loaded
        print(json.dumps({"status": status, "tokens": len(corpus), "types": corpus.types, "again": again is not None,
                          "with_torch": with_torch is not None, "left": sorted(os.listdir(root))}))
        """,
        tmp_path / "c.txt", tmp_path / "cache",
    )
    assert got["status"] == 0 and got["tokens"] == 6000 and got["types"] == ["the", "cat", "sat", "on", "mat"]
    assert not got["again"] and not got["with_torch"] and len(got["left"]) == 1  # the entry, no lock file


def test_what_the_child_meets_is_left_to_the_run(tmp_path):
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 8192)  # not text: the child ends, caching nothing
    got = run_script(
        """
        import os
        child = pretokenize.start(data)
        while child.pid is not None:
            done, status = os.waitpid(child.pid, os.WNOHANG)
            if done:
                child.pid = None
                break
            time.sleep(0.02)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status), "cached": is_cached(data.corpus, Tokenizer(), sys.argv[2])}))
        """,
        tmp_path / "blob.txt", tmp_path / "cache",
    )
    assert got == {"status": 1, "cached": False}


def test_a_run_that_ends_first_ends_the_child_which_removes_its_work(tmp_path):
    (tmp_path / "c.txt").write_text("a b c\n")
    got = run_script(
        """
        import os
        from pathlib import Path
        from w2v import token_cache
        real = token_cache.encode
        def slow(files, tokenizer, work, *a, **k):
            real(files, tokenizer, work, *a, **k)
            time.sleep(60)  # as a large corpus: stopped here, its files written
        token_cache.encode = slow
        child = pretokenize.start(data)
        root = Path(data.cache_dir)
        for _ in range(400):  # until the child is at work
            if root.is_dir() and any(n.startswith(".encoding.") for n in os.listdir(root)):
                break
            time.sleep(0.025)
        at_work = sorted(os.listdir(root))
        started = time.perf_counter()
        status = child.stop()
        print(json.dumps({"at_work": at_work, "status": status, "seconds": time.perf_counter() - started,
                          "left": sorted(os.listdir(root))}))
        """,
        tmp_path / "c.txt", tmp_path / "cache",
    )
    assert any(n.startswith(".encoding.") for n in got["at_work"]) and any(n.endswith(".lock") for n in got["at_work"])
    assert got["status"] == 1 and got["seconds"] < 10
    assert got["left"] == []  # its unfinished folder and its lock file removed


def test_no_child_where_it_cannot_help(tmp_path, monkeypatch):
    (tmp_path / "c.txt").write_text("a b c\n")
    data = SimpleNamespace(
        corpus=str(tmp_path / "c.txt"), token_pattern=r"[^\W\d_]+", lowercase=True, cache=True,
        cache_dir=str(tmp_path / "cache"), tokenize_workers=None,
    )
    assert "torch" in sys.modules and pretokenize.start(data) is None  # this process has torch loaded
    monkeypatch.setattr(pretokenize, "_can_fork", lambda: True)
    for change in (dict(cache=False), dict(corpus=str(tmp_path / "missing.txt")), dict(token_pattern="[")):
        assert pretokenize.start(SimpleNamespace(**{**vars(data), **change})) is None, change
    monkeypatch.setitem(os.environ, "WORLD_SIZE", "2")  # under torchrun: rank 0 reads the corpus first, as ever
    assert pretokenize.start(data) is None
