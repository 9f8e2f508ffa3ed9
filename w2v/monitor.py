"""What a run shows while it runs: its lines, the progress bar and TensorBoard.

A line of the run (:func:`say`) goes to the terminal and to the ``w2v.train`` logger,
which the command line keeps in the run folder's ``train.log``. :class:`Monitor` feeds the
tqdm bar and TensorBoard's scalars from the trainer's progress callback; the TensorBoard
writer (:func:`open_tensorboard`) turns a failure to write into one warning, so a full
disk never ends a run. Ranks other than 0 show nothing (:func:`quiet`, :class:`NoWriter`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from .safefile import reason
from .tb_events import EventWriter

log = logging.getLogger("w2v.train")  # the command line's train.log listens to this name


def say(text: str, err: bool = False, level: int = logging.INFO, bar=None) -> None:
    """Print a line of the run (notes and warnings on stderr) and keep it in the log, if any.

    The command line logs ``w2v.train`` to the run folder's ``train.log`` alone; without a
    handler (a script calling :func:`w2v.pipeline.train`) the line is printed once, not again
    by ``logging``'s last resort.

    Args:
        bar: a tqdm bar to print above, so that the line does not break it.
    """
    stream = sys.stderr if err else sys.stdout
    if bar is not None:
        bar.write(text, file=stream)
    else:
        print(text, file=stream)
    if log.hasHandlers():
        log.log(level, text)


def quiet(*args, **kwargs) -> None:
    """What ranks other than 0 say: nothing."""


def format_scores(scores: Dict[str, float], lead: str = "") -> str:
    """Evaluation scores with their units: ``analogy 17.84%, ws353_spearman 0.5150, ws353_oov 12.7%``.

    >>> format_scores({"analogy": 0.17844, "ws353_oov_pct": 12.7479}, lead=", ")
    ', analogy 17.84%, ws353_oov 12.7%'
    """
    shown = []
    for name, value in scores.items():
        if name == "analogy":
            shown.append(f"analogy {100 * value:.2f}%")
        elif name.endswith("_pct"):
            shown.append(f"{name[:-4]} {value:.1f}%")
        else:
            shown.append(f"{name} {value:.4f}")
    return lead + ", ".join(shown) if shown else ""


class Guarded:
    """A TensorBoard writer whose failure to write (a full disk) is one warning, not the end of the run."""

    def __init__(self, writer, folder: Path, note: Callable[[str], None]) -> None:
        self._writer, self._folder, self._note, self._failed = writer, folder, note, False

    def __getattr__(self, name):
        method = getattr(self._writer, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            if self._failed:
                return None
            try:
                return method(*args, **kwargs)
            except OSError as e:
                self._failed = True
                self._note(f"warning: TensorBoard logging stopped: cannot write into {self._folder} ({reason(e)})")
                return None

        return call


class NoWriter:
    """What ranks other than 0 log to: nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def open_tensorboard(folder: Path, note: Callable[[str], None], purge_step: Optional[int] = None):
    """A :class:`Guarded` event writer into ``folder``; a folder that takes no files is a warning.

    Args:
        folder: where the events go (``tb/`` in the run folder).
        note: how the writer says, later, that it stopped writing.
        purge_step: a resumed run's first step (in words): TensorBoard hides what the
            stopped run logged from there on, which this run logs again, so each curve
            goes on as one line.

    Returns:
        the writer (:class:`~w2v.tb_events.EventWriter`: ``SummaryWriter``'s ``add_scalar``
        and ``add_text``), or a :class:`NoWriter` when ``folder`` cannot be written.
    """
    try:
        return Guarded(EventWriter(folder, purge_step=purge_step), folder, note)
    except OSError as e:
        say(f"warning: no TensorBoard logging: cannot write into {folder} ({reason(e)})", err=True)
        return NoWriter()


class Monitor:
    """tqdm bar and TensorBoard scalars fed by the trainer's progress callback.

    Words/s count training time only: each epoch restarts the clocks, so the evaluation
    between epochs does not slow the figures down, and each epoch's end fills the bar.
    The bar's clock stops from an epoch's end to the next epoch's start: its elapsed time
    and rate are training's, in every frame, those drawn between epochs too.
    """

    def __init__(self, total_words: int, epoch_words: int, writer, show: bool, start: int = 0) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total_words, initial=start, unit="w", unit_scale=True, dynamic_ncols=True, disable=not show, mininterval=0.5
        )
        self.writer, self.epoch_words = writer, epoch_words
        self.last = (time.perf_counter(), start)
        self._paused_at = None  # when the bar's clock stopped (an epoch's end), if it has

    def for_epoch(self, epoch: int):
        base = epoch * self.epoch_words
        self._hold_clock()  # the time since the last epoch's end (evaluation) is not training
        self._paused_at = None
        self.last = (time.perf_counter(), max(base, self.bar.n))

        def report(words: int, stats, loss: float) -> None:
            done = base + words
            now = time.perf_counter()
            t0, w0 = self.last
            rate = (done - w0) / max(now - t0, 1e-9)
            self.last = (now, done)
            lr = max(s.lr for s in stats)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.5f}", epoch=epoch + 1, refresh=False)
            self.bar.update(done - self.bar.n)  # drawn with this report's figures, not the last one's
            self.writer.add_scalar("train/loss", loss, done)
            self.writer.add_scalar("train/lr", lr, done)
            self.writer.add_scalar("train/words_per_sec", rate, done)

        return report

    def end_epoch(self, epoch: int) -> None:
        """Fill the bar to the epoch's end (the last report comes up to half a second earlier)."""
        self.bar.update(max((epoch + 1) * self.epoch_words - self.bar.n, 0))
        if not self.bar.disable:
            self.bar.refresh()  # the epoch's last frame, at training's own time
            self._paused_at = self.bar._time()

    def _hold_clock(self) -> None:
        """Move the bar's start forward by the time it has been paused, so that time is not counted."""
        if self._paused_at is not None and not self.bar.disable:
            now = self.bar._time()
            self.bar.start_t += now - self._paused_at
            self.bar.last_print_t += now - self._paused_at
            self._paused_at = now

    def say(self, text: str, err: bool = False) -> None:
        """A line of the run (see :func:`say`) that does not break the bar (nor count in its time)."""
        self._hold_clock()
        say(text, err=err, bar=self.bar)

    def close(self) -> None:
        self.bar.close()
