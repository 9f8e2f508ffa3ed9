"""How the commands end: at once, without PyTorch's teardown.

Unloading torch at interpreter exit takes ~0.5 s (its static destructors and thread
pools), a tenth of a short training run and a third of a query. When a command has
finished, every file it wrote is complete and closed, so the process flushes its streams
and its logs and ends there (``os._exit``), as compiled tools do.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn, Optional


def exit_now(status: Optional[int] = 0) -> NoReturn:
    """Flush stdout, stderr and the logging handlers, then end the process with ``status``.

    Call it only where the command is done: nothing after it runs (no ``atexit``, no
    ``finally`` of the callers).

    Args:
        status: the exit status (``None`` is 0, as for ``sys.exit``).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more can be said
            pass
    os._exit(0 if status is None else int(status))
