"""The memory budget: huge settings are refused before anything is allocated, naming the key."""

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from w2v import budget
from w2v.budget import Plan, check_run, estimate, needs, plan_for, refusal
from w2v.config import Config

from conftest import ROOT

GiB = 2**30
DEFAULT = Plan(dim=100, window=5, negatives=5, batch_size=4096, shared_negatives=32, chunk_tokens=65536, chunks=3)
HOST = {"host": 16 * GiB}


def test_the_defaults_fit_in_little_memory():
    assert sum(needs(DEFAULT).values()) < 128 * 2**20
    with_vocab = dataclasses.replace(DEFAULT, vocab_size=3_000_000, dim=300)  # the GoogleNews shape
    assert 10 * GiB < needs(with_vocab)["host"] < 16 * GiB
    assert refusal(with_vocab, HOST) is None


@pytest.mark.parametrize("field, key, value, part", [
    ("negatives", "train.negatives", 100_000, "negatives"),
    ("window", "train.window", 1_000_000, "window pairs"),
    ("batch_size", "train.batch_size", 1_000_000_000, "step buffers"),
    ("dim", "model.dim", 1_000_000_000, "step buffers"),
    ("chunk_tokens", "train.chunk_tokens", 10**12, "window pairs"),
])
def test_a_huge_setting_is_refused_with_the_largest_value_that_fits(field, key, value, part):
    plan = dataclasses.replace(DEFAULT, **{field: value})
    message = refusal(plan, HOST)
    assert message.startswith(f"{key}={value} needs up to ") and part in message and "16.0 GiB is available" in message
    best = int(message.rsplit(f"at most {key}=", 1)[1].split()[0])
    step = DEFAULT.shared_negatives if field == "batch_size" else 1
    assert needs(dataclasses.replace(plan, **{field: best}))["host"] <= 16 * GiB
    assert needs(dataclasses.replace(plan, **{field: best + step}))["host"] > 16 * GiB
    assert best % step == 0


def test_the_setting_furthest_from_its_default_is_named():
    plan = dataclasses.replace(DEFAULT, negatives=50_000, window=50)  # 10000x and 10x the defaults
    assert refusal(plan, HOST).startswith("train.negatives=50000")


def test_tables_too_big_for_the_vocabulary():
    plan = dataclasses.replace(DEFAULT, vocab_size=30_000_000, dim=300)
    message = refusal(plan, HOST)
    assert message.startswith("model.dim=300 needs up to") and "embedding tables" in message
    assert "keep fewer words (data.min_count, data.max_vocab_size)" in message
    plan = dataclasses.replace(DEFAULT, vocab_size=10**12, dim=1)  # no dim fits: only fewer words help
    assert refusal(plan, HOST).startswith("the vocabulary of 1,000,000,000,000 words with model.dim=1 needs")


def test_gpu_memory_is_counted_apart():
    plan = dataclasses.replace(DEFAULT, gpu=True, chunks=1, vocab_size=1_000_000, dim=300, corpus_tokens=10**9)
    parts = estimate(plan)
    assert parts["corpus"] == (4 * 10**9, "device") and parts["export"][1] == "host"
    message = refusal(plan, {"host": 64 * GiB, "device": 2 * GiB}, "cuda:0")
    assert "of cuda:0 memory" in message and "token stream" in message
    assert refusal(plan, {"host": 64 * GiB, "device": 80 * GiB}, "cuda:0") is None


def test_plan_follows_the_way_the_run_trains():
    cfg = Config()
    cfg.train.workers = 4
    assert (plan_for(cfg, torch.device("cpu")).chunks, plan_for(cfg, torch.device("cpu")).steps) == (3, 1)  # the C kernel
    cfg.train.kernel = "torch"
    assert (plan_for(cfg, torch.device("cpu")).chunks, plan_for(cfg, torch.device("cpu")).steps) == (4, 4)
    plan = plan_for(cfg, torch.device("cuda:0"), vocab_size=10, corpus_tokens=99)
    assert (plan.chunks, plan.steps, plan.gpu, plan.corpus_tokens) == (1, 1, True, 99)
    assert plan_for(cfg, torch.device("cpu"), world=2, corpus_tokens=99).corpus_tokens == 0


def test_check_run_uses_the_memory_there_is(monkeypatch):
    cfg = Config()
    check_run(cfg, torch.device("cpu"))
    monkeypatch.setattr(budget, "host_available", lambda: 10 * 2**20)
    with pytest.raises(ValueError, match=r"=\d+ needs up to .* but 10.0 MiB is available; at most "):
        check_run(cfg, torch.device("cpu"))


def test_host_memory_is_bounded_by_a_container_and_the_address_space_limit(monkeypatch):
    resource = pytest.importorskip("resource")
    assert budget.host_available() > 0
    monkeypatch.setattr(budget, "_meminfo_available", lambda: 64 * GiB)
    monkeypatch.setattr(budget, "_cgroup_room", lambda: None)
    monkeypatch.setattr(resource, "getrlimit", lambda what: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert budget.host_available() == 64 * GiB
    monkeypatch.setattr(budget, "_cgroup_room", lambda: 8 * GiB)
    assert budget.host_available() == 8 * GiB
    monkeypatch.setattr(resource, "getrlimit", lambda what: (2 * GiB, resource.RLIM_INFINITY))
    assert budget.host_available() < 2 * GiB  # what the process has mapped already is spent


def test_cli_refuses_huge_negatives_at_once_with_bounded_memory(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 200)
    with open("/proc/self/statm") as f:  # this process has torch loaded, as the child will
        limit = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + 4 * GiB

    def bounded():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = dict(os.environ, W2V_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-m", "w2v.train", f"data.corpus={corpus}", "data.min_count=1", "train.device=cpu",
         "train.negatives=100000", f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, preexec_fn=bounded,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train.negatives=100000 needs up to "), r.stderr
    assert "at most train.negatives=" in lines[0]
    # Refused before the run read the corpus. The child that tokenizes a new corpus while the
    # command imports torch may have cached it meanwhile, or was ended: nothing unfinished is left.
    cache = tmp_path / "cache"
    assert not cache.exists() or not [n for n in os.listdir(cache) if n.startswith(".")]


def test_train_checks_again_once_the_vocabulary_is_known(planted, cache_dir, tmp_path, monkeypatch):
    from w2v.train import train

    corpus, _ = planted
    cfg = Config()
    cfg.data.corpus, cfg.data.min_count, cfg.data.cache_dir = str(corpus), 1, cache_dir
    cfg.train.device, cfg.train.progress, cfg.eval.analogies, cfg.eval.similarity = "cpu", False, None, None
    asked = []

    def room():  # all the memory in the world, until the vocabulary is known
        asked.append(True)
        return 1 << 60 if len(asked) == 1 else 10 * 2**20

    monkeypatch.setattr(budget, "host_available", room)
    with pytest.raises(ValueError, match="needs up to .* but 10.0 MiB is available"):
        train(cfg, tmp_path / "run")
    assert len(asked) == 2 and not (tmp_path / "run" / "vocab.txt").exists()
