"""Training over 2 gloo processes on localhost, replicas and sharded tables: same quality as 1, files as 1,
exact resumes, failures bounded."""

import json
import os
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from conftest import ROOT
from test_distributed_embedding import free_port
from test_train import small_config

from w2v.checkpoint import load_checkpoint
from w2v.vectors import WordVectors


def topic_accuracy(vectors_path, groups) -> float:
    """Share of planted words whose nearest neighbour is from their own topic."""
    wv = WordVectors.load_word2vec_format(vectors_path, binary=True)
    hits = [wv.most_similar(w, topn=1)[0][0] in group for group in groups for w in group]
    return sum(hits) / len(hits)


def torchrun(n, *overrides, cwd):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--master_port", str(free_port()),
           "-m", "w2v.train", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def overrides(corpus, cache, run, *more):
    return [f"data.corpus={corpus}", f"data.cache_dir={cache}", f"hydra.run.dir={run}", "model.dim=24",
            "train.epochs=3", "train.batch_size=256", "train.chunk_tokens=4096", "train.progress=false",
            "eval.analogies=null", "eval.similarity=null", "export.formats=[bin,txt]", *more]


# Replicas run the step one process runs (the CPU kernel) and merge whole tables every round
# (the planted corpus's 73 words are all as frequent as a large corpus's most frequent few);
# sharded ranks run the torch step.
MODES = {
    "replicas": ["train.distributed=replicas", "train.workers=1", "train.merge_every_words=8192"],
    "sharded": ["train.distributed=sharded", "train.kernel=torch", "train.workers=1"],
}


