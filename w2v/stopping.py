"""What SIGINT and SIGTERM do at each stage of a run, so that nothing trained is lost.

- **Training.** The first signal asks the trainer to save a checkpoint and stop at the
  next chunk boundary (:class:`~w2v.state.TrainingInterrupted`); the previous handlers
  are put back, so a second signal aborts at once.
- **Saving the trained tables** (``checkpoint.pt``, the moment training ends): a signal is
  held until the file is whole.
- **Finishing** (evaluation, projector, export): a signal stops the run at once with
  :class:`FinishingInterrupted`; the tables are on disk already, and resuming from them
  only evaluates and exports.

Outside the main thread nothing is installed (Python delivers signals there only).
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FinishingInterrupted(BaseException):
    """SIGINT or SIGTERM after training ended, while evaluating or exporting.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the
    way swallows it.

    Attributes:
        signum: the signal.
        doing: what the run was doing (``exporting the vectors``...).
        checkpoint: where the trained tables are (``None``: a rank that writes nothing).
    """

    def __init__(self, signum: int, doing: str, checkpoint: Optional[str]) -> None:
        super().__init__(f"stopped by signal {signum} while {doing}; the trained tables are in {checkpoint}")
        self.signum, self.doing, self.checkpoint = signum, doing, checkpoint


class RunSignals:
    """Install the handlers of a run (a context manager): training, then :meth:`hold`, then :meth:`finish`.

    Args:
        trainer: anything with ``request_stop(signum)`` (a :class:`~w2v.trainer.Trainer`).
    """

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.stage = "training"
        self.doing = "evaluating"
        self.received: Optional[int] = None  # the signal that asked to stop, if any
        self.checkpoint: Optional[str] = None
        self._previous: dict = {}

    def __enter__(self) -> "RunSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.stage == "finishing":
            raise FinishingInterrupted(signum, self.doing, self.checkpoint)
        if self.received is None:
            self.received = signum
            if self.stage == "training":
                self._restore()  # a second signal aborts at once
                self.trainer.request_stop(signum)

    def hold(self) -> None:
        """Training is over: from now until :meth:`finish`, a signal waits for the tables to be saved."""
        self.stage = "saving"

    def finish(self, checkpoint: Optional[str], doing: str = "evaluating") -> None:
        """The tables are saved in ``checkpoint``: a signal now (or one held) stops the run at once.

        Raises:
            FinishingInterrupted: a signal arrived meanwhile.
        """
        self.stage, self.checkpoint, self.doing = "finishing", checkpoint, doing
        if self.received is not None:
            raise FinishingInterrupted(self.received, "saving the trained tables", checkpoint)

    def now(self, doing: str) -> None:
        """Name what the run does next, for the message of a stop."""
        self.doing = doing
