"""One run per run folder: an exclusive lock held while a run writes into its folder.

(:func:`waiting` is the same lock for work that others wait for instead of being refused:
a corpus being tokenized into the cache.)

Two runs given the same folder (``hydra.run.dir``) would overwrite each other's vectors
and checkpoints. The lock is ``fcntl.flock`` on ``FOLDER/.w2v-run.lock``: the kernel drops
it when its process ends, however it ends (SIGKILL, a crash, a lost node), so a killed
run never leaves a folder locked; the file itself stays and means nothing by itself. It
records who holds it, for the message the next run gets. Where the platform or the file
system has no ``flock``, runs go unlocked, as before.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator, Optional

from .safefile import owner

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

NAME = ".w2v-run.lock"


class RunLock:
    """Hold ``folder`` for this process until :meth:`release` (or the end of a ``with`` block).

    Args:
        folder: the run folder (it must exist).
        key: the setting that names the folder, for the message.

    Raises:
        ValueError: another live process holds the folder; the message names it.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, RunLock(d):
    ...     RunLock(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hydra.run.dir=... is in use by another run (pid ...
    """

    def __init__(self, folder: str | os.PathLike, key: str = "hydra.run.dir") -> None:
        self.folder, self.key = Path(folder), key
        self._file = None
        self._acquire()

    def _acquire(self) -> None:
        if fcntl is None:
            return
        f = open(self.folder / NAME, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise ValueError(
                f"{self.key}={self.folder} is in use by another run (pid {holder}); wait for it to end, "
                f"or give this run another {self.key}"
            ) from None
        except OSError:  # a file system without flock: run unlocked
            f.close()
            return
        with contextlib.suppress(OSError):
            f.seek(0)
            f.truncate()
            f.write(f"{owner()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
        self._file = f

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        """Let other runs use the folder (closing the file drops the lock)."""
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        self.release()
        return None


@contextlib.contextmanager
def waiting(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` for the ``with`` block, waiting while another process holds it.

    The file is made if missing and removed when the block ends, so that nothing is left
    behind; a process that waited on the removed file goes on, as if it had come after
    (what the lock guards must be safe to redo: here, publishing a cache entry by rename).
    Where there is no ``flock`` (not POSIX, a file system without locks, a folder that
    cannot be written), nothing waits.
    """
    path, fd = Path(path), None
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            if fd is not None:  # opened, not locked: not this process's to remove
                os.close(fd)
                fd = None
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
