import os
import random
import signal
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels (w2v.triton_step) run on CPU tensors through Triton's interpreter. Set here,
    # before any test module imports triton: kernels are built for one mode when decorated.
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent


def planted_corpus(path: Path, topics: int = 12, words_per_topic: int = 6, sentences: int = 6000, seed: int = 0) -> list:
    """Write a corpus whose sentences each draw words from one topic; return the topics.

    Words of a topic co-occur and never meet words of another topic, so a working
    skip-gram must make them each other's nearest neighbours.
    """
    rng = random.Random(seed)
    def name(t, i):  # letters only, so the default tokenizer keeps them whole
        return "w" + "".join(chr(ord("a") + int(d)) for d in f"{t:02d}{i:02d}")

    groups = [[name(t, i) for i in range(words_per_topic)] for t in range(topics)]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(sentences):
            group = rng.choice(groups)
            f.write(" ".join(rng.choice(group) for _ in range(10)) + "\n")
    return groups


def compiled_or(module, other: str):
    """A fixture that runs each test twice: with ``module``'s compiled path (skipped without a C
    compiler) and with its ``other`` path (``module._native`` made to return ``None``)."""

    @pytest.fixture(params=["compiled", other])
    def way(request, monkeypatch):
        if request.param == other:
            monkeypatch.setattr(module, "_native", lambda: None)
        elif module._native() is None:
            pytest.skip("no C compiler here")
        return request.param

    return way


@pytest.fixture
def planted(tmp_path):
    path = tmp_path / "planted.txt"
    return path, planted_corpus(path)


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture
def no_hang():
    """Fail a test that blocks (on a FIFO, an endless file) instead of hanging the suite."""
    def timeout(signum, frame):
        raise TimeoutError("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
