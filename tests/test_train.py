"""The whole pipeline, through train() and through the command line."""

import json
import os
import re
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
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=16", "train.epochs=2", "model.num_shards=4",
        "model.partition_strategy=div", "train.progress=true", "eval.probe_words=[wabab]", f"hydra.run.dir={out}",
        "train.batch_size=256", "train.shared_negatives=8", cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "wabab:" in r.stdout and (out / "vectors.bin").is_file()
    assert "100%" in r.stderr.rsplit("\r", 1)[-1]  # the bar ends full
    log = (out / "train.log").read_text()  # the run's lines are kept in its folder
    assert "corpus: 60,000 tokens" in log and "epoch 1: loss" in log and "wabab:" in log and "outputs in" in log


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
    assert not out.exists()  # a run that fails before training leaves no folder


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("1234 ... !!!\n")
    r = run_cli(f"data.corpus={tmp_path / 'empty.txt'}", f"hydra.run.dir={tmp_path / 'o'}", cwd=tmp_path)
    assert r.returncode == 2 and "no tokens" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(planted, tmp_path):
    corpus, _ = planted
    r = run_cli(f"data.corpus={corpus}", "train.device=cuda", f"hydra.run.dir={tmp_path / 'o'}", cwd=tmp_path)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr


# --- checkpoints, signals, resuming ----------------------------------------------------

import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from w2v.checkpoint import CheckpointFolder  # noqa: E402
from w2v.trainer import TrainingDiverged, TrainingInterrupted  # noqa: E402


def resumable_config(corpus, cache_dir, **train_overrides):
    """small_config with one worker and chunks small enough to stop mid-epoch."""
    options = dict(workers=1, chunk_tokens=8192, checkpoint_every_words=50_000)
    return small_config(corpus, cache_dir, **{**options, **train_overrides})


def after_checkpoint(monkeypatch, action, nth=1):
    """Run ``action(model)`` right after the run's ``nth`` periodic checkpoint is written."""
    real = CheckpointFolder.save
    count = [0]

    def save(self, model, *args, **kwargs):
        path = real(self, model, *args, **kwargs)
        count[0] += 1
        if count[0] == nth:
            action(model)
        return path

    monkeypatch.setattr(CheckpointFolder, "save", save)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_stopped_by_a_signal_resumes_to_the_same_vectors(planted, cache_dir, tmp_path, monkeypatch, sig):
    corpus, _ = planted
    whole = train(resumable_config(corpus, cache_dir), tmp_path / "whole")

    after_checkpoint(monkeypatch, lambda model: os.kill(os.getpid(), sig), nth=2)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(resumable_config(corpus, cache_dir), tmp_path / "first")
    monkeypatch.undo()
    assert stopped.value.signum == sig and stopped.value.state.epoch == 1  # mid-way through epoch 2
    assert Path(stopped.value.checkpoint).parent == tmp_path / "first" / "checkpoints"
    assert not {"vectors.bin", "checkpoint.pt", "metrics.json"} & set(os.listdir(tmp_path / "first"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back

    resumed = train(resumable_config(corpus, cache_dir, resume=str(tmp_path / "first")), tmp_path / "second")
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt"), load_checkpoint(tmp_path / "second" / "checkpoint.pt")
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["output"], b["output"])
    assert resumed["epoch_losses"] == whole["epoch_losses"]
    assert resumed["resumed_from"] == str(stopped.value.checkpoint)
    assert b["state"]["finished"] and b["state"]["words"] == 3 * 60_000


def test_periodic_checkpoints_keep_the_newest_k(planted, cache_dir, tmp_path):
    corpus, _ = planted
    train(resumable_config(corpus, cache_dir, checkpoint_every_words=10_000, keep_checkpoints=2), tmp_path)
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    # first boundaries past 160,000 and 170,000 words: epoch 3 (from 120,000) at chunks 5 and 7 of 8,192
    assert names == ["checkpoint-000000000160960.pt", "checkpoint-000000000177344.pt"]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / names[-1])
    assert ckpt["state"]["epoch"] == 2 and ckpt["config"]["train"]["keep_checkpoints"] == 2


