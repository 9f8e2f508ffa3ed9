"""The whole pipeline, through train() and through the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from w2v.checkpoint import load_checkpoint
from w2v.config import Config
from w2v.train import train
from w2v.vectors import WordVectors
from w2v.vocab import Vocab

from conftest import ROOT, planted_corpus


def small_config(corpus, cache_dir, **train_overrides):
    cfg = Config()
    cfg.data.corpus = str(corpus)
    cfg.data.min_count = 1
    cfg.data.cache_dir = cache_dir
    cfg.model.dim = 24
    cfg.train.epochs = 3
    cfg.train.batch_size = 256
    cfg.train.shared_negatives = 8
    cfg.train.lr = 0.05
    cfg.train.progress = False
    cfg.train.device = "cpu"
    for key, value in train_overrides.items():
        setattr(cfg.train, key, value)
    cfg.eval.analogies = None
    cfg.eval.similarity = None
    cfg.eval.probe_words = ["waaaa"]
    cfg.eval.projector_words = 50
    return cfg


def test_train_writes_every_output_and_learns_the_planted_topics(planted, cache_dir, tmp_path):
    corpus, groups = planted
    out = tmp_path / "run"
    metrics = train(small_config(corpus, cache_dir), out)
    assert {"vocab.txt", "vectors.bin", "vectors.txt", "checkpoint.pt", "metrics.json", "tb"} <= set(os.listdir(out))
    assert json.loads((out / "metrics.json").read_text())["vocab_size"] == metrics["vocab_size"] == 73

    vocab = Vocab.load(out / "vocab.txt")
    assert vocab.index_to_key[0] == "<unk>" and all(np.diff(vocab.counts[1:]) <= 0)
    binary = WordVectors.load_word2vec_format(out / "vectors.bin", binary=True)
    text = WordVectors.load_word2vec_format(out / "vectors.txt", binary=False)
    assert binary.index_to_key == vocab.index_to_key == text.index_to_key
    assert np.allclose(binary.vectors, text.vectors, atol=1e-5)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert torch.allclose(ckpt["input"], torch.from_numpy(binary.vectors))
    assert ckpt["words"] == vocab.index_to_key and ckpt["config"]["model"]["dim"] == 24

    for group in groups:  # each word's top neighbour is from its own topic
        for word in group:
            assert binary.most_similar(word, topn=1)[0][0] in group
    assert any(f.startswith("events") for f in os.listdir(out / "tb"))
    projector = (out / "tb" / "projector_config.pbtxt").read_text()
    assert projector.count("embeddings {") == 3  # one per epoch end


def test_gensim_reads_our_vectors(planted, cache_dir, tmp_path):
    gensim = pytest.importorskip("gensim")
    corpus, _ = planted
    train(small_config(corpus, cache_dir, epochs=1), tmp_path)
    ours = WordVectors.load_word2vec_format(tmp_path / "vectors.bin", binary=True)
    for name, binary in (("vectors.bin", True), ("vectors.txt", False)):
        kv = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=binary)
        assert kv.index_to_key == ours.index_to_key
        assert np.allclose(kv.vectors, ours.vectors, atol=1e-5)


def run_cli(*overrides, cwd=ROOT):
    env = dict(os.environ, W2V_CACHE_DIR=str(cwd / ".cache"))
    return subprocess.run(
        [sys.executable, "-m", "w2v.train", *overrides], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_cli_trains_with_overrides(planted, tmp_path):
    corpus, _ = planted
    out = tmp_path / "cli"
    r = run_cli(
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=16", "train.epochs=1", "model.num_shards=4",
        "model.partition_strategy=div", "train.progress=false", "eval.probe_words=[wabab]", f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "wabab:" in r.stdout and (out / "vectors.bin").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.corpus=/no/such/corpus.txt"], "corpus not found"),
        (["model.dim=0"], "model.dim"),
        (["train.window=0"], "train.window"),
        (["train.negatives=-2"], "train.negatives"),
        (["train.device=tpu"], "train.device"),
        (["model.partition_strategy=hash"], "partition_strategy"),
        (["data.min_count=1000000000"], "min_count"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_outputs(planted, tmp_path, overrides, message):
    corpus, _ = planted
    out = tmp_path / "out"
    r = run_cli(f"data.corpus={corpus}", *overrides, f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    leftovers = {"vectors.bin", "vectors.txt", "vocab.txt", "checkpoint.pt"} & set(os.listdir(out) if out.exists() else [])
    assert not leftovers


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("1234 ... !!!\n")
    r = run_cli(f"data.corpus={tmp_path / 'empty.txt'}", f"hydra.run.dir={tmp_path / 'o'}", cwd=tmp_path)
    assert r.returncode == 2 and "no tokens" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(planted, tmp_path):
    corpus, _ = planted
    r = run_cli(f"data.corpus={corpus}", "train.device=cuda", f"hydra.run.dir={tmp_path / 'o'}", cwd=tmp_path)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr
