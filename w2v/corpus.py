"""Streaming corpus reading and the tokenizer.

A corpus is a file, a folder (every file below it, sorted), or a glob; ``.gz`` files are
read through gzip. Text is read in fixed-size character chunks, never a line at a time,
so a 100 MB single-line file such as text8 costs no more memory than any other. Tokens
are the matches of a regex (letters by default), optionally lowercased. Windows run
across line ends, as in word2vec's C tool on text8; files are separate streams only in
that no token spans two files.

Input that cannot be text is refused, by file: where more than a tenth of the bytes are
not UTF-8 or are control characters (binary data, UTF-16, another encoding), the message
says so; a few bad bytes are read as U+FFFD and counted.

Turning the tokens into frequency-rank ids, once, and caching them on disk is
:mod:`w2v.token_cache`'s job; its names (:func:`~w2v.token_cache.load_corpus`...) are
still importable from here.
"""

from __future__ import annotations

import glob as globmod
import gzip
import os
import re
import zlib
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np

from . import safefile

CHUNK_CHARS = 1 << 20
NOT_TEXT = 0.1  # a file with more than this share of undecodable bytes or control characters
MIN_BAD = 64  # fewer bad bytes (or control characters) than this are a few typos, whatever the share
JUDGE_AFTER = 1 << 20  # bytes of a file read before it may be judged (else: at its end)
CONTROL_SAMPLE = 16 << 20  # control characters are counted in each file's first 16 MB
# C0 controls but \t \n \v \f \r, counted in the bytes read: in UTF-8 a byte below 0x80 is
# always that ASCII character, and bytes.translate deletes them at ~1 ns a byte where a
# regex scan of the decoded text took ~8 ns a character.
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32)])


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


class _TextCheck:
    """Judges whether one file is UTF-8 text, from what reading it has seen so far."""

    def __init__(self, path: Path, stats: DecodeStats) -> None:
        self.path, self.stats, self.bad0 = path, stats, stats.bad_bytes
        self.chars = self.control = self.nul = 0

    def see(self, raw: bytes, chars: int, bytes_read: int, end: bool = False) -> None:
        """Take in the next ``raw`` bytes of the file, ``chars`` characters once decoded."""
        if self.chars < CONTROL_SAMPLE:
            self.chars += chars
            self.control += len(raw) - len(raw.translate(None, _CONTROL_BYTES))
            self.nul += raw.count(b"\0")
        if not (end or bytes_read >= JUDGE_AFTER) or bytes_read <= 0:
            return
        bad = self.stats.bad_bytes - self.bad0
        control = self.control / max(self.chars, 1)
        bad_share = bad > max(NOT_TEXT * bytes_read, MIN_BAD)
        control_share = control > NOT_TEXT and self.control > MIN_BAD
        if not (bad_share or control_share):
            return
        if self.nul > 0.01 * self.chars:
            why = f"{self.nul / self.chars:.0%} of its characters are NUL: UTF-16 text, or binary data"
            fix = "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
        else:
            why = f"{bad:,} of its first {bytes_read:,} bytes ({bad / bytes_read:.0%}) are not valid UTF-8"
            if control_share:
                why += f" and {control:.0%} of its characters are control characters"
            why += ": binary data, or text in another encoding such as Latin-1"
            fix = "convert it to UTF-8 (iconv -f ENCODING -t UTF-8)"
        raise ValueError(f"corpus file {self.path} is not UTF-8 text: {why}; {fix} or leave it out of data.corpus")


def read_chunks(path: Path, chunk_chars: Optional[int] = None, stats: Optional[DecodeStats] = None) -> Iterator[str]:
    """Yield the text of ``path`` in chunks of at most ``chunk_chars`` characters (default :data:`CHUNK_CHARS`).

    The file is read as bytes, ``chunk_chars`` at a time, and decoded here (a character cut
    by a read waits for the next one).

    Raises:
        ValueError: the file is not UTF-8 text (see :data:`NOT_TEXT`), or a damaged gzip file.
    """
    import codecs

    chunk_chars = chunk_chars or CHUNK_CHARS  # read when called: a test may set a smaller one
    stats = DecodeStats() if stats is None else stats
    name = "w2v-count-" + str(id(stats))
    codecs.register_error(name, stats.errors)
    decoder = codecs.getincrementaldecoder("utf-8")(errors=name)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            check, read = _TextCheck(path, stats), 0
            while True:
                raw = f.read(chunk_chars)
                read += len(raw)
                text = decoder.decode(raw, final=not raw)
                check.see(raw, len(text), read, end=not raw)
                if text:
                    yield text
                if not raw:
                    return
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e}); the file is damaged: decompress or re-download it") from None
    except OSError as e:  # so that any OSError of encoding is a write's
        raise ValueError(f"cannot read corpus file {path} ({safefile.reason(e)}); check the file and data.corpus") from None


