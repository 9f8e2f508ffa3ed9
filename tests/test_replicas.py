"""Data-parallel replicas: which layout a run over several processes gets, and when rows merge.

Training over 2 gloo processes is in tests/test_distributed_train.py; the merge itself in
tests/test_replica_sync.py.
"""

import numpy as np
import pytest
import torch

from w2v import budget, strategies
from w2v.chunks import ChunkPlan
from w2v.config import Config, TrainConfig
from w2v.embedding import DistributedEmbedding
from w2v.model import SkipGramNS
from w2v.strategies.replicas import Replicas, cores_per_process, sharded_tables
from w2v.strategies.threads import Threads

CPU = torch.device("cpu")


def config(**train):
    cfg = Config()
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def test_auto_gives_every_rank_whole_tables_when_they_fit(monkeypatch):
    # Without a process group the agreement over ranks is this process's own answer.
    assert not sharded_tables(config(), CPU, 1, 1000, 10_000)  # one process: local tables
    assert not sharded_tables(config(), CPU, 2, 1000, 10_000)  # auto: replicas fit
    assert not sharded_tables(config(distributed="replicas"), CPU, 2, 1000, 10_000)
    assert sharded_tables(config(distributed="sharded"), CPU, 2, 1000, 10_000)
    assert not sharded_tables(config(distributed="sharded"), CPU, 1, 1000, 10_000)  # nothing to spread over
    # Tables that fit only when spread: auto spreads them; asking for replicas names the way out.
    monkeypatch.setattr(budget, "available", lambda device: {"host": 24 * 2**30})
    vocab = 15_000_000  # 2 tables of 15M x 100 floats: 11 GiB, and a merge base as large, on every rank
    assert sharded_tables(config(), CPU, 8, vocab, 10_000)
    with pytest.raises(ValueError, match="train.distributed=sharded"):
        sharded_tables(config(distributed="replicas"), CPU, 8, vocab, 10_000)


def test_the_budget_counts_whole_tables_and_their_merge_base_on_every_replica():
    cfg = config()
    sharded = budget.estimate(budget.plan_for(cfg, CPU, 4, 100_000))
    replicas = budget.estimate(budget.plan_for(cfg, CPU, 4, 100_000, replicas=True))
    table = 4 * 100_000 * 100
    assert replicas["tables"][0] - sharded["tables"][0] == 2 * (table - table // 4)
    # both tables as last merged, and two shared-memory slots and a sum as large as both (under 256 MiB)
    assert replicas["merge"][0] == 2 * table + 3 * 2 * table and sharded["merge"][0] == 0


def test_a_run_over_processes_picks_the_step_one_process_would_run_unless_the_tables_are_sharded():
    local = SkipGramNS(20, 8)
    assert strategies.choose(TrainConfig(kernel="torch"), local, CPU, world_size=2) == "threads"
    assert strategies.choose(TrainConfig(), local, CPU, world_size=2) in ("cpu-kernel", "threads")
    spread = SkipGramNS(20, 8, distributed=True)
    assert isinstance(spread.input, DistributedEmbedding)
    assert strategies.choose(TrainConfig(), spread, CPU, world_size=2) == "ranks"
    with pytest.raises(ValueError, match="train.distributed=sharded"):
        strategies.choose(TrainConfig(kernel="fused"), spread, CPU, world_size=2)


def replicas(world, rank=0, tokens=40 * 1000, vocab=5000, workers=1, **train):
    cfg = strategies.resolve(TrainConfig(chunk_tokens=1000, kernel="torch", workers=workers, **train), "threads", CPU)
    model = SkipGramNS(vocab, 4)
    plan = ChunkPlan(np.zeros(tokens, dtype=np.int32), np.arange(vocab), np.ones(vocab, dtype=np.int64), cfg, CPU)
    return Replicas(model, plan, Threads(model, plan, workers), rank, world)


def test_frequent_words_merge_every_round_rarer_ones_less_often_all_at_each_period():
    r = replicas(2, merge_every_words=32_000, merge_hot_rows=100)  # rounds of 2,000 words; 16 a period
    assert (r.full, r.rounds) == (16, 20)
    rows = [r.merge_rows(i) for i in range(r.rounds)]
    assert rows[:4] == [100, 100, 100, 400]  # the 100 most frequent words every round, 400 every 4 rounds
    assert rows[7] == 400 and rows[11] == 400 and rows[15] == 5000  # every row at the end of a period
    assert rows[16:] == [100, 100, 100, 5000]  # and at the end of the epoch (a short period)
    assert [r.merge_rows(i) for i in range(4)] == [100, 100, 100, 400]  # a function of the position only
    assert replicas(2, merge_every_words=32_000, merge_hot_rows=0).merge_rows(3) == 0  # whole tables only
    # A period is at least one round; a round is one chunk per rank.
    assert replicas(4, merge_every_words=1).full == 1 and replicas(4, merge_every_words=8000).full == 2
    r = replicas(2, merge_every_words=10**9, merge_hot_rows=1000)
    assert r.merge_rows(15) == 5000 and r.merge_rows(3) == 4000  # 16 x 1000 is more than the table
    # Threads that each train their own chunks take one chunk each per round.
    r = replicas(2, workers=3, merge_every_words=60_000)
    assert (r.round_chunks, r.full, r.rounds) == (6, 10, 7)


def test_cores_per_process_share_the_machine(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cores_per_process() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert cores_per_process() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert cores_per_process() == 16
