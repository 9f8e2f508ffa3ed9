"""Checkpoint files: atomic writes, the newest K kept, a SIGKILL mid-write loses nothing."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from w2v.checkpoint import CheckpointFolder, latest_checkpoint, load_checkpoint, save_checkpoint
from w2v.model import SkipGramNS
from w2v.resume import restore_tables
from w2v.vocab import Vocab

from conftest import ROOT


def tiny(v=50, d=8, num_shards=1, strategy="mod", seed=0):
    model = SkipGramNS(v, d, num_shards, strategy)
    gen = torch.Generator().manual_seed(seed)
    model.reset_parameters(gen)
    with torch.no_grad():
        model.output.index_add_(torch.arange(v), torch.randn(v, d, generator=gen))
    vocab = Vocab(["<unk>"] + [f"w{i}" for i in range(v - 1)], [3] * v)
    return model, vocab


CONFIG = {
    "data": {"token_pattern": "x", "lowercase": True, "min_count": 5, "max_vocab_size": None},
    "model": {"dim": 8},
    "train": {"chunk_tokens": 100, "lr": 0.025, "epochs": 5},
}


def test_round_trip_and_exact_restore_into_any_sharding(tmp_path):
    model, vocab = tiny(num_shards=3, strategy="div")
    save_checkpoint(tmp_path / "c.pt", model, vocab, CONFIG, {"words": 7})
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["words"] == vocab.index_to_key and ckpt["state"] == {"words": 7} and ckpt["config"] == CONFIG
    for num_shards, strategy in ((1, "mod"), (4, "mod"), (2, "div")):
        other, _ = tiny(num_shards=num_shards, strategy=strategy, seed=9)
        restore_tables(other, ckpt)
        assert torch.equal(other.input.weight, model.input.weight)
        assert torch.equal(other.output.weight, model.output.weight)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp file left


def test_folder_keeps_the_newest_k_and_resolves_the_latest(tmp_path):
    model, vocab = tiny()
    folder = CheckpointFolder(tmp_path / "run" / "checkpoints", keep=2)
    for words in (100, 2000, 30, 999_999):
        folder.save(model, vocab, CONFIG, {"words": words})
    names = [p.name for p in folder.checkpoints()]
    assert names == ["checkpoint-000000000002000.pt", "checkpoint-000000000999999.pt"]
    assert latest_checkpoint(tmp_path / "run").name == names[-1]
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == names[-1]
    assert load_checkpoint(tmp_path / "run")["state"]["words"] == 999_999  # a folder means its latest
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, vocab, CONFIG, {"words": 5})
    assert latest_checkpoint(tmp_path / "run").name == "checkpoint.pt"  # written when training ended
    CheckpointFolder(tmp_path / "all", keep=0).save(model, vocab, CONFIG, {"words": 1})
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        latest_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_ours", "inconsistent"])
def test_damaged_checkpoints_are_one_clear_value_error(tmp_path, damage):
    model, vocab = tiny()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, vocab, CONFIG, {"words": 1})
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(5000)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_ours":
        torch.save({"state_dict": {}}, path)
    else:
        ckpt = torch.load(path, weights_only=True)
        ckpt["words"] = ckpt["words"][:-1]
        torch.save(ckpt, path)
    with pytest.raises(ValueError, match="checkpoint") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


# A child that writes checkpoints in a loop. With a stall index, that write stops halfway
# (the bytes written so far are on disk) and the child waits to be killed.
WRITER = r"""
import io, sys, time, torch
from w2v.checkpoint import CheckpointFolder
from w2v.model import SkipGramNS
from w2v.vocab import Vocab

folder, stall = sys.argv[1], int(sys.argv[2])
V, D = 4000, 64
vocab = Vocab(["<unk>"] + [f"w{i}" for i in range(V - 1)], [1] * V)
model = SkipGramNS(V, D)
real_save, count = torch.save, [0]

def save(obj, f):
    if count[0] == stall:
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        print("stalled", flush=True)
        time.sleep(600)
    count[0] += 1
    real_save(obj, f)

torch.save = save
checkpoints = CheckpointFolder(folder, keep=2)
config = {"model": {"dim": D}}
for i in range(100000):
    with torch.no_grad():
        model.input.shards[0].fill_(float(i))
    checkpoints.save(model, vocab, config, {"words": i})
    print("saved", i, flush=True)
