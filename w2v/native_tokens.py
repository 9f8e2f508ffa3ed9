"""The default tokenizer and the provisional word ids in C (``csrc/tokens.c``).

For the default pattern (:data:`w2v.corpus.LETTERS`) the text's UTF-8 bytes are tokenized
and numbered in one pass in C, without a Python string per token: 5M words of text8-style
text take ~0.3 s where Python's tokenizer and word table take ~1.2 s on one core. Only the
runs of text holding a non-ASCII character (accents, other scripts: ~1% of the words of
English Wikipedia) go through Python's regex and ``str.lower``, batched, so the tokens and
their ids are those of :class:`w2v.corpus.Tokenizer` and :class:`w2v.encoder.TypeIds`
bit for bit (a test compares both on every kind of text). The word table lives in C:
~20 bytes a word beside its letters, where a Python dict holds ~130.
"""

from __future__ import annotations

import ctypes
import re
from typing import List, Optional

import numpy as np

from . import native
from .corpus import LETTERS, Tokenizer

_WIDE_TOKENS = re.compile(LETTERS + r"|\n")  # a run's tokens, and the "\n" that closes each run


def _native():
    lib = native.library("tokens")
    if lib is not None and lib.w2v_tok_free.argtypes is None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.w2v_tok_new.restype = p
        lib.w2v_tok_free.argtypes = [p]
        lib.w2v_tok_size.argtypes, lib.w2v_tok_size.restype = [p], i64
        lib.w2v_tok_wide_runs.argtypes, lib.w2v_tok_wide_runs.restype = [ctypes.c_char_p, i64, p], i64
        lib.w2v_tok_encode.argtypes = [p, ctypes.c_char_p, i64, ctypes.c_int, ctypes.c_char_p, i64, p, i64]
        lib.w2v_tok_encode.restype = i64
        lib.w2v_tok_words.argtypes, lib.w2v_tok_words.restype = [p, ctypes.c_char_p, i64, p, i64], i64
        lib.w2v_tok_dump_size.argtypes, lib.w2v_tok_dump_size.restype = [p, i64], i64
        lib.w2v_tok_dump.argtypes = [p, i64, p]
        lib.w2v_tok_counts.argtypes = [p, p]
    return lib


class NativeTypeIds:
    """word -> provisional id, in C: :class:`w2v.encoder.TypeIds`'s numbering, for the default pattern.

    Use :meth:`open`; :meth:`close` frees the table.

    >>> ids = NativeTypeIds.open(Tokenizer())
    >>> None if ids is None else (ids.encode_text("The cat, the naïve CAT").tolist(), ids.words)
    ([0, 1, 0, 2, 1], ['the', 'cat', 'naïve'])
    """

    def __init__(self, lib, lowercase: bool) -> None:
        self._lib, self.lowercase = lib, lowercase
        self._table = lib.w2v_tok_new()
        if not self._table:
            raise MemoryError("no memory for the word table")
        self._words: List[str] = []

    @classmethod
    def open(cls, tokenizer: Tokenizer) -> Optional["NativeTypeIds"]:
        """A table for ``tokenizer``'s tokens; ``None`` for another pattern, or where C is not built."""
        if tokenizer.pattern != LETTERS:
            return None
        lib = _native()
        return None if lib is None else cls(lib, tokenizer.lowercase)

    def __len__(self) -> int:
        return self._lib.w2v_tok_size(self._table)

    def encode_text(self, text: str) -> np.ndarray:
        """The ids of the tokens of ``text`` (lowercased first when the tokenizer does), as ``uint32``."""
        data = text.encode("utf-8", "surrogatepass")
        blob, extra = b"", 0
        if not text.isascii():
            buf = np.empty(len(data) + 1, dtype=np.uint8)
            wide = buf[: self._lib.w2v_tok_wide_runs(data, len(data), buf.ctypes.data)].tobytes()
            wide = wide.decode("utf-8", "surrogatepass")
            tokens = _WIDE_TOKENS.findall(wide.lower() if self.lowercase else wide)
            blob, extra = " ".join(tokens).encode("utf-8", "surrogatepass"), len(tokens)
        out = np.empty(len(data) // 2 + 1 + extra, dtype=np.uint32)  # ASCII tokens: a letter and a separator each
        n = self._lib.w2v_tok_encode(
            self._table, data, len(data), int(self.lowercase), blob, len(blob), out.ctypes.data, len(out)
        )
        return self._check(n, out)[:n].copy()

    def encode(self, tokens: List[str]) -> np.ndarray:
        """The ids of ``tokens``, words as they are (cut by the tokenizer already)."""
        blob = " ".join(tokens).encode("utf-8", "surrogatepass")
        out = np.empty(len(tokens), dtype=np.uint32)
        return self._check(self._lib.w2v_tok_words(self._table, blob, len(blob), out.ctypes.data, len(tokens)), out)

    @property
    def words(self) -> List[str]:
        """The words in id order (``words[i]`` has id ``i``)."""
        first = len(self._words)
        if len(self) > first:
            buf = np.empty(self._lib.w2v_tok_dump_size(self._table, first), dtype=np.uint8)
            self._lib.w2v_tok_dump(self._table, first, buf.ctypes.data)
            self._words += buf.tobytes().decode("utf-8", "surrogatepass").split("\n")[:-1]
        return self._words

    def counts(self) -> np.ndarray:
        """How often each word was met, in id order (``int64``): every call's tokens counted."""
        out = np.empty(len(self), dtype=np.int64)
        self._lib.w2v_tok_counts(self._table, out.ctypes.data)
        return out

    def close(self) -> None:
        if self._table:
            self._lib.w2v_tok_free(self._table)
            self._table = None

    def __del__(self) -> None:
        self.close()

    def _check(self, n: int, out=None):
        if n == -1:
            raise MemoryError(f"no memory for the word table ({len(self):,} words)")
        if n < 0:
            raise RuntimeError("the C tokenizer and Python's regex disagree on the text's runs")
        return out
