"""Float tables as text at numpy speed: each value as ``%.8e`` writes it.

:func:`scientific` formats a ``(n, D)`` table as the lines of the word2vec text format
(:func:`w2v.formats.write_word2vec`) without a Python call per value: each value's 16
characters are assembled from digit tables (:class:`_Digits`, built once on first use).
Nine significant digits read back as the same float32. A float32 table goes through the
same steps in C where a compiler is at hand (``csrc/float_text.c``, the same characters:
~15 ns a value instead of ~40; with the bytes objects, a 39k x 100 table in 0.094 s
instead of 0.16 s).
"""

from __future__ import annotations

import ctypes
import threading
from typing import List, Optional, Tuple

import numpy as np

from . import native


def scientific(rows: np.ndarray) -> Tuple[bytes, np.ndarray]:
    """Format a table as text lines of ``%.8e`` values (``-1.23456789e-01 2.50000000e+00``) at numpy speed.

    Python's ``"%.8e" % x`` costs ~150 ns a value (minutes for a 3M x 300 table). Here each
    value's 16 characters are two 64-bit words assembled from digit tables: the exponent
    from ``log10``, a 9-digit mantissa, its first 5 and last 4 digits looked up. Nine
    significant digits identify a float32: the decimal is within 1.5e-8 of the value
    (relative, even with a last digit that float64 arithmetic rounded the other way), less
    than half the 6e-8 between two float32s, so every value reads back exactly. The text
    is ``%.8e``'s but for such a last digit: a value within ~1e-16 of a rounding boundary
    (a few in 10^7; none among the 400k random float32s of the tests). A table with NaN or
    infinities is formatted by ``%``.

    Args:
        rows: ``(n, D)`` values (float32, or anything that converts).

    Returns:
        ``(text, ends)``: the lines (values separated by a space, each line ended by
        ``\n``), and the offset just past each line's ``\n``.

    >>> text, ends = scientific(np.array([[0.5, -1e-45], [3e38, 0.0]], dtype=np.float32))
    >>> text.decode().splitlines(), ends.tolist()
    (['5.00000000e-01 -1.40129846e-45', '3.00000001e+38 0.00000000e+00'], [31, 61])
    """
    given = np.asarray(rows)
    n, dim = given.shape
    if dim == 0:
        return b"\n" * n, np.arange(1, n + 1, dtype=np.int64)
    if not np.isfinite(given).all():
        lines = [" ".join("%.8e" % v for v in row) + "\n" for row in given.astype(np.float64).tolist()]
        return "".join(lines).encode("ascii"), np.cumsum([len(line) for line in lines], dtype=np.int64)
    t = _tables()
    lib = _native() if given.dtype == np.float32 else None
    if lib is not None:
        return _compiled(lib, np.ascontiguousarray(given), t)
    x = given.astype(np.float64)
    a = np.abs(x)
    nonzero = a > 0
    with np.errstate(divide="ignore"):
        e = np.where(nonzero, np.floor(np.log10(a)), 0).astype(np.int64)  # (n, D) exponents
    m = np.rint(a * t.pow10[t.zero + 8 - e])  # mantissas in [1e8, 1e9), but next to powers of ten
    for _ in range(2):  # log10 may be off by one next to a power of ten, and rounding may carry
        over, under = m >= 1e9, nonzero & (m < 1e8)
        if not (over.any() or under.any()):
            break
        e += over.astype(np.int64) - under
        m = np.rint(a * t.pow10[t.zero + 8 - e])
    first, last = np.divmod(m.astype(np.int64), 10_000)  # the mantissa's first 5 and last 4 digits
    negative = np.signbit(x)
    words = np.empty((n, dim, 2), dtype=np.uint64)  # [sign d . d d d d d] [d d d e sign d d separator]
    words[..., 0] = t.first[first] | t.fifth[last] | negative.astype(np.uint64) * np.uint64(ord("-"))
    separator = np.full(dim, ord(" "), dtype=np.uint64)
    separator[-1] = ord("\n")
    words[..., 1] = t.last[last] | t.exponent[t.zero + e] | separator << np.uint64(56)
    # A positive value's sign byte is NUL, which no other byte is: dropping NULs leaves the text.
    text = words.tobytes().replace(b"\0", b"")
    return text, np.cumsum(dim * 15 + np.count_nonzero(negative, axis=1))


