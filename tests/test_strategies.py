"""Choosing the way of training, and the GPU strategy run on the CPU through Triton's interpreter."""

import json
import os
import subprocess
import sys

if not __import__("torch").cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: kernels on CPU tensors

import numpy as np
import pytest
import torch

from conftest import ROOT, planted_corpus
from sync_guard import HostSyncCounter
from w2v import strategies
from w2v.config import TrainConfig
from w2v.corpus import Tokenizer
from w2v.model import SkipGramNS
from w2v.token_cache import load_corpus
from w2v.trainer import Trainer
from w2v.vocab import Vocab


def test_auto_settings_differ_by_step():
    cpu = strategies.resolve(TrainConfig(), "cpu-kernel", "cpu")
    gpu = strategies.resolve(TrainConfig(), "triton", "cuda")
    assert (cpu.batch_size, cpu.hot_rows, cpu.chunk_tokens) == (4096, "sum", 65536)
    assert (gpu.batch_size, gpu.hot_rows, gpu.chunk_tokens) == (16384, "trust", 1 << 20)
    replica = strategies.resolve(TrainConfig(), "triton", "cuda", replicas=True)  # a round is a chunk per rank
    assert (replica.batch_size, replica.chunk_tokens, replica.merge_every_words) == (16384, 65536, 1 << 28)
    assert cpu.merge_every_words == 1 << 23
    hogwild = strategies.resolve(TrainConfig(hogwild=True), "triton", "cuda")
    assert hogwild.hot_rows == "sum"  # hogwild applies the plain sum
    mine = strategies.resolve(TrainConfig(batch_size=512, hot_rows="cap", chunk_tokens=999), "triton", "cuda")
    assert (mine.batch_size, mine.hot_rows, mine.chunk_tokens) == (512, "cap", 999)  # what the user set stays


def test_auto_picks_the_triton_step_on_a_gpu_and_falls_back_without_it(monkeypatch):
    model = SkipGramNS(20, 8)
    monkeypatch.setattr(strategies, "_triton_unavailable", lambda model: None)
    assert strategies.choose(TrainConfig(), model, "cuda") == "triton"
    assert strategies.choose(TrainConfig(kernel="torch"), model, "cuda") == "threads"
    assert strategies.choose(TrainConfig(), model, "cpu") in ("cpu-kernel", "threads")
    monkeypatch.setattr(strategies, "_triton_unavailable", lambda model: "triton is not installed")
    assert strategies.choose(TrainConfig(), model, "cuda") == "threads"
    with pytest.raises(ValueError, match="train.kernel=triton, but triton is not installed; use train.kernel=auto"):
        strategies.choose(TrainConfig(kernel="triton"), model, "cuda")
    with pytest.raises(ValueError, match="CPU kernel"):
        strategies.choose(TrainConfig(kernel="fused"), model, "cuda")
    with pytest.raises(ValueError, match="tables sharded over the processes"):
        strategies.choose(TrainConfig(kernel="triton"), SkipGramNS(20, 8, distributed=True), "cpu", world_size=2)


# --- the Triton strategy on CPU tensors --------------------------------------------------

triton = pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def triton_trainer(path, **overrides):
    enc = load_corpus(str(path), Tokenizer(r"\w+"), cache=False)
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), min_count=1)
    # Groups of 32: Triton's interpreter runs one program per group, at ~15 ms a program.
    options = dict(epochs=3, batch_size=256, shared_negatives=32, seed=1, lr=0.05, chunk_tokens=1024, kernel="triton")
    cfg = TrainConfig(**{**options, **overrides})
    model = SkipGramNS(len(vocab), 16, device=DEVICE)
    model.reset_parameters(torch.Generator().manual_seed(1))
    return Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, DEVICE), model, vocab


@pytest.fixture
def small_planted(tmp_path):
    path = tmp_path / "planted.txt"
    return path, planted_corpus(path, topics=6, words_per_topic=5, sentences=400)


def test_the_chunk_loop_reads_the_device_once_per_chunk_and_never_syncs_on_data(small_planted):
    path, _ = small_planted
    trainer, model, _ = triton_trainer(path, epochs=1)
    assert trainer.strategy.name == "triton"
    with HostSyncCounter() as seen:
        result = trainer.fit()
    assert seen.syncs == [], f"data-dependent host syncs in the chunk loop: {seen.syncs}"
    assert trainer.strategy.host_reads == len(trainer.chunks)  # the one read per chunk: its pair count
    assert np.isfinite(result.loss) and result.words == trainer.num_tokens


@pytest.mark.slow
def test_a_tiny_training_through_the_cli_runs_and_its_loss_falls(tmp_path):
    path = tmp_path / "planted.txt"
    planted_corpus(path, topics=6, words_per_topic=5, sentences=600)
    out = tmp_path / "run"
    env = dict(os.environ, TRITON_INTERPRET="1", W2V_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(
        [sys.executable, "-m", "w2v.train", f"data.corpus={path}", "data.min_count=1", "model.dim=16",
         "train.epochs=3", "train.device=cpu", "train.kernel=triton", "train.batch_size=256", "train.chunk_tokens=2048",
         "train.lr=0.05", "train.progress=false", "eval.every_epoch=false", "eval.projector_words=0",
         "export.formats=[bin]", f"hydra.run.dir={out}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "step: Triton step (sync, 256-pair batches, hot_rows=trust)" in r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    losses = metrics["epoch_losses"]
    assert metrics["step"] == "triton" and losses[-1] < losses[0] * 0.9, losses
    assert (out / "vectors.bin").is_file()


@pytest.mark.slow
def test_an_interrupted_triton_run_resumes_to_the_same_tables(small_planted):
    path, _ = small_planted
    whole, whole_model, _ = triton_trainer(path, epochs=2)
    expected = whole.fit()
    first, model, _ = triton_trainer(path, epochs=2, checkpoint_every_words=1500)
    saved = []

    def checkpoint(state):
        saved.append((state.to_dict(), model.input.weight.detach().clone(), model.output.weight.detach().clone()))
        if len(saved) == 2:
            first.request_stop()

    from w2v.trainer import TrainingInterrupted, TrainState

    with pytest.raises(TrainingInterrupted):
        first.fit(checkpoint=checkpoint)
    state, input_table, output_table = saved[-1]
    second, resumed, _ = triton_trainer(path, epochs=2)
    with torch.no_grad():
        resumed.input.weight.copy_(input_table)
        resumed.output.weight.copy_(output_table)
    result = second.fit(start=TrainState.from_dict(state))
    # Chunks depend only on (seed, epoch, chunk); the interpreter runs programs in order.
    assert torch.allclose(resumed.input.weight, whole_model.input.weight, atol=1e-6)
    assert np.allclose(result.epoch_losses, expected.epoch_losses, rtol=1e-5)
