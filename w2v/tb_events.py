"""TensorBoard event files with a run's scalars and text, written without ``torch.utils.tensorboard``.

A run logs scalars (loss, learning rate, words/s, scores) and text (the probe neighbours):
what ``SummaryWriter.add_scalar`` and ``add_text`` write, in the same events, which
TensorBoard reads as theirs (the tests read them back with its own reader). Importing
``torch.utils.tensorboard`` took ~0.2 s of every run, because ``tensorboard.summary``
loads TensorFlow's stub for summaries a run never writes (histograms, images); the event
protos alone take ~15 ms. The file is TensorFlow's record format, as
``tensorboard.summary.writer.record_writer`` writes it: each event's length and bytes,
each followed by its masked CRC-32C. Events are written as they come and flushed every
:data:`FLUSH_SECONDS` and at :meth:`EventWriter.close`.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from typing import List, Optional

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2

FLUSH_SECONDS = 30.0
_uid = itertools.count()  # several writers in one second of one process get files of their own


def _crc32c_table() -> List[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC of a record's length or bytes."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def scalar_summary(tag: str, value: float):
    """``torch.utils.tensorboard.summary.scalar``'s summary."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])


def text_summary(tag: str, text: str):
    """``torch.utils.tensorboard.summary.text``'s summary, under ``TAG/text_summary``."""
    # The text plugin's data is TextPluginData(version=0), which serializes to no bytes.
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    tensor = tensor_pb2.TensorProto(
        dtype="DT_STRING", string_val=[text.encode("utf-8")],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]),
    )
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=f"{tag}/text_summary", metadata=metadata, tensor=tensor)])


class EventWriter:
    """Scalars and text into a new event file in ``logdir``, as ``SummaryWriter`` writes them.

    Args:
        logdir: the folder of the run's events (made if missing).
        purge_step: a resumed run's first step: TensorBoard then hides the earlier file's
            events from that step on, so that each curve goes on as one line.

    Raises:
        OSError: the folder or the file cannot be made.
    """

    def __init__(self, logdir: str | os.PathLike, purge_step: Optional[int] = None) -> None:
        self.log_dir = str(logdir)
        os.makedirs(self.log_dir, exist_ok=True)
        name = "events.out.tfevents.%010d.%s.%s.%s" % (time.time(), socket.gethostname(), os.getpid(), next(_uid))
        self._file = open(os.path.join(self.log_dir, name), "wb")
        self._flushed = time.monotonic()
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # SummaryWriter(purge_step=...)'s two events
            self._write(event_pb2.Event(step=purge_step, file_version="brain.Event:2"))
            self._write(event_pb2.Event(step=purge_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        self.flush()

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        self._add(scalar_summary(tag, scalar_value), global_step)

    def add_text(self, tag: str, text_string: str, global_step: int) -> None:
        """A text summary under ``TAG/text_summary``, as ``add_text`` names it (markdown in TensorBoard)."""
        self._add(text_summary(tag, text_string), global_step)

    def flush(self) -> None:
        self._file.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
            finally:
                self._file.close()

    def _add(self, summary, step: int) -> None:
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()

    def _write(self, event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))
