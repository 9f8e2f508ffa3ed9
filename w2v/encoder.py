"""Text to provisional type ids: each new word gets the next id, in this process or in several.

The ids are the order in which words are first met in the corpus, whatever the number of
processes, so the encoded corpus (and its fingerprint) is the same bitwise.

For the default pattern, where the C tokenizer is built, one process does it all
(:class:`~w2v.native_tokens.NativeTypeIds`, its reading done ahead in a thread): faster
than Python's tokenizer in workers. Otherwise, with ``workers > 1`` the pieces of text
(:meth:`w2v.corpus.Tokenizer.pieces`) go to worker processes, a bounded number at a
time, so memory stays bounded. Each worker tokenizes its pieces and numbers the words
with its own table; it sends back its ids and the words it met for the first time, in
order. This process takes the results in corpus order and maps each worker's ids to the
global ones: a word new to the whole corpus is new to the worker that met it first, and
is numbered here when that piece's turn comes. Tokenizing runs at ~3.5M tokens a second
on one core (~5.5M on text of plain words, see :func:`w2v.corpus.letter_runs`); the main
process's share (reading, mapping, writing) runs at ~7M. Memory: each worker keeps a
word table of its own (~130 bytes a type); one that grows past :data:`WORKER_TYPES`
words starts afresh (its next results say so, and this process forgets its numbering),
so 8 workers on a corpus of millions of types hold at most ~8 x 130 MB beside the main
table.

Workers are forked (Linux), and only while this process runs no other thread but daemon
ones (tqdm's monitor, an evaluation's matrix products): a forked child inherits no thread,
and with a working thread in the middle of an import or holding a lock the child could
wait forever. Elsewhere, or with one worker, the pieces are encoded here.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Deque, Dict, Iterable, Iterator, List, Union

import numpy as np

from .corpus import Tokenizer
from .native_tokens import NativeTypeIds

_WHITESPACE = re.compile(r"\s")
MAX_WORKERS = 8  # past ~8, reading and decoding the text (here, on one core) is the limit
WORKER_TYPES = 1 << 20  # a worker's word table starts afresh past this many words (~130 MB)
PARALLEL_CHARS = 4 << 20  # a corpus of fewer characters (estimated) is encoded here: starting workers costs more


class TypeIds(dict):
    """word -> provisional id, handing out the next id to each new word.

    The words new to a call of :meth:`encode` are checked together: one with whitespace in
    it, or an empty one, could not be written to a vocabulary or vectors file, so the run
    is refused before training.

    Attributes:
        words: the words in id order (``words[i]`` has id ``i``).
    """

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern
        self.words: List[str] = []

    def __missing__(self, word):
        i = self[word] = len(self.words)
        self.words.append(word)
        return i

    def encode(self, tokens: List[str]) -> np.ndarray:
        """The ids of ``tokens`` (new words numbered on the way), as ``uint32``.

        Raises:
            ValueError: a new word is empty or holds whitespace (the pattern is unusable).
        """
        known = len(self.words)
        ids = np.fromiter(map(self.__getitem__, tokens), dtype=np.uint32, count=len(tokens))
        if len(self.words) > known:
            self._check(self.words[known:])
        return ids

    def _check(self, words: List[str]) -> None:
        try:  # all at once: one join and one scan instead of a regex call per word
            if all(words) and not _WHITESPACE.search("".join(words)):
                return
        except TypeError:  # a pattern with several groups makes tuples: nothing to check
            pass
        for word in words:
            if isinstance(word, str) and (not word or _WHITESPACE.search(word)):
                what = "matches the empty string" if not word else f"makes the token {word!r}, with whitespace in it"
                raise ValueError(
                    f"data.token_pattern {self.pattern!r} {what}, which no vocabulary or word2vec file can hold; "
                    "use a pattern whose every match is one or more non-space characters, such as the default [^\\W\\d_]+"
                )


def default_workers() -> int:
    """The cores this process may use, at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def can_fork() -> bool:
    """Whether worker processes can be forked safely now (Linux, no other thread but daemon ones)."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() and not others


def type_ids(tokenizer: Tokenizer) -> Union[TypeIds, NativeTypeIds]:
    """An empty word table for ``tokenizer``'s tokens: in C for the default pattern where it is built."""
    native = NativeTypeIds.open(tokenizer)
    return TypeIds(tokenizer.pattern) if native is None else native


def encode_pieces(
    pieces: Iterable[Union[str, List[str]]], tokenizer: Tokenizer, ids: Union[TypeIds, NativeTypeIds], workers: int = 1
) -> Iterator[np.ndarray]:
    """The provisional ids of each piece's tokens, in order (pieces without tokens yield nothing).

    Args:
        pieces: text cut at whitespace, or tokens already cut (:meth:`Tokenizer.pieces`).
        tokenizer: how a text piece becomes tokens.
        ids: the table that numbers the words (grows as words are met), from :func:`type_ids`.
        workers: processes that tokenize (1: this one; see :func:`can_fork`). A
            :class:`~w2v.native_tokens.NativeTypeIds` tokenizes here, in C: on one core
            2.3-2.7x Python's tokenizer in two processes (``scripts/bench_corpus.py
            --against-python``).

    Raises:
        ValueError: a token no vocabulary file can hold, or a worker process died.
    """
    if isinstance(ids, NativeTypeIds):
        for piece in _read_ahead(pieces):
            done = ids.encode(piece) if isinstance(piece, list) else ids.encode_text(piece)
            if done.size:
                yield done
        return
    if workers <= 1 or not can_fork():
        for piece in pieces:
            tokens = piece if isinstance(piece, list) else tokenizer.tokenize(piece)
            if tokens:
                yield ids.encode(tokens)
        return
    yield from _Workers(tokenizer, ids, workers).encode(pieces)