def test_nan_stops_the_run_and_names_the_last_good_checkpoint(planted, cache_dir, tmp_path, monkeypatch):
    corpus, _ = planted

    def poison(model):
        with torch.no_grad():
            model.input.shards[0][3] = float("inf")

    after_checkpoint(monkeypatch, poison)
    with pytest.raises(TrainingDiverged, match="the last good checkpoint is .*checkpoint-000000000057344.pt") as err:
        train(resumable_config(corpus, cache_dir), tmp_path)
    assert "lower train.lr" in str(err.value)
    kept = os.listdir(tmp_path / "checkpoints")
    assert kept == ["checkpoint-000000000057344.pt"]  # nothing written after the tables went bad
    assert torch.isfinite(load_checkpoint(tmp_path / "checkpoints" / kept[0])["input"]).all()
    assert not {"vectors.bin", "checkpoint.pt"} & set(os.listdir(tmp_path))


def wait_for_file(folder: Path, pattern: str, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(folder.glob(pattern))
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"no {pattern} in {folder} (exit status {proc.poll()})")


def test_ctrl_c_saves_exits_130_and_the_cli_resumes(planted, cache_dir, tmp_path):
    corpus, _ = planted
    settings = [
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=8", "train.epochs=100", "train.workers=1",
        "train.batch_size=256", "train.shared_negatives=8",  # 4,096-pair batches diverge on 73 words
        "train.chunk_tokens=8192", "train.progress=false", "eval.analogies=null", "eval.similarity=null",
        "eval.every_epoch=false", "eval.projector_words=0", "export.formats=[bin]",
    ]
    env = dict(os.environ, W2V_CACHE_DIR=cache_dir)
    first = tmp_path / "first"
    proc = subprocess.Popen(
        [sys.executable, "-m", "w2v.train", *settings, "train.checkpoint_every_words=20000", f"hydra.run.dir={first}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_file(first / "checkpoints", "checkpoint-*.pt", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGINT") and "continue with train.resume=" in last and "Traceback" not in err
    saved = Path(last.rsplit("train.resume=", 1)[1])
    assert saved.parent == first / "checkpoints" and load_checkpoint(saved)["state"]["words"] < 100 * 60_000
    assert not (first / "vectors.bin").exists()

    r = run_cli(*settings, f"train.resume={first}", f"hydra.run.dir={tmp_path / 'second'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and (tmp_path / "second" / "vectors.bin").is_file()
    done = load_checkpoint(tmp_path / "second" / "checkpoint.pt")
    assert done["state"]["finished"] and done["state"]["words"] == 100 * 60_000


# --- the bad-input table: one line on stderr, exit status 2, no outputs --------------------


def assert_one_line_error(r, message, out=None):
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    if out is not None:
        assert not out.exists()  # a run that fails before training leaves no folder


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.epochs=0"], "train.epochs must be a positive integer"),
        (["model.num_shards=500", "data.min_count=1"], "is more than the 73 vocabulary rows"),
        (["train.resume=/no/such/checkpoint.pt"], "checkpoint not found"),
        (["train.checkpoint_every_words=-5"], "train.checkpoint_every_words must be >= 0"),
    ],
)
def test_more_bad_settings(planted, tmp_path, overrides, message):
    corpus, _ = planted
    out = tmp_path / "out"
    r = run_cli(f"data.corpus={corpus}", *overrides, f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, message, out)


@pytest.fixture
def trained_run(planted, cache_dir, tmp_path):
    corpus, _ = planted
    run = tmp_path / "trained"
    train(small_config(corpus, cache_dir, epochs=1), run)
    return run


