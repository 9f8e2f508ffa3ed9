"""Vectors for TensorBoard's embedding projector (w2v.projector), as SummaryWriter.add_embedding lays them out."""

import numpy as np
import pytest
import torch

from w2v.projector import CONFIG, write_projector

tensorboard = pytest.importorskip("torch.utils.tensorboard")


def _config(path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    return text_format.Parse(path.read_text(), ProjectorConfig())


def test_files_read_as_add_embeddings_do(tmp_path):
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((50, 7)) * 10.0 ** rng.integers(-6, 6, (50, 7))).astype(np.float32)
    words = [f"w{i}" for i in range(50)]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    write_projector(ours, vectors[:20], words[:20], step=3)
    write_projector(ours, vectors, words, step=12, tag="in/put")
    with tensorboard.SummaryWriter(str(theirs)) as writer:
        writer.add_embedding(torch.from_numpy(vectors[:20]), metadata=words[:20], global_step=3, tag="input")
        writer.add_embedding(torch.from_numpy(vectors), metadata=words, global_step=12, tag="in/put")
    assert _config(ours / CONFIG) == _config(theirs / CONFIG)
    for entry in _config(ours / CONFIG).embeddings:
        for name in (entry.tensor_path, entry.metadata_path):
            assert (ours / name).is_file()
        got = np.loadtxt(ours / entry.tensor_path, delimiter="\t", dtype=np.float32)
        want = np.loadtxt(theirs / entry.tensor_path, delimiter="\t", dtype=np.float32)
        assert np.array_equal(got, want)  # each value reads back as the same float32
        assert (ours / entry.metadata_path).read_text() == (theirs / entry.metadata_path).read_text()


def test_a_resumed_run_adds_to_the_listing_and_replaces_its_own_step(tmp_path):
    vectors, words = np.eye(3, dtype=np.float32), ["a", "b", "c"]
    write_projector(tmp_path, vectors, words, step=1)
    write_projector(tmp_path, vectors, words, step=2)
    write_projector(tmp_path, 2 * vectors, words, step=2)  # the same step again, after a resume
    names = [e.tensor_name for e in _config(tmp_path / CONFIG).embeddings]
    assert names == ["input:00001", "input:00002"]
    assert np.array_equal(np.loadtxt(tmp_path / "00002" / "input" / "tensors.tsv", delimiter="\t"), 2 * np.eye(3))


def test_rows_and_words_must_match(tmp_path):
    with pytest.raises(ValueError, match="n words"):
        write_projector(tmp_path, np.zeros((2, 3)), ["a"], step=0)
    assert not any(tmp_path.iterdir())
