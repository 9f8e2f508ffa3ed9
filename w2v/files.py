"""The files a user names, read with bounds: regular files only, lines of bounded length.

``open`` on a FIFO blocks until something writes to it, and ``readline`` on a file
without a newline (``/dev/zero``, a binary blob) reads the whole file into one string.
:func:`check_regular` refuses the first and :func:`read_line` / :func:`line_blocks` bound
the second, each with one line naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Iterator, List, Optional

MAX_LINE_BYTES = 1 << 20  # a line of an evaluation file (four words, or two and a score)
BLOCK_BYTES = 1 << 24  # what line_blocks reads at a time

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def check_regular(path) -> None:
    """Raise unless ``path`` is a regular file (or a link to one), without opening it.

    Raises:
        FileNotFoundError: nothing is there.
        IsADirectoryError: a folder.
        ValueError: a FIFO, a device or a socket, which could block or never end.
    """
    st = os.stat(path)  # FileNotFoundError names the path
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a file")
        raise ValueError(f"{path} is {kind}, not a regular file; give the path of a file on disk")


def read_line(f: BinaryIO, name: str, line_no: int, max_bytes: Optional[int] = None) -> bytes:
    """The next line of ``f`` (with its newline; ``b""`` at the end), at most ``max_bytes`` long
    (default :data:`MAX_LINE_BYTES`).

    Raises:
        ValueError: the line goes on past ``max_bytes`` bytes.
    """
    max_bytes = MAX_LINE_BYTES if max_bytes is None else max_bytes
    line = f.readline(max_bytes + 1)
    if len(line) > max_bytes:
        raise _too_long(name, line_no, max_bytes)
    return line


def lines(f: BinaryIO, name: str, max_bytes: Optional[int] = None) -> Iterator[bytes]:
    """The lines of ``f`` (with their newlines), each at most ``max_bytes`` (:data:`MAX_LINE_BYTES`) long."""
    line_no = 1
    while True:
        line = read_line(f, name, line_no, max_bytes)
        if not line:
            return
        yield line
        line_no += 1


def line_blocks(f: BinaryIO, name: str, max_bytes: int, first_line: int = 1) -> Iterator[List[bytes]]:
    """The lines of ``f`` without their newlines, a list of about :data:`BLOCK_BYTES` at a time.

    The fast way through a big text file; a line longer than ``max_bytes`` raises
    ``ValueError`` instead of being read whole.
    """
    carry = b""
    line_no = first_line  # of the first line in carry
    while True:
        data = f.read(BLOCK_BYTES)
        if not data:
            if carry:
                yield [carry]
            return
        data = carry + data
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            block = data[: cut - 1].split(b"\n")
            line_no += len(block)
            yield block
        if len(carry) > max_bytes:
            raise _too_long(name, line_no, max_bytes)


def _too_long(name: str, line_no: int, max_bytes: int) -> ValueError:
    return ValueError(
        f"{name}:{line_no}: a line longer than {max_bytes:,} bytes; this is not a text file of the expected "
        "kind (no newline: a binary file or a device?)"
    )
