"""The run's lines, progress bar and TensorBoard writer (w2v.monitor)."""

import errno
import time
from types import SimpleNamespace

from w2v.monitor import Guarded, Monitor, format_scores


def test_scores_name_their_units():
    text = format_scores({"analogy": 0.17844, "ws353_spearman": 0.515, "ws353_oov_pct": 12.7479})
    assert text == "analogy 17.84%, ws353_spearman 0.5150, ws353_oov 12.7%"


class _Scalars:
    def __init__(self):
        self.points = []

    def add_scalar(self, tag, value, step):
        self.points.append((tag, value, step))


def test_words_per_second_leave_out_the_pauses_between_epochs():
    writer = _Scalars()
    monitor = Monitor(total_words=20_000, epoch_words=10_000, writer=writer, show=False)
    stats = [SimpleNamespace(lr=0.01)]
    for epoch in range(2):
        report = monitor.for_epoch(epoch)
        time.sleep(0.05)
        report(10_000, stats, 1.0)
        monitor.end_epoch(epoch)
        time.sleep(1.0)  # evaluation between epochs
    monitor.close()
    rates = [value for tag, value, _ in writer.points if tag == "train/words_per_sec"]
    assert len(rates) == 2 and min(rates) > 10_000 / 0.5  # 10,000 words in ~0.05 s; with the pause, < 10,000/s


def test_the_bar_shows_training_time_only(capsys):
    monitor = Monitor(total_words=20_000, epoch_words=10_000, writer=_Scalars(), show=True)
    clock = [100.0]
    monitor.bar._time = lambda: clock[0]
    monitor.bar.start_t = monitor.bar.last_print_t = clock[0]
    stats = [SimpleNamespace(lr=0.01)]
    report = monitor.for_epoch(0)
    clock[0] += 2.0
    report(10_000, stats, 1.5)
    monitor.end_epoch(0)
    clock[0] += 30.0  # evaluation between epochs, which prints a line
    monitor.say("epoch 1: loss 1.5000")
    assert monitor.bar.format_dict["elapsed"] == 2.0
    report = monitor.for_epoch(1)
    clock[0] += 2.0
    report(10_000, stats, 1.25)
    monitor.end_epoch(1)
    assert monitor.bar.format_dict["elapsed"] == 4.0 and monitor.bar.n == 20_000
    monitor.close()
    frames = capsys.readouterr().err.replace("\r", "\n")
    assert "100%" in frames and "epoch=2" in frames and "loss=1.250" in frames
    assert "00:32" not in frames and "00:34" not in frames  # the pause is in no frame


class _FullDisk:
    def __init__(self):
        self.calls = 0
        self.log_dir = "tb"

    def add_scalar(self, *args):
        self.calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_writer_that_cannot_write_warns_once_and_stops_writing():
    notes = []
    writer = Guarded(_FullDisk(), "tb", notes.append)
    assert writer.log_dir == "tb"  # not a method: handed out as it is
    for step in range(3):
        assert writer.add_scalar("train/loss", 1.0, step) is None
    assert writer._writer.calls == 1
    assert len(notes) == 1 and notes[0].startswith("warning: TensorBoard logging stopped: cannot write into tb (")


def test_a_resumed_run_hides_what_the_stopped_one_logged_after_its_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from w2v.monitor import open_tensorboard

    stopped = open_tensorboard(tmp_path, print)
    for step in range(0, 100, 10):  # logged until the stop at 90; the last checkpoint was at 50
        stopped.add_scalar("train/loss", 1.0, step)
    stopped.close()
    resumed = open_tensorboard(tmp_path, print, purge_step=50)
    for step in range(50, 130, 10):
        resumed.add_scalar("train/loss", 2.0, step)
    resumed.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert points == [(s, 1.0) for s in range(0, 50, 10)] + [(s, 2.0) for s in range(50, 130, 10)]