def word2vec_lines(words: List[bytes], rows: np.ndarray) -> Optional[memoryview]:
    """The word2vec text format's lines (``word v1 v2 ...\n``, values as :func:`scientific`
    writes them), written in C into a buffer reused block to block; ``None`` where C cannot
    (no compiler, not float32, NaN or infinities): :func:`scientific` then.

    One pass, no copy of the text: a 39k x 100 table in ~0.1 s where the numbers alone,
    then joined to the words in Python, took 0.16-0.22 s. The view is valid until the next call.

    Args:
        words: each row's word, UTF-8 encoded.
        rows: ``(n, D)`` float32 values.
    """
    lib = _native()
    if lib is None or rows.dtype != np.float32 or rows.ndim != 2 or not np.isfinite(rows).all():
        return None
    x = np.ascontiguousarray(rows)
    n, dim = x.shape
    word_ends = np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)))
    blob = b"".join(words)
    room = len(blob) + n * (dim * 16 + 1) + n
    scratch = getattr(_SCRATCH, "lines", None)
    if scratch is None or len(scratch) < room:
        scratch = _SCRATCH.lines = np.empty(room, dtype=np.uint8)
    t = _tables()
    size = lib.w2v_word2vec_lines(
        x.ctypes.data, n, dim, t.pow10.ctypes.data, t.zero, blob, word_ends.ctypes.data, scratch.ctypes.data
    )
    return memoryview(scratch)[:size]


_SCRATCH = threading.local()


def _native() -> Optional[ctypes.CDLL]:
    lib = native.library("float_text")
    if lib is not None and lib.w2v_scientific.argtypes is None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.w2v_scientific.argtypes = [p, i64, i64, p, ctypes.c_int, p, p]
        lib.w2v_scientific.restype = i64
        lib.w2v_word2vec_lines.argtypes = [p, i64, i64, p, ctypes.c_int, ctypes.c_char_p, p, p]
        lib.w2v_word2vec_lines.restype = i64
    return lib


def _compiled(lib, x: np.ndarray, t: "_Digits") -> Tuple[bytes, np.ndarray]:
    """:func:`scientific` of finite float32 values in C: the same steps, the same characters."""
    n, dim = x.shape
    scratch = getattr(_SCRATCH, "out", None)  # reused block to block: fresh memory costs a page fault per 4 KB
    if scratch is None or len(scratch) < n * dim * 16:
        scratch = _SCRATCH.out = np.empty(n * dim * 16, dtype=np.uint8)
    out = scratch
    ends = np.empty(n, dtype=np.int64)
    size = lib.w2v_scientific(x.ctypes.data, n, dim, t.pow10.ctypes.data, t.zero, out.ctypes.data, ends.ctypes.data)
    return out[:size].tobytes(), ends


class _Digits:
    """The lookup tables of :func:`scientific`: each entry is a value's characters at their byte places."""

    def __init__(self) -> None:
        def digits(width):  # (10**width, width): the ASCII digits of 0 .. 10**width - 1
            place = 10 ** np.arange(width - 1, -1, -1, dtype=np.uint64)  # (width,)
            return np.arange(10**width, dtype=np.uint64)[:, None] // place % np.uint64(10) + np.uint64(ord("0"))

        def at(byte, values):
            return np.asarray(values, dtype=np.uint64) << np.uint64(8 * byte)

        five, four = digits(5), digits(4)
        self.first = at(1, five[:, 0]) | at(2, ord(".")) | at(3, five[:, 1]) | at(4, five[:, 2]) | at(5, five[:, 3]) | at(6, five[:, 4])
        self.fifth = at(7, four[:, 0])
        self.last = at(0, four[:, 1]) | at(1, four[:, 2]) | at(2, four[:, 3])
        self.zero = 80  # index of 10**0 / exponent 0
        powers = np.arange(-self.zero, self.zero + 1)
        self.pow10 = 10.0**powers
        two = digits(2)[np.minimum(np.abs(powers), 99)]
        self.exponent = at(3, ord("e")) | at(4, np.where(powers < 0, ord("-"), ord("+"))) | at(5, two[:, 0]) | at(6, two[:, 1])


_DIGITS: List[_Digits] = []


def _tables() -> _Digits:
    if not _DIGITS:
        _DIGITS.append(_Digits())
    return _DIGITS[0]