@pytest.mark.parametrize("mode", MODES)
def test_torchrun_two_ranks_learn_as_well_as_one_and_write_the_same_files(planted, tmp_path, mode):
    corpus, groups = planted
    results = {}
    for n in (1, 2):
        run = tmp_path / f"run{n}"
        r = torchrun(n, *overrides(corpus, tmp_path / "cache", run, *MODES[mode]), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        results[n] = run
    one, two = (json.loads((results[n] / "metrics.json").read_text()) for n in (1, 2))
    assert two["processes"] == 2 and "processes" not in one and two["distributed"] == mode
    assert two["step"] == {"replicas": "replicas", "sharded": "ranks"}[mode]
    if mode == "replicas":
        assert two["merges"] == 3 * 8 and two["merge_bytes"] == 2 * 73 * 24 * 4
    assert abs(two["loss"] - one["loss"]) < 0.05 * one["loss"]
    acc = {n: topic_accuracy(results[n] / "vectors.bin", groups) for n in (1, 2)}
    assert acc[1] > 0.9 and acc[2] >= acc[1] - 0.05, acc
    # Rank 0 alone wrote the run's files, in the single-process formats and layout.
    for name in ("vectors.bin", "vectors.txt", "vocab.txt", "checkpoint.pt", "metrics.json"):
        assert (results[2] / name).is_file(), name
    assert (results[1] / "vocab.txt").read_text() == (results[2] / "vocab.txt").read_text()
    one_wv, two_wv = (WordVectors.load_word2vec_format(results[n] / "vectors.txt") for n in (1, 2))
    assert one_wv.index_to_key == two_wv.index_to_key and one_wv.vectors.shape == two_wv.vectors.shape
    ckpt = load_checkpoint(results[2] / "checkpoint.pt")
    assert "shard" not in ckpt and ckpt["input"].shape == (len(two_wv), 24)
    np.testing.assert_allclose(ckpt["input"].numpy(), two_wv.vectors, rtol=0, atol=1e-5)  # text rounding aside


def _rank_main(rank, world, port, folder, cfg, die_after, signal_after_checkpoint=False):
    """One rank of ``w2v.train.train``; with ``die_after``, rank 1 dies after that many steps; with
    ``signal_after_checkpoint``, rank 1 gets SIGTERM as its first checkpoint is saved (after the
    ranks agreed on the boundary)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from w2v import model as model_module
    from w2v.train import train

    if die_after and rank == 1:
        call, steps = model_module.SGNSStep.__call__, [0]

        def dying(self, *args, **kwargs):
            steps[0] += 1
            if steps[0] > die_after:
                os._exit(9)  # no goodbye: as a killed process
            return call(self, *args, **kwargs)

        model_module.SGNSStep.__call__ = dying
    if signal_after_checkpoint and rank == 1:
        from w2v.trainer import Trainer

        save = Trainer._checkpoint

        def signalled(self, epoch):
            save(self, epoch)
            if self.stop_signal is None:
                os.kill(os.getpid(), signal.SIGTERM)

        Trainer._checkpoint = signalled
    started = time.monotonic()
    try:
        metrics = train(cfg, os.path.join(folder, "run"))
        outcome = {"ok": True, "metrics": metrics}
    except BaseException as e:
        outcome = {"ok": False, "type": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}
    outcome["seconds"] = time.monotonic() - started
    with open(os.path.join(folder, f"outcome-{rank}.json"), "w") as f:
        json.dump(outcome, f, default=str)


def run_two(cfg, folder, die_after=0, timeout=180, signal_rank1_after=None, signal_after_checkpoint=False):
    """Two ranks of ``train``; with ``signal_rank1_after``, SIGTERM to rank 1 once that glob of
    ``folder/run`` exists."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, str(folder), cfg, die_after, signal_after_checkpoint)) for r in range(2)]
    for p in procs:
        p.start()
    if signal_rank1_after:
        deadline = time.monotonic() + timeout
        while not list((folder / "run").glob(signal_rank1_after)) and time.monotonic() < deadline and procs[1].is_alive():
            time.sleep(0.01)
        os.kill(procs[1].pid, signal.SIGTERM)
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung"
    return procs, [json.loads((folder / f"outcome-{r}.json").read_text()) if (folder / f"outcome-{r}.json").exists() else None
                   for r in range(2)]


@pytest.mark.parametrize("mode", ["replicas", "sharded"])
def test_a_rank_that_dies_makes_the_other_exit_with_a_clear_error(planted, cache_dir, tmp_path, mode):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=20, chunk_tokens=4096, kernel="torch", workers=1, distributed=mode)
    cfg.train.dist_timeout_seconds = 60
    procs, outcomes = run_two(cfg, tmp_path, die_after=30)
    assert procs[1].exitcode == 9 and outcomes[1] is None
    survivor = outcomes[0]
    assert not survivor["ok"] and survivor["type"] == "PeerFailure", survivor
    assert "another rank stopped answering" in survivor["message"] and "train.resume" in survivor["message"]
    assert survivor["seconds"] < 90


def test_per_rank_checkpoints_resume_with_the_same_or_another_world_size(planted, cache_dir, tmp_path):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=2, chunk_tokens=4096, kernel="torch", workers=1, distributed="sharded")
    cfg.train.checkpoint_every_words = 40000
    cfg.train.keep_checkpoints = 0
    procs, outcomes = run_two(cfg, tmp_path)
    assert all(o["ok"] for o in outcomes), outcomes
    folder = tmp_path / "run" / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names and all(".rank" in n for n in names) and len(names) % 2 == 0, names
    first = sorted(folder.glob("*.rank0of2.pt"))[0]
    own = [load_checkpoint(first, r, 2) for r in range(2)]
    assert [c["shard"]["rank"] for c in own] == [0, 1]
    whole = load_checkpoint(first)  # one process: the ranks' files joined into whole tables
    rows = own[0]["input"].shape[0] + own[1]["input"].shape[0]
    assert "shard" not in whole and whole["input"].shape[0] == rows == len(whole["words"])
    torch.testing.assert_close(whole["input"][0::2], own[0]["input"], rtol=0, atol=0)  # mod: even ids on rank 0
    assert whole["state"]["epoch_pairs"] == own[0]["state"]["epoch_pairs"] + own[1]["state"]["epoch_pairs"]
    # Two ranks resume from their own files exactly where the run was.
    cfg.train.resume = str(first)
    again = tmp_path / "again"
    again.mkdir()
    procs, outcomes = run_two(cfg, again)
    assert all(o["ok"] for o in outcomes), outcomes
    end, resumed_end = load_checkpoint(tmp_path / "run" / "checkpoint.pt"), load_checkpoint(again / "run" / "checkpoint.pt")
    assert torch.equal(end["input"], resumed_end["input"]) and torch.equal(end["output"], resumed_end["output"])
    # A single process resumes from the 2-rank checkpoint (the files joined) and finishes the run.
    from w2v.train import train

    metrics = train(cfg, tmp_path / "resumed")
    assert metrics["resumed_from"].endswith(".rank0of2.pt") and np.isfinite(metrics["loss"])
    # Two replicas resume from the sharded files too (joined into whole tables).
    cfg.train.distributed = "replicas"
    replicas = tmp_path / "replicas"
    replicas.mkdir()
    procs, outcomes = run_two(cfg, replicas)
    assert all(o["ok"] for o in outcomes), outcomes
    assert outcomes[0]["metrics"]["distributed"] == "replicas"
    assert load_checkpoint(replicas / "run" / "checkpoint.pt")["state"]["finished"]


