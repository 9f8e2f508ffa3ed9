"""Resuming: the settings a run must share with its checkpoint, the corpus record, the tables put back."""

import pytest

from w2v.checkpoint import load_checkpoint, save_checkpoint
from w2v.resume import check_corpus, check_resumable, restore_tables

from test_checkpoint import CONFIG, tiny


def test_resuming_needs_the_same_shape_and_vocabulary_settings(tmp_path):
    model, vocab = tiny()
    save_checkpoint(tmp_path / "c.pt", model, vocab, CONFIG, {"words": 1})
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert check_resumable(ckpt, CONFIG) == []
    with pytest.raises(ValueError, match=r"model.dim=8 but this run asks for model.dim=16; set model.dim=8"):
        check_resumable(ckpt, {**CONFIG, "model": {"dim": 16}})
    with pytest.raises(ValueError, match=r"data.min_count=5 but this run asks for data.min_count=1; set data.min_count=5"):
        check_resumable(ckpt, {**CONFIG, "data": {**CONFIG["data"], "min_count": 1}})
    with pytest.raises(ValueError, match=r"set train.chunk_tokens=100"):
        check_resumable(ckpt, {**CONFIG, "train": {**CONFIG["train"], "chunk_tokens": 64}})
    changes = check_resumable(ckpt, {**CONFIG, "train": {**CONFIG["train"], "lr": 0.01}})
    assert changes == ["train.lr=0.01, the checkpoint's run had 0.025"]


def test_the_corpus_record_tells_another_corpus_of_the_same_size(tmp_path):
    model, vocab = tiny()
    record = {"tokens": 1000, "fingerprint": "blake2b:aa"}
    save_checkpoint(tmp_path / "c.pt", model, vocab, CONFIG, {"words": 1}, corpus=record)
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert check_corpus(ckpt, 1000, "blake2b:aa") is None
    assert check_corpus(ckpt, 999, "blake2b:bb") is None  # another size: the trainer names both counts
    with pytest.raises(ValueError, match=r"c.pt was trained on another corpus of the same 1,000 tokens .*"
                       r"resume with the data.corpus of the checkpoint's run"):
        check_corpus(ckpt, 1000, "blake2b:bb")
    del ckpt["corpus"]  # a checkpoint of an earlier version
    assert "was written by an older w2v" in check_corpus(ckpt, 1000, "blake2b:bb")


def test_tables_go_back_only_into_a_model_of_their_shape_and_world(tmp_path):
    model, vocab = tiny()
    save_checkpoint(tmp_path / "c.pt", model, vocab, CONFIG, {"words": 1})
    ckpt = load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"the checkpoint's tables are \(50, 8\), the model's \(50, 16\); set model.dim=8"):
        restore_tables(tiny(d=16)[0], ckpt)
    ckpt["shard"] = {"rank": 1, "world_size": 2, "partition_strategy": "mod", "num_embeddings": 100}
    with pytest.raises(ValueError, match=r"holds rank 1 of 2's rows; load it with load_checkpoint\(path, rank, world_size\)"):
        restore_tables(model, ckpt)
