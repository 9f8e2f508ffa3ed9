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
run, or a sweep over vocabulary settings, never tokenizes again.
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
from typing import Iterator, List, Optional

import numpy as np

CACHE_VERSION = 1
CHUNK_CHARS = 1 << 20


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def resolve_corpus(spec: str) -> List[Path]:
    """The files a corpus spec names, in a stable order.

    A relative path that does not exist from the working directory is also tried from the
    project root, so the bundled ``data/`` corpus works from anywhere.

    Raises:
        FileNotFoundError: nothing matches.
    """
    candidates = [Path(spec).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(project_root() / spec)
    for path in candidates:
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
        token is never split, whatever the line lengths.
        """
        carry = ""
        for chunk in chunks:
            text = carry + chunk
            cut = len(text)
            while cut > 0 and not text[cut - 1].isspace():
                cut -= 1
                if len(text) - cut > CHUNK_CHARS:  # no whitespace for a megabyte: cut anyway
                    cut = len(text)
                    break
            carry = text[cut:]
            tokens = self.tokenize(text[:cut])
            if tokens:
                yield tokens
        if carry:
            tokens = self.tokenize(carry)
            if tokens:
                yield tokens


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
    ids = _TypeIds()
    counts = np.zeros(0, dtype=np.int64)
    stats = DecodeStats()
    raw = workdir / "provisional.u32"
    n = 0
    with open(raw, "wb") as out:
        for path in files:
            for tokens in tokenizer.stream(read_chunks(path, stats=stats)):
                arr = np.fromiter(map(ids.__getitem__, tokens), dtype=np.uint32, count=len(tokens))
                arr.tofile(out)
                if len(ids) > len(counts):
                    counts = np.concatenate([counts, np.zeros(max(len(ids), 2 * len(counts)) - len(counts), np.int64)])
                counts += np.bincount(arr, minlength=len(counts))
                n += len(arr)
                if progress is not None:
                    progress(len(arr))
    if n == 0:
        raise ValueError(
            f"the corpus ({', '.join(map(str, files[:3]))}) has no tokens; check data.corpus and data.token_pattern"
        )
    counts = counts[: len(ids)]
    types = list(ids)
    del ids
    order = np.argsort(-counts, kind="stable")  # ties keep first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rank = rank.astype(np.uint32)
    prov = np.memmap(raw, dtype=np.uint32, mode="r")
    ranked = np.lib.format.open_memmap(workdir / "tokens.npy", mode="w+", dtype=np.uint32, shape=(n,))
    step = 1 << 24
    for a in range(0, n, step):
        ranked[a : a + step] = rank[prov[a : a + step]]
    ranked.flush()
    del ranked, prov
    raw.unlink()
    types = [types[i] for i in order]
    counts = counts[order]
    with open(workdir / "types.txt", "w", encoding="utf-8") as f:
        for word, count in zip(types, counts.tolist()):
            f.write(f"{word} {count}\n")
    (workdir / "meta.json").write_text(json.dumps({"tokens": n, "types": len(types), "bad_bytes": stats.bad_bytes}))
    return load_encoded(workdir)


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
