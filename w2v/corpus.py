"""Streaming corpus reading, tokenizing, and the encoded token-stream cache.

A corpus is a file, a folder (every file below it, sorted), or a glob; ``.gz`` files are
read through gzip. Text is read in fixed-size character chunks, never a line at a time,
so a 100 MB single-line file such as text8 costs no more memory than any other. Tokens
are the matches of a regex (letters by default), optionally lowercased. Windows run
across line ends, as in word2vec's C tool on text8; files are separate streams only in
that no token spans two files.

Encoding is one pass: each new word type gets the next provisional id, ids go to disk as
``uint32``, counts accumulate. The stream is then renumbered by frequency rank and kept
as ``tokens.npy`` with ``types.txt`` (``word count`` in rank order) in a cache folder
keyed by the files (path, size, mtime) and the tokenizer settings. Any vocabulary
(``min_count``, ``max_vocab_size``) is then a cheap remapping of ranks to ids, so a second
run, or a sweep over vocabulary settings, never tokenizes again. Both passes stream to
and from disk: memory holds the word types and their counts, never the token stream
(``scripts/bench_corpus.py`` measures it on 200M tokens). Only ``cache=False`` reads the
encoded stream into memory, since its folder is removed.
"""

from __future__ import annotations

import glob as globmod
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

import numpy as np

CACHE_VERSION = 1
CHUNK_CHARS = 1 << 20