LETTERS = r"[^\W\d_]+"  # the default token: a run of letters (any script), no digits, no underscore


PLAIN_SAMPLE = 4096  # characters of a text looked at to choose how to tokenize it
PLAIN_SHARE = 0.05  # at most this share of the sample's words not all letters: tokenize word by word


def letter_runs(text: str, findall) -> List[str]:
    """``findall(text)`` for :data:`LETTERS`: :func:`by_words` on text of plain words, else ``findall``.

    Text whose first :data:`PLAIN_SAMPLE` characters hold more than :data:`PLAIN_SHARE` of
    words that are not all letters goes to ``findall`` whole: on raw text, where ~18% of
    the words carry punctuation, :func:`by_words` is slower than the regex.
    """
    sample = text[:PLAIN_SAMPLE].split()
    if len(sample) - sum(map(str.isalpha, sample)) > PLAIN_SHARE * len(sample) + 1:
        return findall(text)
    return by_words(text, findall)


def by_words(text: str, findall) -> List[str]:
    r"""``findall(text)`` for :data:`LETTERS`, from the whitespace-separated words.

    A word all of whose characters are letters (``str.isalpha``) is one token: each of them
    matches ``[^\W\d_]`` (letters are word characters, never decimal digits nor ``_``),
    and whitespace never does. The other words go through ``findall`` one by one. On text of
    plain words (a normalised corpus such as text8) this is 1.8x as fast as the regex over
    the whole text.

    >>> by_words("the cat's 2 hats, naïve x²", re.compile(LETTERS).findall)
    ['the', 'cat', 's', 'hats', 'naïve', 'x²']
    """
    words = text.split()
    plain = np.fromiter(map(str.isalpha, words), dtype=bool, count=len(words))
    other = np.flatnonzero(~plain).tolist()
    if not other:
        return words
    tokens: List[str] = []
    start = 0
    for i in other:
        tokens += words[start:i]
        tokens += findall(words[i])
        start = i + 1
    tokens += words[start:]
    return tokens


class Tokenizer:
    """Regex tokens, optionally lowercased, streamed from text chunks.

    >>> Tokenizer().tokenize("The cat's 2 hats, naïve")
    ['the', 'cat', 's', 'hats', 'naïve']
    >>> list(Tokenizer().stream(["the ca", "t sat"]))
    [['the'], ['cat'], ['sat']]
    """

    def __init__(self, pattern: str = LETTERS, lowercase: bool = True) -> None:
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"data.token_pattern {pattern!r} is not a valid regex: {e}") from e
        self.pattern = pattern
        self.lowercase = lowercase

    def tokenize(self, text: str) -> List[str]:
        if self.lowercase:
            text = text.lower()
        if self.pattern == LETTERS:
            return letter_runs(text, self.regex.findall)
        return self.regex.findall(text)

    def stream(self, chunks) -> Iterator[List[str]]:
        """Tokens of consecutive text chunks; a token cut by a chunk end is joined back.

        The text after the last whitespace of a chunk is carried into the next one, so a
        token is never split and no line is ever cut short, however long (gensim stops a
        sentence at 10,000 tokens; nothing here does). A run of more than ``CHUNK_CHARS``
        characters without whitespace (``a,b,c,...``) is cut before its last token, so
        memory stays bounded there too.
        """
        for piece in self.pieces(chunks):
            tokens = piece if isinstance(piece, list) else self.tokenize(piece)
            if tokens:
                yield tokens

    def pieces(self, chunks) -> Iterator[Union[str, List[str]]]:
        """What :meth:`stream` tokenizes, in order, before it is tokenized.

        Each piece is either text that starts and ends at whitespace (a ``str``: its tokens
        are :meth:`tokenize`'s), or the tokens already cut from a run without whitespace
        (a ``list``), so that pieces can be tokenized apart, in other processes.

        >>> list(Tokenizer().pieces(["the ca", "t sat"]))
        ['the ', 'cat ', 'sat']
        """
        carry = ""
        for chunk in chunks:
            text = carry + chunk
            if not text:
                continue
            cut = _whitespace_cut(text)
            carry = text[cut:]
            if cut:
                yield text[:cut]
            if len(carry) > CHUNK_CHARS:
                more, carry = self._split_run(carry)
                if more:
                    yield more
        if carry:
            yield carry

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


# What moved to w2v.token_cache, still handed out here for `from w2v.corpus import load_corpus`.
# token_cache imports this module, so the names are looked up on first use (PEP 562).
_MOVED = frozenset({
    "CACHE_VERSION", "DamagedCache", "EncodedCorpus", "cache_key", "default_cache_dir", "encode", "encode_streams",
    "file_crc", "load_corpus", "load_encoded",
})


def __getattr__(name: str):
    if name in _MOVED:
        from . import token_cache

        return getattr(token_cache, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
