"""TensorBoard event files written without torch.utils.tensorboard: SummaryWriter's events, read by TensorBoard."""

import os
import struct

import numpy as np
import pytest

from w2v.tb_events import EventWriter, masked_crc32c, scalar_summary, text_summary

summary = pytest.importorskip("torch.utils.tensorboard.summary")


def test_the_summaries_are_summarywriters_byte_for_byte():
    for tag, value in (("train/loss", 2.6266), ("eval/analogy", 0.0403), ("train/words_per_sec", 2519725.0), ("x", -0.0)):
        assert scalar_summary(tag, value).SerializeToString() == summary.scalar(tag, value).SerializeToString()
    for text in ("king: prince 0.91, duke 0.85", "naïve — 中文\n\nline two", ""):
        assert text_summary("probes", text).SerializeToString() == summary.text("probes", text).SerializeToString()


def test_the_masked_crc_is_tensorflows():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as theirs

    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 8, 63, 1000, 4097):
        data = rng.bytes(size)
        assert masked_crc32c(data) == theirs(data), size


def test_tensorboard_reads_the_scalars_and_text_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = EventWriter(tmp_path / "tb")
    for step in range(0, 50, 10):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    writer.add_text("probes", "king: prince 0.91\n\nqueen: princess 0.88", 40)
    writer.close()
    writer.close()  # twice is harmless, as SummaryWriter's
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (s, pytest.approx(1.0 / (s + 1))) for s in range(0, 50, 10)
    ]
    (text,) = events.Tensors("probes/text_summary")
    assert text.step == 40 and text.tensor_proto.string_val == [b"king: prince 0.91\n\nqueen: princess 0.88"]


def test_every_record_is_framed_as_tensorflow_frames_it(tmp_path):
    writer = EventWriter(tmp_path, purge_step=7)
    writer.add_scalar("a", 1.5, 9)
    writer.close()
    (name,) = os.listdir(tmp_path)
    assert name.startswith("events.out.tfevents.")
    data, records = (tmp_path / name).read_bytes(), 0
    while data:
        header = data[:8]
        (length,) = struct.unpack("<Q", header)
        body = data[12 : 12 + length]
        assert struct.unpack("<I", data[8:12])[0] == masked_crc32c(header)
        assert struct.unpack("<I", data[12 + length : 16 + length])[0] == masked_crc32c(body)
        data, records = data[16 + length :], records + 1
    assert records == 4  # the file version, the purge's version and start, the scalar


def test_a_folder_that_cannot_be_made_is_an_oserror(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        EventWriter(tmp_path / "file" / "tb")