def test_replica_checkpoints_are_one_file_that_resumes_exactly_in_any_number_of_processes(planted, cache_dir, tmp_path):
    corpus, groups = planted
    cfg = small_config(corpus, cache_dir, epochs=2, chunk_tokens=4096, workers=1, merge_every_words=32768,
                       merge_hot_rows=16)
    cfg.train.checkpoint_every_words = 40000
    cfg.train.keep_checkpoints = 0
    procs, outcomes = run_two(cfg, tmp_path)
    assert all(o["ok"] for o in outcomes), outcomes
    folder = tmp_path / "run" / "checkpoints"
    # Rank 0 alone wrote them, whole tables, at the first merge of whole tables past each
    # 40,000 words: 4 rounds of 2 chunks of 4,096 words into each 60,000-word epoch, and its end.
    assert sorted(p.name for p in folder.iterdir()) == [f"checkpoint-{w:015d}.pt" for w in (60000, 92768)]
    first = folder / "checkpoint-000000000060000.pt"
    ckpt = load_checkpoint(first)
    assert "shard" not in ckpt and ckpt["input"].shape == (73, 24) and ckpt["state"]["chunks_done"] == 0
    end = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert topic_accuracy_of(end, groups) > 0.9
    # Two replicas resume from it and end bitwise where the uninterrupted run ended.
    for resume in (first, folder / "checkpoint-000000000092768.pt"):
        cfg.train.resume = str(resume)
        again = tmp_path / f"again-{resume.stem}"
        again.mkdir()
        procs, outcomes = run_two(cfg, again)
        assert all(o["ok"] for o in outcomes), outcomes
        resumed_end = load_checkpoint(again / "run" / "checkpoint.pt")
        assert torch.equal(end["input"], resumed_end["input"]) and torch.equal(end["output"], resumed_end["output"])
        assert resumed_end["state"]["epoch_losses"][0] == end["state"]["epoch_losses"][0]
        np.testing.assert_allclose(resumed_end["state"]["epoch_losses"], end["state"]["epoch_losses"], rtol=1e-12)
    # One process resumes from it and finishes the run; so do sharded ranks.
    from w2v.train import train

    metrics = train(cfg, tmp_path / "resumed")
    assert metrics["resumed_from"] == str(resume) and np.isfinite(metrics["loss"])
    cfg.train.distributed = "sharded"
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    procs, outcomes = run_two(cfg, sharded)
    assert all(o["ok"] for o in outcomes), outcomes
    assert outcomes[0]["metrics"]["distributed"] == "sharded"