"""


def start_writer(folder, stall=-1):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), str(stall)], stdout=subprocess.PIPE, text=True, env=env
    )


def wait_for(proc, word):
    for line in proc.stdout:
        if line.startswith(word):
            return line
    raise AssertionError(f"the writer ended before printing {word!r}")


def assert_only_complete_checkpoints(folder):
    complete = CheckpointFolder(folder).checkpoints()
    assert complete, "no checkpoint survived"
    for path in complete:  # every file under a checkpoint's name loads
        ckpt = load_checkpoint(path)
        assert torch.all(ckpt["input"] == ckpt["state"]["words"])
    return load_checkpoint(latest_checkpoint(folder))


def test_sigkill_mid_write_leaves_the_previous_checkpoint(tmp_path):
    proc = start_writer(tmp_path, stall=3)
    try:
        wait_for(proc, "stalled")  # the fourth write is half on disk
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    latest = assert_only_complete_checkpoints(tmp_path)
    assert latest["state"]["words"] == 2  # saves 0, 1, 2 completed; 3 was killed mid-write
    assert latest_checkpoint(tmp_path).name == "checkpoint-000000000000002.pt"
    model, vocab = tiny()
    CheckpointFolder(tmp_path, keep=2).save(model, vocab, CONFIG, {"words": 50})  # the next save
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # sweeps the dead writer's temp file


def test_sigkill_at_a_random_moment_of_a_write_loop(tmp_path):
    rng = random.Random(1)
    for attempt in range(2):
        folder = tmp_path / str(attempt)
        proc = start_writer(folder)
        try:
            wait_for(proc, "saved 1")
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
        assert_only_complete_checkpoints(folder)


# --- what a checkpoint holds is checked when it is read --------------------------------------


def flip_bytes_inside(path, table: torch.Tensor, count: int = 64):
    """Overwrite ``count`` bytes in the middle of ``table``'s data inside the checkpoint file."""
    data = bytearray(path.read_bytes())
    raw = table.contiguous().numpy().tobytes()
    middle = raw[len(raw) // 2 : len(raw) // 2 + count]
    at = data.find(middle)
    assert at > 0 and data.find(middle, at + 1) < 0
    data[at : at + count] = bytes(b ^ 0xFF for b in middle)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("table", ["input", "output"])
def test_flipped_bytes_inside_a_table_are_refused_naming_an_earlier_checkpoint(tmp_path, table):
    model, vocab = tiny(v=500, d=16)
    folder = CheckpointFolder(tmp_path / "run" / "checkpoints", keep=0)
    for words in (100, 200):
        folder.save(model, vocab, CONFIG, {"words": words})
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, vocab, CONFIG, {"words": 300})
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert set(ckpt["checksums"]) == {"input", "output", "counts", "words"}

    flip_bytes_inside(tmp_path / "run" / "checkpoint.pt", ckpt[table])
    with pytest.raises(ValueError) as err:
        load_checkpoint(tmp_path / "run")
    assert f"checkpoint.pt is a damaged checkpoint: its {table} table no longer matches the checksum" in str(err.value)
    assert str(err.value).endswith("resume from an earlier one, train.resume=" + str(folder.path(200)))
    flip_bytes_inside(folder.path(200), ckpt[table])
    with pytest.raises(ValueError, match=rf"train.resume={folder.path(100)}$"):
        load_checkpoint(folder.path(200))


def test_a_checkpoint_from_before_checksums_still_loads(tmp_path):
    model, vocab = tiny()
    save_checkpoint(tmp_path / "c.pt", model, vocab, CONFIG, {"words": 1})
    old = torch.load(tmp_path / "c.pt", weights_only=True)
    del old["checksums"]
    torch.save(old, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["input"], model.input.weight)


def test_a_table_is_saved_as_its_own_values_without_a_copy_unless_it_is_a_view():
    from w2v.checkpoint import _own_storage

    whole = torch.arange(12.0).view(4, 3)
    assert _own_storage(whole).data_ptr() == whole.data_ptr()  # written as it is
    buffer = torch.arange(24.0)
    view = buffer[6:18].view(4, 3)  # a shard of a flat buffer: torch.save would write all 24 values
    own = _own_storage(view)
    assert own.data_ptr() != view.data_ptr() and torch.equal(own, view)
    assert own.untyped_storage().nbytes() == 12 * 4
