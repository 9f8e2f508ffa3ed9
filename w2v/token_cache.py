"""The corpus as frequency-rank ids: tokenized once, cached on disk, checked when reused.

Encoding is one pass: each new word type gets the next provisional id, ids go to disk as
``uint32``, counts accumulate. The stream is then renumbered by frequency rank and kept
as ``tokens.npy`` with ``types.txt`` (``word count`` in rank order) in a cache folder
keyed by the files (path, size, mtime) and the tokenizer settings. Any vocabulary
(``min_count``, ``max_vocab_size``) is then a cheap remapping of ranks to ids, so a second
run, or a sweep over vocabulary settings, never tokenizes again. Both passes stream to
and from disk: memory holds the word types and their counts, never the token stream
(``scripts/bench_corpus.py`` measures it on 200M tokens). Only ``cache=False`` reads the
encoded stream into memory, since its folder is removed.

A cache entry is checked each time it is used: its files must agree with each other
(``meta.json`` present, as many types and tokens as it says), and the corpus files must
still hold the bytes that were tokenized (a CRC-32 of each file, kept in ``meta.json``:
one read of the files, 40 ms for the 48 MB of the 20M-word corpus, so a file rewritten
with the same size and mtime is noticed). A damaged or stale entry is tokenized again,
with a warning. Each entry also keeps a fingerprint of its token stream (BLAKE2b of the
ranks, the types and their counts), which checkpoints carry so that a resumed run can
tell another corpus of the same size.

A token with whitespace in it (a ``token_pattern`` such as ``[a-z]+ ?``), or an empty
one, is refused when first met: no vocabulary or vectors file could hold it. Reading the
files and tokenizing their text is :mod:`w2v.corpus`'s job.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np

from . import runlock, safefile
from .corpus import DecodeStats, Tokenizer, read_chunks, resolve_corpus
from .encoder import PARALLEL_CHARS, default_workers, encode_pieces, type_ids
from .native_tokens import NativeTypeIds

COUNT_BATCH = 1 << 24  # ids counted at a time while encoding
TYPES_BLOCK = 1 << 16  # lines of types.txt written (and hashed) at a time
CACHE_VERSION = 2  # 2: meta.json holds the corpus files' CRCs and the stream's fingerprint


@dataclass
class EncodedCorpus:
    """A corpus as frequency-rank ids: rank 0 is the most frequent type.

    Attributes:
        tokens: ``uint32`` ranks in corpus order (a read-only memory map when cached).
        types: the word of each rank.
        counts: the count of each rank.
        bad_bytes: bytes that were not valid UTF-8 (read as U+FFFD).
        fingerprint: ``blake2b:...`` of the token stream; equal streams have equal fingerprints.
        sources: ``crc32:...`` of each corpus file as it was read (empty for streams).
    """

    tokens: np.ndarray
    types: List[str]
    counts: np.ndarray
    bad_bytes: int = 0
    fingerprint: str = ""  # of the token stream: the ranks, the types and their counts
    sources: List[str] = field(default_factory=list)  # a CRC of each corpus file's bytes

    def __len__(self) -> int:
        return len(self.tokens)


def cache_key(files: List[Path], tokenizer: Tokenizer) -> str:
    h = hashlib.sha1()
    meta = {
        "version": CACHE_VERSION,
        "pattern": tokenizer.pattern,
        "lowercase": tokenizer.lowercase,
        "files": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files],
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("W2V_CACHE_DIR") or Path.home() / ".cache" / "w2v")


def _cache_root(cache_dir: Optional[str]) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def is_cached(spec: str, tokenizer: Tokenizer, cache_dir: Optional[str] = None) -> bool:
    """Whether the cache holds an entry for the corpus ``spec`` and ``tokenizer`` (:func:`load_corpus` checks it).

    Raises:
        FileNotFoundError: nothing matches ``spec``.
    """
    return (_cache_root(cache_dir) / cache_key(resolve_corpus(spec), tokenizer)).exists()


def file_crc(path: Path, block: int = 1 << 20) -> str:
    """``crc32:...`` of a file's bytes (as stored: a ``.gz`` is not decompressed).

    Raises:
        ValueError: the file cannot be read.
    """
    crc = 0
    try:
        with open(path, "rb") as f:
            while True:
                data = f.read(block)
                if not data:
                    return f"crc32:{crc:08x}"
                crc = zlib.crc32(data, crc)
    except OSError as e:
        raise ValueError(f"cannot read corpus file {path} ({safefile.reason(e)}); check the file and data.corpus") from None


def encode(files: List[Path], tokenizer: Tokenizer, workdir: Path, progress=None, workers: Optional[int] = None) -> EncodedCorpus:
    """Tokenize ``files`` once and renumber by frequency rank; files land in ``workdir``.

    Args:
        workers: processes that tokenize; ``None``: one per core (at most
            :data:`~w2v.encoder.MAX_WORKERS`) when the files hold more than ~4M characters.
    """
    sources = [file_crc(p) for p in files]  # before reading: a file changed meanwhile is seen next time
    if workers is None:
        chars = sum(p.stat().st_size * (3 if p.suffix == ".gz" else 1) for p in files)  # gzip: ~3x
        workers = default_workers() if chars >= PARALLEL_CHARS else 1
    stats = DecodeStats()
    streams = (read_chunks(path, stats=stats) for path in files)
    return encode_streams(
        streams, tokenizer, workdir, progress, stats, name=", ".join(map(str, files[:3])), sources=sources, workers=workers
    )


def encode_streams(
    streams: Iterable[Iterable[str]],
    tokenizer: Tokenizer,
    workdir: Path,
    progress=None,
    stats: Optional[DecodeStats] = None,
    name: str = "corpus",
    sources: Optional[List[str]] = None,
    workers: int = 1,
) -> EncodedCorpus:
    """Encode text streams (each an iterable of text chunks) into ``workdir``.

    Memory stays bounded whatever the corpus size: provisional ids go to disk chunk by
    chunk, and the renumbering by rank reads and writes the stream in blocks. Only the
    word types and their counts live in memory.

    Args:
        streams: one iterable of text chunks per file; no token spans two streams.
        tokenizer: how text becomes tokens.
        workdir: an empty folder that receives ``tokens.npy``, ``types.txt``, ``meta.json``.
        progress: optional callable given the number of tokens of each encoded chunk.
        stats: the :class:`~w2v.corpus.DecodeStats` the streams report undecodable bytes to.
        name: what the corpus is called in error messages.
        sources: the CRC of each file the streams read, kept in ``meta.json``.
        workers: processes that tokenize (:func:`~w2v.encoder.encode_pieces`); the result
            is the same bitwise for any number.

    Raises:
        ValueError: the streams hold no token, or a token no vocabulary file can hold.
    """
    ids = type_ids(tokenizer)
    tally = None if isinstance(ids, NativeTypeIds) else _Tally()  # the C table counts as it numbers
    raw = workdir / "provisional.u32"
    pieces = itertools.chain.from_iterable(tokenizer.pieces(stream) for stream in streams)  # none spans two files
    n = 0
    with open(raw, "wb") as out:
        for arr in encode_pieces(pieces, tokenizer, ids, workers):
            arr.tofile(out)
            n += len(arr)
            if tally is not None:
                tally.add(arr, len(ids))
            if progress is not None:
                progress(len(arr))
    counts = ids.counts() if tally is None else tally.counts(len(ids))
    bad_bytes = stats.bad_bytes if stats is not None else 0
    if n == 0:
        raw.unlink()
        hint = (
            f"; {bad_bytes:,} bytes were not valid UTF-8: is it a binary file? point data.corpus at UTF-8 text"
            if bad_bytes
            else "; check data.corpus and data.token_pattern"
        )
        raise ValueError(f"the corpus ({name}) has no tokens{hint}")
    types = ids.words
    del ids
    order = np.argsort(-counts, kind="stable")  # ties keep first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    digest = hashlib.blake2b(digest_size=16)
    _renumber(raw, rank.astype(np.uint32), n, workdir / "tokens.npy", digest)
    raw.unlink()
    types = [types[i] for i in order]
    counts = counts[order]
    with open(workdir / "types.txt", "w", encoding="utf-8") as f:
        counts_list = counts.tolist()
        for start in range(0, len(types), TYPES_BLOCK):  # a block of lines at a time: one write, one digest update
            stop = start + TYPES_BLOCK
            text = "".join(f"{word} {count}\n" for word, count in zip(types[start:stop], counts_list[start:stop]))
            f.write(text)
            digest.update(text.encode("utf-8", "surrogatepass"))
    meta = {
        "tokens": n, "types": len(types), "bad_bytes": bad_bytes, "fingerprint": f"blake2b:{digest.hexdigest()}",
        "sources": list(sources or []),
    }
    (workdir / "meta.json").write_text(json.dumps(meta))
    try:
        return load_encoded(workdir)
    except DamagedCache as e:  # a write was lost on the way (numpy's tofile can fail quietly)
        raise OSError(f"the tokenized corpus came out damaged: {e}") from None


class _Tally:
    """The count of each provisional id, added up in batches of :data:`COUNT_BATCH` ids.

    A ``bincount`` costs the whole table (3M types: 24 MB) each time, so it runs once per
    ~16M ids rather than once per piece of text.
    """

    def __init__(self) -> None:
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: List[np.ndarray] = []
        self._waiting = 0
        self.total = 0

    def add(self, ids: np.ndarray, types: int) -> None:
        """Count ``ids`` (all below ``types``)."""
        self._pending.append(ids)
        self._waiting += len(ids)
        self.total += len(ids)
        if self._waiting >= COUNT_BATCH:
            self._flush(types)

    def counts(self, types: int) -> np.ndarray:
        """The ``(types,)`` counts of everything added."""
        self._flush(types)
        return self._counts[:types]

    def _flush(self, types: int) -> None:
        if types > len(self._counts):
            grown = max(types, 2 * len(self._counts))
            self._counts = np.concatenate([self._counts, np.zeros(grown - len(self._counts), np.int64)])
        if self._pending:
            ids = np.concatenate(self._pending).astype(np.intp)  # bincount casts uint32 at a sixth of the speed
            self._counts += np.bincount(ids, minlength=len(self._counts))
        self._pending, self._waiting = [], 0


def _renumber(raw: Path, rank: np.ndarray, n: int, dest: Path, digest, block: int = 1 << 22) -> None:
    """Write ``rank[raw]`` as an ``.npy`` file, block by block (plain reads and writes:
    a memory map of the whole stream would count against the process's resident memory),
    feeding the ranks to ``digest`` on the way (BLAKE2b: ~0.1 s for 20M tokens)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint32)), "fortran_order": False, "shape": (n,)}
    done = 0
    with open(raw, "rb") as src, open(dest, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        while done < n:
            ids = np.fromfile(src, dtype=np.uint32, count=min(block, n - done))
            if not ids.size:  # a write of the first pass was lost (numpy's tofile can fail quietly)
                raise OSError(f"{raw.name} holds {done:,} of the {n:,} tokens written")
            ranks = rank[ids]
            digest.update(ranks.data)
            ranks.tofile(out)
            done += ids.size


class DamagedCache(ValueError):
    """A cache entry whose files do not agree with each other."""


def load_encoded(folder: Path) -> EncodedCorpus:
    """Read a cache entry written by :func:`encode_streams`, checking that its files agree.

    Raises:
        DamagedCache: a file is missing, unreadable, or disagrees with ``meta.json``.
    """
    try:
        meta = json.loads((folder / "meta.json").read_text())
        n, n_types = int(meta["tokens"]), int(meta["types"])
        tokens = np.load(folder / "tokens.npy", mmap_mode="r")
        types, counts = _read_types(folder / "types.txt")
    except FileNotFoundError as e:
        raise DamagedCache(f"{Path(e.filename).name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # truncated, garbled, not ours
        raise DamagedCache(f"unreadable ({type(e).__name__}: {e})") from None
    if tokens.dtype != np.uint32 or tokens.shape != (n,):
        raise DamagedCache(f"tokens.npy holds {tokens.shape} {tokens.dtype}, meta.json says ({n},) uint32")
    if len(types) != n_types:
        raise DamagedCache(f"types.txt holds {len(types)} types, meta.json says {n_types}")
    if int(counts.sum()) != n:
        raise DamagedCache(f"the counts of types.txt sum to {int(counts.sum())}, meta.json says {n} tokens")
    return EncodedCorpus(
        tokens, types, counts, meta.get("bad_bytes", 0), meta.get("fingerprint", ""), list(meta.get("sources", []))
    )


def _read_types(path: Path) -> Tuple[List[str], np.ndarray]:
    """The words and counts of ``types.txt`` (``word count`` lines).

    Words hold no whitespace unless ``data.token_pattern`` lets them: then each line is
    split at its last space; otherwise the whole file is split at once (4x faster).
    """
    text = path.read_text(encoding="utf-8")
    fields = text.split()
    if len(fields) == 2 * text.count("\n") and text.endswith("\n"):  # words are never empty
        return fields[0::2], np.fromiter(map(int, fields[1::2]), np.int64, len(fields) // 2)
    types, counts = [], []
    for line in text.split("\n")[:-1]:
        word, count = line.rsplit(" ", 1)
        types.append(word)
        counts.append(int(count))
    if text and not text.endswith("\n"):
        raise ValueError("types.txt ends in the middle of a line")
    return types, np.asarray(counts, dtype=np.int64)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _discard(folder: Path) -> None:
    """Remove a cache entry: renamed aside first, so that no run ever reads half of it."""
    aside = safefile.temp_path(folder)
    try:
        os.replace(folder, aside)
    except OSError:  # another run removed or replaced it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def _no_room(e: OSError, where: Path, cache: bool) -> ValueError:
    why = safefile.reason(e) if e.errno is not None else f"{e}: is the disk full?"  # numpy's tofile sets no errno
    if cache:
        fix = "free space there, or set data.cache_dir (or $W2V_CACHE_DIR) to a folder with room, or data.cache=false"
        what = f"data.cache_dir={where}"
    else:
        fix = "free space there, or set $TMPDIR to a folder with room"
        what = f"the temporary folder {where}"
    return ValueError(f"cannot write the tokenized corpus into {what} ({why}); {fix}")


def load_corpus(
    spec: str,
    tokenizer: Tokenizer,
    cache: bool = True,
    cache_dir: Optional[str] = None,
    progress=None,
    warn: Callable[[str], None] = _warn,
    workers: Optional[int] = None,
) -> EncodedCorpus:
    """Encode the corpus named by ``spec``, or load it from the cache.

    Args:
        spec: file, folder or glob.
        tokenizer: how text becomes tokens (part of the cache key).
        cache: keep the encoded stream for the next run.
        cache_dir: where; default ``$W2V_CACHE_DIR`` or ``~/.cache/w2v``.
        progress: optional callable given the number of tokens encoded so far, per chunk.
        warn: called with one line when a cache entry is damaged or stale (and rebuilt).
        workers: processes that tokenize (see :func:`encode`); ``None``: by the corpus size.

    Raises:
        FileNotFoundError: nothing matches ``spec``.
        ValueError: the corpus is not UTF-8 text or has no tokens, a gzip file is damaged,
            or the cache (or temporary) folder has no room; the message names the fix.
    """
    files = resolve_corpus(spec)
    if not cache:
        root = Path(tempfile.gettempdir())
        safefile.sweep(root, legacy=False)  # what killed tokenizations left (only w2v's own names in $TMPDIR)
        return _encode_into(root, files, tokenizer, progress, workers, folder=None)
    root = _cache_root(cache_dir)
    safefile.sweep(root)
    folder = root / cache_key(files, tokenizer)
    enc = _reuse(folder, files, warn)
    if enc is not None:
        return enc
    with _one_tokenizer(root, folder.name):
        if folder.exists():  # another process tokenized it while this one waited
            enc = _reuse(folder, files, warn)
            if enc is not None:
                return enc
        return _encode_into(root, files, tokenizer, progress, workers, folder)


def _reuse(folder: Path, files: List[Path], warn: Callable[[str], None]) -> Optional[EncodedCorpus]:
    """The cache entry in ``folder`` when it is there, whole and of these files' bytes; else ``None``
    (a damaged or stale entry is removed, with a warning)."""
    if not folder.exists():
        return None
    try:
        enc = load_encoded(folder)
        changed = [p for p, crc in zip(files, enc.sources) if file_crc(p) != crc]
        if len(enc.sources) == len(files) and not changed:
            return enc
        warn(f"{(changed or files)[0]} changed since it was tokenized (same size and time, other bytes); tokenizing again")
    except DamagedCache as e:
        warn(f"the cached corpus in {folder} is damaged ({e}); tokenizing again")
    _discard(folder)
    return None


def _one_tokenizer(root: Path, key: str):
    """Held while this process tokenizes the corpus of cache entry ``key``: another process that
    needs it meanwhile waits, then reads the entry, instead of tokenizing it a second time
    (:func:`w2v.runlock.waiting` on ``root/.KEY.lock``)."""
    with contextlib.suppress(OSError):  # a folder that cannot be made: _encode_into says so
        root.mkdir(parents=True, exist_ok=True)
    return runlock.waiting(root / f".{key}.lock")


def _encode_into(root: Path, files: List[Path], tokenizer: Tokenizer, progress, workers, folder: Optional[Path]) -> EncodedCorpus:
    """Tokenize ``files`` in a fresh folder of ``root``, then publish it as the cache entry ``folder``
    (``None``: no cache; the tokens are read into memory and the folder removed)."""
    cache = folder is not None
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = safefile.temp_dir(root)
    except OSError as e:
        raise _no_room(e, root, cache) from None
    try:
        enc = encode(files, tokenizer, work, progress, workers)
        if folder is None:
            enc.tokens = np.array(enc.tokens)  # into memory: the folder goes away
            return enc
        try:
            os.replace(work, folder)
        except OSError:  # another run published the same entry first
            return load_encoded(folder)
        return enc  # checked as written; its memory map follows the folder's new name
    except OSError as e:  # reading errors are ValueErrors (read_chunks): this is a write's
        raise _no_room(e, root, cache) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