@pytest.mark.parametrize("kernel", ["torch", "auto"])
def test_one_process_runs_the_same_steps_with_the_distributed_layer(planted, cache_dir, kernel):
    """World size 1 of the distributed tables trains bitwise like the local tables."""
    from w2v.corpus import Tokenizer
    from w2v.kernel import unavailable
    from w2v.model import SkipGramNS
    from w2v.token_cache import load_corpus
    from w2v.trainer import Trainer
    from w2v.vocab import Vocab

    corpus_path, _ = planted
    cfg = small_config(corpus_path, cache_dir, epochs=1, kernel=kernel, workers=1)
    corpus = load_corpus(str(corpus_path), Tokenizer(), cache_dir=cache_dir)
    vocab = Vocab.from_counts(zip(corpus.types, corpus.counts.tolist()), 1)
    tables = []
    for distributed in (False, True):
        model = SkipGramNS(len(vocab), 24, distributed=distributed)
        model.reset_parameters(torch.Generator().manual_seed(0))
        trainer = Trainer(model, corpus.tokens, vocab.encode(corpus.types), vocab.counts, cfg.train, "cpu")
        assert trainer.fused == (kernel == "auto" and unavailable() is None)  # the kernel runs on either table
        trainer.fit()
        tables.append((model.input.weight.detach().clone(), model.output.weight.detach().clone()))
    assert torch.equal(tables[0][0], tables[1][0]) and torch.equal(tables[0][1], tables[1][1])


@pytest.mark.parametrize("mode", ["replicas", "sharded"])
def test_a_signal_to_one_rank_stops_both_at_the_same_checkpoint(planted, cache_dir, tmp_path, mode):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=40, chunk_tokens=4096, kernel="torch", workers=1, distributed=mode,
                       merge_every_words=8192)
    cfg.train.checkpoint_every_words = 100_000
    written = "checkpoints/checkpoint-*.rank1of2.pt" if mode == "sharded" else "checkpoints/checkpoint-*.pt"
    procs, outcomes = run_two(cfg, tmp_path, signal_rank1_after=written)
    assert [o["type"] for o in outcomes] == ["TrainingInterrupted", "TrainingInterrupted"], outcomes
    assert outcomes[0]["message"] == outcomes[1]["message"]  # "... after N words": the same N
    folder = tmp_path / "run" / "checkpoints"
    if mode == "sharded":
        last = {r: sorted(folder.glob(f"*.rank{r}of2.pt"))[-1].name.split(".")[0] for r in range(2)}
        assert last[0] == last[1]  # both ranks stopped after the same round and saved it
    else:  # rank 0 saved the replicas' tables, equal at the merge where both stopped
        last = {0: sorted(folder.glob("*.pt"))[-1].name.split(".")[0]}
        assert str(int(last[0].split("-")[1])) in outcomes[0]["message"].replace(",", "")
    words = int(last[0].split("-")[1])
    assert 0 < words < 40 * 60_000 and not (tmp_path / "run" / "vectors.bin").exists()
    # Two ranks pick the run up from its folder and finish it.
    cfg.train.resume = str(tmp_path / "run")
    again = tmp_path / "again"
    again.mkdir()
    procs, outcomes = run_two(cfg, again)
    assert all(o["ok"] for o in outcomes), outcomes
    assert outcomes[0]["metrics"]["resumed_from"].endswith(f"{last[0]}.rank0of2.pt" if mode == "sharded" else f"{last[0]}.pt")
    assert load_checkpoint(again / "run" / "checkpoint.pt")["state"]["finished"]


@pytest.mark.parametrize("mode", ["replicas", "sharded"])
def test_a_signal_that_lands_after_the_ranks_agreed_waits_for_the_next_boundary(planted, cache_dir, tmp_path, mode):
    """SIGTERM on one rank while it saves a checkpoint the ranks agreed on: that rank may not stop
    alone there (the other would wait on it); both stop together at the next boundary."""
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=40, chunk_tokens=4096, kernel="torch", workers=1, distributed=mode,
                       merge_every_words=8192)
    cfg.train.checkpoint_every_words = 100_000
    cfg.train.dist_timeout_seconds = 60
    procs, outcomes = run_two(cfg, tmp_path, signal_after_checkpoint=True)
    assert [o["type"] for o in outcomes] == ["TrainingInterrupted", "TrainingInterrupted"], outcomes
    assert outcomes[0]["message"] == outcomes[1]["message"]
    words = int(outcomes[0]["message"].split(" after ")[1].split()[0].replace(",", ""))
    assert 100_000 < words < 200_000  # past the first checkpoint, at the boundary after it