def damaged(kind, run, tmp_path):
    """The train.resume value of each kind of bad checkpoint."""
    data = (run / "checkpoint.pt").read_bytes()
    if kind == "truncated":
        (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 3])
        return tmp_path / "truncated.pt"
    if kind == "corrupt":
        (tmp_path / "corrupt.pt").write_bytes(bytes(range(256)) * 40)
        return tmp_path / "corrupt.pt"
    if kind == "flipped":  # 64 bytes inside the input table
        from test_checkpoint import flip_bytes_inside

        (tmp_path / "flipped.pt").write_bytes(data)
        flip_bytes_inside(tmp_path / "flipped.pt", load_checkpoint(run / "checkpoint.pt")["input"])
        return tmp_path / "flipped.pt"
    (tmp_path / "empty_run").mkdir()
    return tmp_path / "empty_run"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "truncated.pt is not a readable checkpoint"),
        ("corrupt", "it may be truncated or corrupt"),
        ("flipped", "flipped.pt is a damaged checkpoint: its input table no longer matches the checksum written with it"),
        ("no_checkpoint", "no checkpoint in"),
    ],
)
def test_bad_checkpoints_given_to_resume(trained_run, planted, tmp_path, kind, message):
    corpus, _ = planted
    out = tmp_path / "out"
    resume = damaged(kind, trained_run, tmp_path)
    r = run_cli(f"data.corpus={corpus}", "data.min_count=1", f"train.resume={resume}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, message, out)


def test_resuming_with_another_shape_names_the_setting(trained_run, planted, tmp_path):
    corpus, _ = planted
    out = tmp_path / "out"
    r = run_cli(
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=50", f"train.resume={trained_run}", f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert_one_line_error(r, "set model.dim=24 or start without train.resume", out)
    r = run_cli(f"data.corpus={corpus}", "model.dim=24", f"train.resume={trained_run}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, "set data.min_count=1", out)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("random", r"of its first 1,\d{3},\d{3} bytes \(4\d%\) are not valid UTF-8 and 1\d% of its characters are control"),
        ("utf16", r"5\d% of its characters are NUL: UTF-16 text, or binary data; convert it to UTF-8 \(iconv -f UTF-16"),
    ],
)
def test_a_binary_or_utf16_corpus_is_refused_before_training(planted, tmp_path, kind, message):
    corpus, _ = planted
    path = tmp_path / f"{kind}.txt"
    if kind == "random":  # words, then megabytes of random bytes: refused after the first MB is read
        path.write_bytes(corpus.read_bytes()[:20_000] + np.random.default_rng(0).bytes(3 << 20))
    else:
        path.write_text(corpus.read_text()[:200_000], encoding="utf-16")
    out = tmp_path / "out"
    r = run_cli(f"data.corpus={path}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, f"corpus file {path} is not UTF-8 text: ", out)
    assert re.search(message, r.stderr), r.stderr


def test_invalid_utf8_is_a_warning_and_training_goes_on(planted, tmp_path):
    corpus, _ = planted
    corpus.write_bytes(corpus.read_bytes() + b"\n\xff\xfe\xc3 broken \x80 bytes\n")
    out = tmp_path / "out"
    r = run_cli(
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=8", "train.epochs=1", "train.progress=false",
        "eval.analogies=null", "eval.similarity=null", f"hydra.run.dir={out}", cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "warning: 4 bytes of the corpus were not valid UTF-8" in r.stderr and (out / "vectors.bin").is_file()


def test_an_unwritable_export_folder_is_one_line(planted, tmp_path):
    corpus, _ = planted
    (tmp_path / "a_file").write_text("not a folder\n")
    out = tmp_path / "out"
    r = run_cli(f"data.corpus={corpus}", f"export.dir={tmp_path / 'a_file' / 'vectors'}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, "is not writable", out)
    assert "export.dir=" in r.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_export_folder_is_one_line(planted, tmp_path):
    corpus, _ = planted
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = run_cli(f"data.corpus={corpus}", f"export.dir={locked}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    finally:
        locked.chmod(0o755)
    assert_one_line_error(r, "is not writable", tmp_path / "out")


def test_exported_vectors_go_to_export_dir(planted, cache_dir, tmp_path):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.export.dir = str(tmp_path / "vectors")
    train(cfg, tmp_path / "run")
    assert {"vectors.bin", "vectors.txt"} <= set(os.listdir(tmp_path / "vectors"))
    assert "vectors.bin" not in os.listdir(tmp_path / "run") and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_a_diverging_run_is_one_error_line_and_exit_2(planted, tmp_path):
    corpus, _ = planted
    r = run_cli(
        f"data.corpus={corpus}", "data.min_count=1", "train.lr=1e30", "train.min_lr=0", "train.progress=false",
        "eval.analogies=null", "eval.similarity=null", "eval.every_epoch=false", f"hydra.run.dir={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the loss became") and "lower train.lr" in last
    assert not (tmp_path / "out" / "vectors.bin").exists()


@pytest.mark.parametrize("program", ["w2v.query", "w2v.evaluate"])
def test_truncated_vectors_are_one_line(trained_run, tmp_path, program):
    data = (trained_run / "vectors.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    args = ["--word", "waaaa"] if program == "w2v.query" else ["--analogies", str(ROOT / "w2v" / "data" / "questions-words.txt")]
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-m", program, str(tmp_path / "cut.bin"), *args], capture_output=True, text=True, cwd=tmp_path,
        env=env, timeout=120,
    )
    assert_one_line_error(r, "the file is truncated")


# --- the command line: Hydra's errors as ours, help, sweeps, resuming in place ----------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.dim=abc", "model.dim=abc: model.dim takes an integer; e.g. model.dim=100"),
        ("train.lr=fast", "train.lr=fast: train.lr takes a number"),
        ("export.formats=bin", "export.formats takes a list; e.g. export.formats=[bin,txt]"),
        ("model.dimm=10", "unknown key model.dimm; did you mean model.dim=10?"),
        ("+model.dimm=10", "unknown key model.dimm; did you mean model.dim=10?"),
        ("data=text8", "corpus not found: data/text8; fetch it with scripts/download_text8.sh"),
    ],
)
def test_config_errors_are_one_line_exit_2_and_leave_no_run_folder(tmp_path, override, message):
    r = run_cli(override, cwd=tmp_path)
    assert_one_line_error(r, message)
    assert not (tmp_path / "outputs").exists()


def test_help_lists_the_groups_and_the_main_keys(tmp_path):
    r = run_cli("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("+experiment", "debug", "text8", "model.dim", "train.epochs", "eval.restrict_vocab", "export.formats"):
        assert text in r.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_cfg_job_and_sweeps_still_work(planted, tmp_path):
    corpus, _ = planted
    r = run_cli("--cfg", "job", "model.dim=7", "+experiment=debug", cwd=tmp_path)
    assert r.returncode == 0 and "dim: 7" in r.stdout and "epochs: 1" in r.stdout, r.stderr
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m", f"data.corpus={corpus}", "data.min_count=1", "model.dim=8,16", "train.epochs=1", "train.progress=false",
        "eval.analogies=null", "eval.similarity=null", "eval.projector_words=0", "export.formats=[bin]",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    dims = [WordVectors.load(sweep / job / "vectors.bin").vector_size for job in ("0", "1")]
    assert dims == [8, 16]


@pytest.mark.slow
def test_resuming_a_run_folder_continues_in_it(planted, tmp_path):
    corpus, _ = planted
    settings = [
        f"data.corpus={corpus}", "data.min_count=1", "model.dim=8", "train.batch_size=256", "train.shared_negatives=8",
        "train.progress=false", "eval.analogies=null", "eval.similarity=null", "eval.projector_words=0",
    ]
    first = tmp_path / "first"
    assert run_cli(*settings, "train.epochs=1", f"hydra.run.dir={first}", cwd=tmp_path).returncode == 0
    r = run_cli("train.epochs=2", f"train.resume={first}", cwd=tmp_path)  # the run's own settings carry over
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and f"outputs in {first}" in r.stdout
    (said,) = [line for line in r.stderr.splitlines() if line.startswith("resuming with the run's own settings: ")]
    assert "model.dim=8" in said and "train.epochs" not in said and "hydra.run.dir" not in said
    assert not (tmp_path / "outputs").exists()
    assert load_checkpoint(first / "checkpoint.pt")["state"]["words"] == 2 * 60_000
    assert len(list((first / "tb").glob("events.*"))) == 2  # TensorBoard's curves in one place
    assert "epochs: 1" in (first / ".hydra" / "config.yaml").read_text()  # the first run's config is kept
    (resumed,) = (first / ".hydra").glob("resumed-*")
    assert "epochs: 2" in (resumed / "config.yaml").read_text()


# --- what the run reports ---------------------------------------------------------------


def test_npy_export_keeps_the_vocabulary_counts(planted, cache_dir, tmp_path):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.export.formats = ["npy"]
    train(cfg, tmp_path)
    vocab = Vocab.load(tmp_path / "vocab.txt")
    counts = [int(line.rsplit(" ", 1)[1]) for line in (tmp_path / "vectors.vocab.txt").read_text().splitlines()]
    assert counts == list(vocab.counts) and sum(counts) == 60_000


def test_probe_neighbours_come_from_frequent_words_and_missing_probes_are_named(planted, cache_dir, tmp_path, capsys):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.eval.probe_words, cfg.eval.probe_vocab, cfg.eval.topn = ["waaaa", "nosuchword"], 10, 5
    train(cfg, tmp_path)
    out = capsys.readouterr().out
    frequent = Vocab.load(tmp_path / "vocab.txt").index_to_key[:10]
    (line,) = [l for l in out.splitlines() if l.startswith("waaaa: ")]
    assert all(pair.rsplit(" ", 1)[0] in frequent for pair in line[len("waaaa: "):].split(", "))
    assert "among the 10 most frequent words" in out
    assert "probe words not in the vocabulary: nosuchword" in out


# --- nothing trained is lost -----------------------------------------------------------------

import errno  # noqa: E402
import tempfile  # noqa: E402

from w2v import safefile  # noqa: E402
from w2v.stopping import FinishingInterrupted  # noqa: E402

from test_safefile import FullDisk, dead_pid, owned_by  # noqa: E402


def test_a_signal_after_training_finds_the_tables_saved_and_resuming_only_exports(
    planted, cache_dir, tmp_path, monkeypatch, capsys
):
    corpus, _ = planted
    out = tmp_path / "run"

    def interrupt(self, *args, **kwargs):  # the final probe neighbours: evaluation, after training
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    monkeypatch.setattr(WordVectors, "most_similar", interrupt)
    with pytest.raises(FinishingInterrupted) as stopped:
        train(small_config(corpus, cache_dir, epochs=1), out)
    monkeypatch.undo()
    assert stopped.value.signum == signal.SIGINT and stopped.value.doing == "evaluating"
    assert stopped.value.checkpoint == str(out / "checkpoint.pt")
    assert not {"vectors.bin", "vectors.txt", "metrics.json"} & set(os.listdir(out))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["state"]["finished"] and saved["corpus"]["tokens"] == 60_000
    written = (out / "checkpoint.pt").stat().st_mtime_ns

    capsys.readouterr()
    metrics = train(small_config(corpus, cache_dir, epochs=1, resume=str(out)), out)  # finish in the same folder
    err = capsys.readouterr().err
    assert "training ended there (1 epochs); evaluating and exporting only" in err
    vectors = WordVectors.load_word2vec_format(out / "vectors.bin", binary=True)
    assert torch.equal(torch.from_numpy(vectors.vectors), saved["input"])
    assert (out / "checkpoint.pt").stat().st_mtime_ns == written  # not written again
    assert metrics["epoch_losses"] == saved["state"]["epoch_losses"]


def test_a_signal_while_the_tables_are_saved_waits_for_the_file(planted, cache_dir, tmp_path, monkeypatch):
    from w2v import run_folder

    corpus, _ = planted
    real = run_folder.save_checkpoint

    def save_interrupted(path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before the file is written
        real(path, *args, **kwargs)

    monkeypatch.setattr(run_folder, "save_checkpoint", save_interrupted)
    with pytest.raises(FinishingInterrupted) as stopped:
        train(small_config(corpus, cache_dir, epochs=1), tmp_path)
    assert stopped.value.signum == signal.SIGTERM and stopped.value.doing == "saving the trained tables"
    assert load_checkpoint(stopped.value.checkpoint)["state"]["finished"]
    assert not (tmp_path / "vectors.bin").exists()


# A run whose export stalls once it has begun (the writer waits), so that a signal can reach it there.
SLOW_EXPORT = r"""
import runpy, sys, time
from pathlib import Path
from w2v import formats

def stall(path, *args, **kwargs):
    Path(path).with_name("exporting").touch()
    time.sleep(120)

formats.write_word2vec = stall
sys.argv = ["w2v.train", *sys.argv[1:]]
runpy.run_module("w2v.train", run_name="__main__", alter_sys=True)
"""


def test_sigterm_during_export_exits_143_naming_the_saved_tables(planted, cache_dir, tmp_path):
    corpus, _ = planted
    out = tmp_path / "run"
    env = dict(os.environ, W2V_CACHE_DIR=cache_dir, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_EXPORT, f"data.corpus={corpus}", "data.min_count=1", "model.dim=8", "train.epochs=1",
         "train.progress=false", "eval.analogies=null", "eval.similarity=null", f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_file(out, "exporting", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"stopped by SIGTERM while exporting vectors.bin, after training ended; the trained tables are saved in "
        f"{out / 'checkpoint.pt'}; finish with train.resume={out} (training is skipped: it only evaluates and exports)"
    ), err
    assert load_checkpoint(out / "checkpoint.pt")["state"]["finished"] and "Traceback" not in err
    assert not [p for p in os.listdir(out) if p.startswith(".vectors") or p.startswith("vectors")]


def full_disk_under(monkeypatch, folder, names=("",)):
    """Writes of w2v files under ``folder`` whose names hold one of ``names`` fail with ENOSPC."""

    def open_(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        full = str(path).startswith(str(folder)) and "x" in mode and any(n in os.path.basename(path) for n in names)
        return FullDisk(f, room=50) if full else f

    monkeypatch.setattr(safefile, "open", open_, raising=False)


def test_an_export_into_a_full_disk_keeps_the_tables_and_leaves_no_partial_file(planted, cache_dir, tmp_path, monkeypatch):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.export.dir = str(tmp_path / "vectors")
    full_disk_under(monkeypatch, tmp_path / "vectors")
    with pytest.raises(ValueError) as err:
        train(cfg, tmp_path / "run")
    assert str(err.value) == (
        f"cannot write vectors.bin into {tmp_path / 'vectors'} (No space left on device); free space there or set "
        f"export.dir to a folder with room, then finish with train.resume={tmp_path / 'run'} (training is skipped): "
        f"the trained tables are saved in {tmp_path / 'run' / 'checkpoint.pt'}"
    )
    assert os.listdir(tmp_path / "vectors") == []  # no partial file, no temp file
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["state"]["finished"]


def test_a_full_run_folder_keeps_the_trained_tables_elsewhere(planted, cache_dir, tmp_path, monkeypatch, capsys):
    corpus, _ = planted
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spare"))
    out = tmp_path / "run"
    full_disk_under(monkeypatch, out, names=("checkpoint", "vectors"))  # full once training is under way
    with pytest.raises(ValueError) as err:
        train(resumable_config(corpus, cache_dir, epochs=1, checkpoint_every_words=30_000), out)
    spare = tmp_path / "spare" / f"w2v-saved-run-{os.getpid()}"
    err_text = capsys.readouterr().err
    assert "warning: no checkpoint at 32,768 words: cannot write into" in err_text and "training goes on" in err_text
    assert f"warning: cannot write checkpoint.pt into {out} (No space left on device); the trained tables are saved " \
           f"in {spare / 'checkpoint.pt'} instead" in err_text
    assert f"then finish with train.resume={spare} (training is skipped)" in str(err.value)
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")] and not os.listdir(out / "checkpoints")
    monkeypatch.undo()

    train(resumable_config(corpus, cache_dir, epochs=1, resume=str(spare)), tmp_path / "finished")
    vectors = WordVectors.load_word2vec_format(tmp_path / "finished" / "vectors.bin", binary=True)
    assert torch.equal(torch.from_numpy(vectors.vectors), load_checkpoint(spare)["input"])


def test_no_room_anywhere_for_the_trained_tables_names_the_last_checkpoint(planted, cache_dir, tmp_path, monkeypatch):
    corpus, _ = planted
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spare"))
    full_disk_under(monkeypatch, tmp_path, names=("checkpoint.pt",))  # periodic checkpoints still go through
    out = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        train(resumable_config(corpus, cache_dir, epochs=1, checkpoint_every_words=30_000), out)
    assert re.fullmatch(
        rf"cannot save the trained tables: no room in {out} \(No space left on device\); "
        rf"{tmp_path / 'spare'}/w2v-saved-run-\d+ \(No space left on device\); free space, then resume from the last "
        rf"checkpoint, train.resume={out}/checkpoints/checkpoint-\d+\.pt",
        str(err.value),
    ), str(err.value)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_without_export_checkpoint_the_tables_are_kept_until_the_vectors_are_written(planted, cache_dir, tmp_path):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.export.checkpoint = False
    train(cfg, tmp_path)
    assert (tmp_path / "vectors.bin").is_file() and not (tmp_path / "checkpoint.pt").exists()


def test_a_token_pattern_that_matches_whitespace_is_refused_before_training(planted, tmp_path):
    corpus, _ = planted
    out = tmp_path / "out"
    r = run_cli(f"data.corpus={corpus}", "data.token_pattern='[a-z]+ ?'", f"hydra.run.dir={out}", cwd=tmp_path)
    assert_one_line_error(r, "data.token_pattern '[a-z]+ ?' makes the token 'w", out)
    assert "with whitespace in it, which no vocabulary or word2vec file can hold" in r.stderr


def test_what_killed_runs_left_is_swept_by_the_next(planted, cache_dir, tmp_path):
    corpus, _ = planted
    cfg = small_config(corpus, cache_dir, epochs=1)
    cfg.export.dir = str(tmp_path / "vectors")
    out, dead = tmp_path / "run", dead_pid()
    for folder, name in ((tmp_path / "vectors", "vectors.txt"), (out, "checkpoint.pt"), (out / "checkpoints", "checkpoint-1.pt")):
        folder.mkdir(parents=True)
        (folder / owned_by(dead, folder / name)).write_bytes(b"\0" * 4096)
    live = tmp_path / "vectors" / owned_by(os.getpid(), tmp_path / "vectors" / "vectors.bin")
    live.write_bytes(b"")
    train(cfg, out)
    assert [p.name for p in (tmp_path / "vectors").iterdir() if p.name.startswith(".")] == [live.name]
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not list((out / "checkpoints").iterdir())


def test_a_run_folder_in_use_is_refused_with_one_line(planted, tmp_path):
    from test_runlock import hold

    corpus, _ = planted
    out = tmp_path / "busy"
    out.mkdir()
    holder = hold(out)
    try:
        r = run_cli(f"data.corpus={corpus}", f"hydra.run.dir={out}", cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert_one_line_error(r, f"hydra.run.dir={out} is in use by another run (pid {holder.pid}@", out)
    assert "wait for it to end, or give this run another hydra.run.dir" in r.stderr


def test_a_damaged_gzip_corpus_is_one_line(tmp_path):
    import gzip

    data = bytearray(gzip.compress(" ".join(f"w{i % 5000}x" for i in range(200_000)).encode()))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    (tmp_path / "c.txt.gz").write_bytes(bytes(data))
    r = run_cli(f"data.corpus={tmp_path / 'c.txt.gz'}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert_one_line_error(r, "c.txt.gz: not a readable gzip file (", tmp_path / "out")
    assert "the file is damaged: decompress or re-download it" in r.stderr


def test_a_full_cache_folder_is_one_line(planted, cache_dir, tmp_path, monkeypatch):
    corpus, _ = planted

    def no_room(parent):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safefile, "temp_dir", no_room)
    with pytest.raises(ValueError) as err:
        train(small_config(corpus, cache_dir), tmp_path / "out")
    assert str(err.value) == (
        f"cannot write the tokenized corpus into data.cache_dir={cache_dir} (No space left on device); free space "
        "there, or set data.cache_dir (or $W2V_CACHE_DIR) to a folder with room, or data.cache=false"
    )


def shuffled_copy(corpus, path):
    lines = corpus.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:] + lines[:1]))  # the same tokens, another order
    return path


def test_resuming_on_another_corpus_of_the_same_size_is_refused(trained_run, planted, cache_dir, tmp_path, capsys):
    corpus, _ = planted
    other = shuffled_copy(corpus, tmp_path / "shuffled.txt")
    with pytest.raises(ValueError, match=r"was trained on another corpus of the same 60,000 tokens \(its content differs\); "
                       r"resume with the data.corpus of the checkpoint's run"):
        train(small_config(other, cache_dir, epochs=2, resume=str(trained_run)), tmp_path / "out")

    old = torch.load(trained_run / "checkpoint.pt", weights_only=True)  # as an earlier version wrote it
    del old["corpus"], old["checksums"]
    torch.save(old, tmp_path / "old.pt")
    capsys.readouterr()
    train(small_config(corpus, cache_dir, epochs=2, resume=str(tmp_path / "old.pt")), tmp_path / "resumed")
    assert "was written by an older w2v, without a corpus fingerprint" in capsys.readouterr().err