def _read_ahead(pieces: Iterable, depth: int = 4) -> Iterator:
    """``pieces``, read, decoded and cut in a thread while this one encodes the previous ones.

    The C tokenizer releases the GIL, and zlib does while it inflates a ``.gz`` file, so the
    two overlap: the raw 20M-word corpus encodes in 1.9-2.4 s instead of 2.8-2.9 s. At most
    ``depth`` pieces wait in memory. An error met while reading is raised here, in its turn;
    when this generator is closed early the thread stops at its next piece.
    """
    waiting: "queue.Queue" = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for piece in pieces:
                if not put((piece, None)):
                    return
            put((end, None))
        except BaseException as e:  # raised in the encoding thread instead
            put((end, e))

    reader = threading.Thread(target=read, name="w2v-read-corpus", daemon=True)
    reader.start()
    try:
        while True:
            piece, error = waiting.get()
            if piece is end:
                if error is not None:
                    raise error
                return
            yield piece
    finally:
        stop.set()


# -- in a worker process ------------------------------------------------------------------
_OWN: Dict[str, object] = {}  # the worker's tokenizer and word table


def _start_worker(pattern: str, lowercase: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the main process's handler: just end
    _OWN["tokenizer"] = Tokenizer(pattern, lowercase)
    _OWN["ids"] = TypeIds(pattern)
    _OWN["table"] = (os.getpid(), 0)  # which numbering the worker's ids are in


def _encode_in_worker(text: str):
    """``((pid, table), ids, new words)`` of one piece, in the worker's own numbering.

    Past :data:`WORKER_TYPES` words the worker starts a new table (a new numbering), so
    its memory stays bounded; the main process maps each numbering apart.
    """
    ids: TypeIds = _OWN["ids"]  # type: ignore[assignment]
    if len(ids) > WORKER_TYPES:
        ids = _OWN["ids"] = TypeIds(ids.pattern)
        pid, table = _OWN["table"]  # type: ignore[misc]
        _OWN["table"] = (pid, table + 1)
    known = len(ids)
    local = ids.encode(_OWN["tokenizer"].tokenize(text))  # type: ignore[union-attr]
    return _OWN["table"], local, ids.words[known:]


# -- in this process ----------------------------------------------------------------------
class _Workers:
    """A pool of forked tokenizers whose results are taken in corpus order."""

    def __init__(self, tokenizer: Tokenizer, ids: TypeIds, workers: int) -> None:
        self.tokenizer, self.ids, self.workers = tokenizer, ids, workers
        # Per worker (its pid), for its current numbering: its id -> the global id, how many
        # of its ids are mapped, and which of its tables that numbering is.
        self.to_global: Dict[int, np.ndarray] = {}
        self.known: Dict[int, int] = {}
        self.table: Dict[int, int] = {}

    def encode(self, pieces: Iterable[Union[str, List[str]]]) -> Iterator[np.ndarray]:
        context = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_start_worker,
            initargs=(self.tokenizer.pattern, self.tokenizer.lowercase),
        )
        waiting: Deque = deque()
        try:
            for piece in pieces:
                # A list (tokens cut from a run without whitespace) is numbered here, in its turn.
                waiting.append(piece if isinstance(piece, list) else pool.submit(_encode_in_worker, piece))
                if len(waiting) >= 2 * self.workers:  # at most this many pieces in memory
                    done = self._take(waiting.popleft())
                    if done.size:
                        yield done
            while waiting:
                done = self._take(waiting.popleft())
                if done.size:
                    yield done
        except BrokenProcessPool:
            raise ValueError(
                "a tokenizing process ended unexpectedly (killed, or out of memory); "
                "tokenize in one process with data.tokenize_workers=1"
            ) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _take(self, item) -> np.ndarray:
        if isinstance(item, list):
            return self.ids.encode(item)
        (pid, numbering), local, new = item.result()
        if self.table.get(pid) != numbering:  # the worker started a table afresh: so does its mapping
            # A worker's pieces are taken in the order it encoded them, so none of the old table is left.
            self.to_global[pid], self.known[pid], self.table[pid] = np.zeros(0, dtype=np.uint32), 0, numbering
        table, known = self.to_global[pid], self.known[pid]
        if known + len(new) > len(table):  # grow by doubling: amortised O(1) per word
            table = np.concatenate([table, np.zeros(max(known + len(new), 2 * len(table)) - len(table), np.uint32)])
        table[known : known + len(new)] = self.ids.encode(new)
        self.to_global[pid], self.known[pid] = table, known + len(new)
        return table[local]
