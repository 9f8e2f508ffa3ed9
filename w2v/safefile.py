"""Files that are whole or absent: owned temp names, atomic writes, sweeping what killed writers left.

Every file w2v writes goes first to a hidden temp name next to it that says who writes it,
``.NAME.RAND.PID@HOST.tmp`` (a folder being filled: ``.encoding.RAND.PID@HOST.tmp``), and
is renamed over its real name only once complete. A process killed mid-write therefore
leaves a temp file, never a partial file under a real name, and the next run can tell a
dead writer's leftovers from a live writer's work: :func:`sweep` removes a temp entry
whose process is gone (same host), or that nobody has touched for a day (another host
sharing the folder, or names from before the owner was recorded).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Iterator, Optional

# An untouched temp entry is stale after this long, whoever wrote it: a live writer
# keeps its file's mtime fresh, and no single write of w2v takes a day.
STALE_SECONDS = 24 * 3600

# A full disk, a quota, a read-only or failing volume: the place, not the data, is wrong.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})

_HOST = re.sub(r"[^A-Za-z0-9.\-]", "_", socket.gethostname()) or "localhost"
_OWNED = re.compile(r"^\..+\.[a-z0-9_]{8}\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9.\-_]+)\.tmp$")
# Temp names of earlier versions, which did not record their writer.
_LEGACY = (
    re.compile(r"^\.(?:vectors\.[a-z.]+|metrics\.json)\.[0-9a-f]{8}\.tmp$"),  # exports: .vectors.txt.1a2b3c4d.tmp
    re.compile(r"^\.checkpoint[-0-9a-z.]*\.pt\.tmp-(?P<pid>\d+)$"),  # checkpoints: .checkpoint.pt.tmp-1234
    re.compile(r"^\.tmp-[a-z0-9_]{8}$"),  # the corpus cache: .tmp-k3j2h1g0
)


def owner() -> str:
    """``PID@HOST`` of this process, as temp names record it."""
    return f"{os.getpid()}@{_HOST}"


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh hidden temp name next to ``path``, owned by this process.

    >>> temp_path("out/vectors.txt").name.startswith(".vectors.txt.") and temp_path("v").name.endswith(".tmp")
    True
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{owner()}.tmp")


def temp_dir(parent: str | os.PathLike) -> Path:
    """A fresh hidden folder in ``parent`` to fill before renaming it into place."""
    return Path(tempfile.mkdtemp(prefix=".encoding.", suffix=f".{owner()}.tmp", dir=parent))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", fsync: bool = False) -> Iterator[IO]:
    """Open a temp file next to ``path``; on success rename it over ``path``, on any error delete it.

    Args:
        path: the file to write.
        mode: ``"wb"`` or ``"w"`` (UTF-8 text).
        fsync: flush the data to disk before the rename (checkpoints: a crash right after
            must not leave an empty file under the real name).

    Raises:
        FileNotFoundError: the folder does not exist.
        OSError: the write failed (a full disk...); nothing is left behind.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    tmp = temp_path(path)
    try:
        with open(tmp, mode.replace("w", "x"), encoding=None if "b" in mode else "utf-8") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def _last_touched(path: Path) -> float:
    """The newest mtime of ``path`` and, for a folder, of what it holds."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for p in path.rglob("*"):
            with contextlib.suppress(OSError):
                newest = max(newest, p.lstat().st_mtime)
    return newest


def is_stale(path: str | os.PathLike, now: Optional[float] = None, legacy: bool = True) -> bool:
    """Whether ``path`` is a temp entry left by a writer that is gone.

    Owned names of this host are stale when their process is gone; any temp name is
    stale when untouched for :data:`STALE_SECONDS`. Other names are never stale, nor
    the names of earlier versions unless ``legacy``.
    """
    path = Path(path)
    m = _OWNED.match(path.name)
    old = None if m or not legacy else next((p.match(path.name) for p in _LEGACY if p.match(path.name)), None)
    if m is None and old is None:
        return False
    try:
        if m is not None and m.group("host") == _HOST and not alive(int(m.group("pid"))):
            return True
        if old is not None and "pid" in old.groupdict() and not alive(int(old.group("pid"))):
            return True
        return (time.time() if now is None else now) - _last_touched(path) > STALE_SECONDS
    except OSError:  # gone meanwhile
        return False


def sweep(folder: str | os.PathLike, legacy: bool = True) -> int:
    """Remove the stale temp entries of ``folder`` (see :func:`is_stale`); return how many.

    Args:
        folder: a folder w2v writes into; one that does not exist holds nothing to sweep.
        legacy: also the temp names of earlier versions (not in a shared folder like ``$TMPDIR``).
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(".") and is_stale(entry.path, legacy=legacy):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
    return removed


def no_room(error: BaseException) -> bool:
    """Whether ``error`` says the disk (not the data) is the problem: full, over quota, read-only."""
    return isinstance(error, OSError) and error.errno in NO_ROOM


def reason(error: BaseException) -> str:
    """The short reason of an ``OSError`` (``No space left on device``), else its message."""
    return (error.strerror if isinstance(error, OSError) and error.strerror else str(error)) or type(error).__name__