def resolve_corpus(spec: str) -> List[Path]:
    """The files a corpus spec names, in a stable order.

    A relative path is taken from the working directory (the bundled corpus is the default
    by its full path, :func:`w2v.config.bundled`).

    Raises:
        FileNotFoundError: nothing matches.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = sorted(
            p.resolve()
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if files:
            return files
        raise FileNotFoundError(f"corpus folder {spec} holds no files; point data.corpus at text files")
    if globmod.has_magic(str(path)):
        files = sorted(Path(p).resolve() for p in globmod.glob(str(path), recursive=True) if os.path.isfile(p))
        if files:
            return files
    raise FileNotFoundError(f"corpus not found: {spec}; set data.corpus to a file, folder or glob that exists")


class DecodeStats:
    """Counts undecodable bytes (each becomes U+FFFD) while reading."""

    def __init__(self) -> None:
        self.bad_bytes = 0

    def errors(self, err: UnicodeDecodeError):
        self.bad_bytes += err.end - err.start
        return "\ufffd", err.end


def read_chunks(path: Path, chunk_chars: int = CHUNK_CHARS, stats: Optional[DecodeStats] = None) -> Iterator[str]:
    """Yield the text of ``path`` in chunks of at most ``chunk_chars`` characters."""
    name = "w2v-count-" + str(id(stats))
    if stats is not None:
        import codecs

        codecs.register_error(name, stats.errors)
    errors = name if stats is not None else "replace"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors=errors, newline="") as f:
            while True:
                text = f.read(chunk_chars)
                if not text:
                    return
                yield text
    except (gzip.BadGzipFile, EOFError) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e}); decompress or re-download it") from e


class Tokenizer:
    """Regex tokens, optionally lowercased, streamed from text chunks.

    >>> Tokenizer().tokenize("The cat's 2 hats, naïve")
    ['the', 'cat', 's', 'hats', 'naïve']
    >>> list(Tokenizer().stream(["the ca", "t sat"]))
    [['the'], ['cat'], ['sat']]
    """

    def __init__(self, pattern: str = r"[^\W\d_]+", lowercase: bool = True) -> None:
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"data.token_pattern {pattern!r} is not a valid regex: {e}") from e
        self.pattern = pattern
        self.lowercase = lowercase

    def tokenize(self, text: str) -> List[str]:
        if self.lowercase:
            text = text.lower()
        return self.regex.findall(text)

    def stream(self, chunks) -> Iterator[List[str]]:
        """Tokens of consecutive text chunks; a token cut by a chunk end is joined back.

        The text after the last whitespace of a chunk is carried into the next one, so a
        token is never split and no line is ever cut short, however long (gensim stops a
        sentence at 10,000 tokens; nothing here does). A run of more than ``CHUNK_CHARS``
        characters without whitespace (``a,b,c,...``) is cut before its last token, so
        memory stays bounded there too.
        """
        carry = ""
        for chunk in chunks:
            text = carry + chunk
            if not text:
                continue
            cut = _whitespace_cut(text)
            tokens = self.tokenize(text[:cut]) if cut else []
            carry = text[cut:]
            if len(carry) > CHUNK_CHARS:
                more, carry = self._split_run(carry)
                tokens += more
            if tokens:
                yield tokens
        if carry:
            tokens = self.tokenize(carry)
            if tokens:
                yield tokens

    def _split_run(self, text: str):
        """Tokens of ``text`` (no whitespace in it) but the last one when it touches the end.

        Returns ``(tokens, tail)``: the tail (already lowercased) is the token that may go on
        in the next chunk; only a single token longer than ``CHUNK_CHARS`` is cut.
        """
        if self.lowercase:
            text = text.lower()
        tokens, start, end = [], 0, 0
        for m in self.regex.finditer(text):
            # what findall would return for this match: the whole match or its group(s)
            groups = self.regex.groups
            tokens.append(m.group() if groups == 0 else m.group(1) if groups == 1 else m.groups())
            start, end = m.start(), m.end()
        if tokens and end == len(text) and end - start <= CHUNK_CHARS:
            return tokens[:-1], text[start:]
        return tokens, ""


def _whitespace_cut(text: str) -> int:
    """The index just after the last whitespace of ``text`` (0 when there is none).

    >>> _whitespace_cut("ab cd"), _whitespace_cut("ab cd "), _whitespace_cut("abcd")
    (3, 6, 0)
    """
    if text[-1].isspace():
        return len(text)
    parts = text.rsplit(None, 1)  # scans from the right, at C speed
    return len(text) - len(parts[-1]) if len(parts) == 2 else 0


class _TypeIds(dict):
    """word -> provisional id, handing out the next id to each new word."""

    def __missing__(self, word):
        i = self[word] = len(self)
        return i


@dataclass
class EncodedCorpus:
    """A corpus as frequency-rank ids: rank 0 is the most frequent type.

    Attributes:
        tokens: ``uint32`` ranks in corpus order (a read-only memory map when cached).
        types: the word of each rank.
        counts: the count of each rank.
        bad_bytes: bytes that were not valid UTF-8 (read as U+FFFD).
    """

    tokens: np.ndarray
    types: List[str]
    counts: np.ndarray
    bad_bytes: int = 0

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


def encode(files: List[Path], tokenizer: Tokenizer, workdir: Path, progress=None) -> EncodedCorpus:
    """Tokenize ``files`` once and renumber by frequency rank; files land in ``workdir``."""
    stats = DecodeStats()
    streams = (read_chunks(path, stats=stats) for path in files)
    return encode_streams(streams, tokenizer, workdir, progress, stats, name=", ".join(map(str, files[:3])))


def encode_streams(
    streams: Iterable[Iterable[str]],
    tokenizer: Tokenizer,
    workdir: Path,
    progress=None,
    stats: Optional[DecodeStats] = None,
    name: str = "corpus",
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
        stats: the :class:`DecodeStats` the streams report undecodable bytes to.
        name: what the corpus is called in error messages.

    Raises:
        ValueError: the streams hold no token.
    """
    ids = _TypeIds()
    counts = np.zeros(0, dtype=np.int64)
    raw = workdir / "provisional.u32"
    n = 0
    with open(raw, "wb") as out:
        for stream in streams:
            for tokens in tokenizer.stream(stream):
                arr = np.fromiter(map(ids.__getitem__, tokens), dtype=np.uint32, count=len(tokens))
                arr.tofile(out)
                if len(ids) > len(counts):
                    counts = np.concatenate([counts, np.zeros(max(len(ids), 2 * len(counts)) - len(counts), np.int64)])
                counts += np.bincount(arr, minlength=len(counts))
                n += len(arr)
                if progress is not None:
                    progress(len(arr))
    bad_bytes = stats.bad_bytes if stats is not None else 0
    if n == 0:
        raw.unlink()
        hint = (
            f"; {bad_bytes:,} bytes were not valid UTF-8: is it a binary file? point data.corpus at UTF-8 text"
            if bad_bytes
            else "; check data.corpus and data.token_pattern"
        )
        raise ValueError(f"the corpus ({name}) has no tokens{hint}")
    counts = counts[: len(ids)]
    types = list(ids)
    del ids
    order = np.argsort(-counts, kind="stable")  # ties keep first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    _renumber(raw, rank.astype(np.uint32), n, workdir / "tokens.npy")
    raw.unlink()
    types = [types[i] for i in order]
    counts = counts[order]
    with open(workdir / "types.txt", "w", encoding="utf-8") as f:
        for word, count in zip(types, counts.tolist()):
            f.write(f"{word} {count}\n")
    (workdir / "meta.json").write_text(json.dumps({"tokens": n, "types": len(types), "bad_bytes": bad_bytes}))
    return load_encoded(workdir)