@pytest.mark.parametrize("mode", ["replicas", "sharded"])
def test_two_ranks_resume_from_a_single_process_checkpoint(planted, cache_dir, tmp_path, mode):
    from w2v.train import train

    corpus, groups = planted
    cfg = small_config(corpus, cache_dir, epochs=2, chunk_tokens=4096, kernel="torch", workers=1, distributed=mode)
    cfg.train.checkpoint_every_words = 60_000
    train(cfg, tmp_path / "run")
    first = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*.pt"))[0]
    cfg.train.resume = str(first)
    cfg.train.checkpoint_every_words = None
    again = tmp_path / "two"
    again.mkdir()
    procs, outcomes = run_two(cfg, again)
    assert all(o["ok"] for o in outcomes), outcomes
    assert outcomes[0]["metrics"]["resumed_from"] == str(first)
    end = load_checkpoint(again / "run" / "checkpoint.pt")
    assert end["state"]["finished"] and end["state"]["words"] == 2 * 60_000
    assert topic_accuracy_of(end, groups) > 0.9


def topic_accuracy_of(ckpt, groups) -> float:
    wv = WordVectors(ckpt["words"], ckpt["input"].numpy())
    hits = [wv.most_similar(w, topn=1)[0][0] in group for group in groups for w in group]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_replicas_resume_in_the_middle_of_a_round(planted, cache_dir, tmp_path, kernel):
    """A single process's checkpoint after chunk 3: rank 1 trains chunk 3 while rank 0, which has
    nothing left in that round, goes straight to its merge."""
    from w2v.train import train

    corpus, groups = planted
    cfg = small_config(corpus, cache_dir, epochs=2, chunk_tokens=4096, kernel=kernel, workers=1, merge_every_words=16384)
    cfg.train.checkpoint_every_words = 3 * 4096
    cfg.train.keep_checkpoints = 0
    train(cfg, tmp_path / "run")
    first = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*.pt"))[0]
    assert load_checkpoint(first)["state"]["chunks_done"] == 3
    cfg.train.resume = str(first)
    cfg.train.checkpoint_every_words = None
    ends = []
    for attempt in range(2):  # and the same tables twice: nothing depends on timing
        again = tmp_path / f"two{attempt}"
        again.mkdir()
        procs, outcomes = run_two(cfg, again)
        assert all(o["ok"] for o in outcomes), outcomes
        ends.append(load_checkpoint(again / "run" / "checkpoint.pt"))
    assert ends[0]["state"]["finished"] and ends[0]["state"]["words"] == 2 * 60_000
    assert torch.equal(ends[0]["input"], ends[1]["input"]) and torch.equal(ends[0]["output"], ends[1]["output"])
    assert topic_accuracy_of(ends[0], groups) > 0.9


@pytest.mark.slow
def test_replicas_run_the_triton_step(tmp_path):
    """Each rank runs the GPU's step (Triton's interpreter on the CPU here), one round per call."""
    pytest.importorskip("triton")
    from conftest import planted_corpus

    groups = planted_corpus(tmp_path / "planted.txt", topics=4, words_per_topic=5, sentences=800)
    cfg = small_config(tmp_path / "planted.txt", str(tmp_path / "cache"), epochs=2, chunk_tokens=2048, kernel="triton",
                       workers=1, merge_every_words=4096)
    procs, outcomes = run_two(cfg, tmp_path, timeout=900)
    assert all(o["ok"] for o in outcomes), outcomes
    metrics = outcomes[0]["metrics"]
    assert metrics["distributed"] == "replicas" and metrics["merges"] == 2 * 2  # 4 chunks an epoch, 2 rounds
    losses = metrics["epoch_losses"]
    assert losses[-1] < losses[0]
    assert topic_accuracy_of(load_checkpoint(tmp_path / "run" / "checkpoint.pt"), groups) > 0.9