def _renumber(raw: Path, rank: np.ndarray, n: int, dest: Path, block: int = 1 << 22) -> None:
    """Write ``rank[raw]`` as an ``.npy`` file, block by block (plain reads and writes:
    a memory map of the whole stream would count against the process's resident memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint32)), "fortran_order": False, "shape": (n,)}
    with open(raw, "rb") as src, open(dest, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        while True:
            ids = np.fromfile(src, dtype=np.uint32, count=block)
            if not ids.size:
                break
            rank[ids].tofile(out)


def load_encoded(folder: Path) -> EncodedCorpus:
    tokens = np.load(folder / "tokens.npy", mmap_mode="r")
    types, counts = [], []
    with open(folder / "types.txt", encoding="utf-8") as f:
        for line in f:
            word, count = line.rstrip("\n").rsplit(" ", 1)
            types.append(word)
            counts.append(int(count))
    meta = json.loads((folder / "meta.json").read_text())
    return EncodedCorpus(tokens, types, np.asarray(counts, dtype=np.int64), meta.get("bad_bytes", 0))


def load_corpus(
    spec: str,
    tokenizer: Tokenizer,
    cache: bool = True,
    cache_dir: Optional[str] = None,
    progress=None,
) -> EncodedCorpus:
    """Encode the corpus named by ``spec``, or load it from the cache.

    Args:
        spec: file, folder or glob.
        tokenizer: how text becomes tokens (part of the cache key).
        cache: keep the encoded stream for the next run.
        cache_dir: where; default ``$W2V_CACHE_DIR`` or ``~/.cache/w2v``.
        progress: optional callable given the number of tokens encoded so far, per chunk.
    """
    files = resolve_corpus(spec)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if cache:
        folder = root / cache_key(files, tokenizer)
        if (folder / "meta.json").is_file():
            try:
                return load_encoded(folder)
            except (OSError, ValueError):
                shutil.rmtree(folder, ignore_errors=True)  # a damaged entry is rebuilt
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            encode(files, tokenizer, work, progress)
            try:
                os.replace(work, folder)
            except OSError:  # another run published the same entry first
                shutil.rmtree(work, ignore_errors=True)
            return load_encoded(folder)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    work = Path(tempfile.mkdtemp(prefix="w2v-"))
    try:
        enc = encode(files, tokenizer, work, progress)
        enc.tokens = np.array(enc.tokens)  # into memory: the folder goes away
        return enc
    finally:
        shutil.rmtree(work, ignore_errors=True)
