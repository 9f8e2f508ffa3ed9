"""Files of trained vectors: word2vec binary and text, GloVe text, ``.npy`` + vocab, torch.

Everything here works on plain values, a list of words and a float32 ``(V, D)`` array
(plus optional counts), so the module knows nothing of :class:`w2v.vectors.WordVectors`.

The word2vec formats are the C tool's and gensim's: a ``V D`` header line, then one
word per vector. In the binary form the word is followed by a space and ``D``
little-endian float32 values; the C tool then writes a newline, gensim does not, and
readers skip it either way. In the text form each line is the word and ``D`` numbers
separated by single spaces. GloVe text is the text form without the header.

Big files are read and written without per-value Python work: binary rows are copied
out of a memory map a chunk of rows at a time, text rows are parsed by
:func:`numpy.fromstring` a chunk of lines at a time and formatted by
:func:`w2v.float_text.scientific` a block of rows at a time. Writes are atomic
(:func:`w2v.safefile.atomic_write`): a temporary file in the target's folder, named
after the process that writes it, then :func:`os.replace`, so an error never leaves a
partial file behind.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import files
# The text writer's number formatter has a module of its own; it is still importable from here.
from .float_text import scientific, word2vec_lines
from .safefile import atomic_write  # noqa: F401  (part of this module's interface)
from .vocab import read_word_counts

log = logging.getLogger(__name__)

FORMATS = ("bin", "txt", "glove", "npy", "pt")
MAX_LINE_BYTES = 1 << 24  # a text line: a word and its numbers (a 1M-dim vector fits); bounds a file without newlines
MAX_WORD_BYTES = 1 << 16  # a word of the binary format (the C tool cuts them at 50)
_ROWS_PER_COPY = 16384  # binary rows copied per join
_NUMBER_BYTES = frozenset(b"0123456789.-+eE \n")
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_WHITESPACE = re.compile(r"\s")

Table = Tuple[List[str], np.ndarray, Optional[np.ndarray]]  # words, (V, D) float32, counts or None


def format_from_path(path: str | os.PathLike, format: Optional[str] = None) -> str:
    """The format of ``path``: ``format`` when given, else from the suffix.

    >>> format_from_path("out/vectors.bin"), format_from_path("glove.6B.50d.glove.txt")
    ('bin', 'glove')
    >>> format_from_path("v.vec"), format_from_path("v.data", format="txt")
    ('txt', 'txt')
    """
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown vectors format {format!r}; use one of {FORMATS}")
        return format
    name = Path(path).name.lower()
    if name.endswith(".glove.txt"):
        return "glove"
    for suffix, fmt in ((".bin", "bin"), (".txt", "txt"), (".vec", "txt"), (".npy", "npy"), (".pt", "pt")):
        if name.endswith(suffix):
            return fmt
    raise ValueError(
        f"{path}: cannot tell the vectors format from the suffix; name the file .bin, .txt, "
        f".glove.txt, .npy or .pt, or pass format= one of {FORMATS}"
    )


def read_vectors(path, format=None, limit=None, unicode_errors="strict") -> Table:
    """Read any supported format (see :func:`format_from_path`).

    Returns:
        ``(words, vectors, counts)``; ``counts`` is None unless the file keeps them.
    """
    fmt = format_from_path(path, format)
    _check_limit(limit)
    if fmt in ("bin", "txt"):
        words, vectors = read_word2vec(path, binary=fmt == "bin", limit=limit, unicode_errors=unicode_errors)
        return words, vectors, None
    if fmt == "glove":
        words, vectors = read_glove(path, limit=limit, unicode_errors=unicode_errors)
        return words, vectors, None
    words, vectors, counts = read_npy(path) if fmt == "npy" else read_torch(path)
    if limit is not None:
        words, vectors = words[:limit], vectors[:limit]
        counts = None if counts is None else counts[:limit]
    return words, vectors, counts


def write_vectors(path, words: Sequence[str], vectors: np.ndarray, format=None, counts=None) -> None:
    """Write any supported format (see :func:`format_from_path`); ``counts`` go where the format keeps them."""
    fmt = format_from_path(path, format)
    if fmt in ("bin", "txt", "glove"):
        write_word2vec(path, words, vectors, binary=fmt == "bin", header=fmt != "glove")
    elif fmt == "npy":
        write_npy(path, words, vectors, counts)
    else:
        write_torch(path, words, vectors, counts)


# --- word2vec binary / text, GloVe -------------------------------------------------------


def write_word2vec(path, words: Sequence[str], vectors: np.ndarray, binary: bool = False, header: bool = True) -> None:
    """Write the C tool's format: ``V D`` header, then word + vector per line (text) or record (binary).

    Text values are written as ``%.8e`` writes them (9 significant digits, which read back
    as the same float32), formatted by :func:`~w2v.float_text.scientific` at numpy speed.
    """
    vectors = _check_table(words, vectors)
    _check_words(path, words)
    n, dim = vectors.shape
    le = vectors.astype("<f4", copy=False)
    with atomic_write(path, "wb") as f:
        if header:
            f.write(f"{n} {dim}\n".encode())
        step = max(1, (1 << 18) // max(dim, 1))  # rows per block: ~4 MB of text, 1 MB of binary
        if binary:
            size = 4 * dim
            for start in range(0, n, step):
                raw = le[start : start + step].tobytes()
                f.write(b"".join(
                    w.encode("utf-8") + b" " + raw[i * size : (i + 1) * size] + b"\n"
                    for i, w in enumerate(words[start : start + step])
                ))
            return
        for start in range(0, n, step):
            block = [w.encode("utf-8") for w in words[start : start + step]]
            lines = word2vec_lines(block, le[start : start + step])  # in C, words and numbers in one pass
            if lines is not None:
                f.write(lines)
                continue
            text, ends = scientific(le[start : start + step])
            begins = [0, *ends[:-1].tolist()]
            f.write(b"".join(w + b" " + text[a:b] for w, a, b in zip(block, begins, ends.tolist())))


def read_word2vec(path, binary: bool = False, limit: Optional[int] = None, unicode_errors: str = "strict"):
    """Read the C tool's (or gensim's) word2vec format, like gensim's ``load_word2vec_format``.

    Args:
        path: the file.
        binary: the binary format (``-binary 1``) rather than text.
        limit: read at most this many vectors (the first ones: the most frequent).
        unicode_errors: how to decode words that are not valid UTF-8 (``"strict"``,
            ``"ignore"``, ``"replace"``); the C tool can cut long words mid-character.

    Returns:
        ``(words, vectors)``; a word that occurs twice keeps its first vector (as in gensim).

    Raises:
        ValueError: a malformed or truncated file, named with what is wrong.
    """
    _check_readable(path)
    _check_limit(limit)
    name = str(path)
    with open(path, "rb") as f:
        first = files.read_line(f, name, 1, MAX_LINE_BYTES)
        parts = first.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            hint = "; for GloVe files (no header) use format='glove'" if len(parts) > 2 else ""
            raise ValueError(f"{name}: the first line should be the word2vec header 'count dim', "
                             f"got {first[:60]!r}{hint}")
        n, dim = int(parts[0]), int(parts[1])
        if dim == 0:
            raise ValueError(f"{name}: the header says the vectors have 0 dimensions")
        want = n if limit is None else min(n, limit)
        if binary:
            words, vectors = _read_binary(f, name, n, dim, want, unicode_errors)
        else:
            words, vectors = _read_text(f, name, dim, want, unicode_errors, start_line=2, expected=n)
    return _drop_duplicates(name, words, vectors)


def read_glove(path, limit: Optional[int] = None, unicode_errors: str = "strict"):
    """Read GloVe text: word2vec text without the header; the dimension comes from the first line."""
    _check_readable(path)
    _check_limit(limit)
    with open(path, "rb") as f:
        first = files.read_line(f, str(path), 1, MAX_LINE_BYTES)
        dim = len(first.split()) - 1
        if dim < 1:
            raise ValueError(f"{path}:1: expected a word and its numbers, got {first[:60]!r}")
        f.seek(0)
        words, vectors = _read_text(f, str(path), dim, limit, unicode_errors, start_line=1, expected=None)
    if not words:
        raise ValueError(f"{path}: the file holds no vectors")
    return _drop_duplicates(str(path), words, vectors)


def _read_binary(f, name, n, dim, want, unicode_errors):
    # Two passes: find each word (one bytes.find per row), then copy the vectors a chunk of
    # rows at a time (one join + frombuffer per chunk), which is ~3x faster than per-row copies.
    nbytes = 4 * dim
    words: List[str] = []
    offsets: List[int] = []
    pos = f.tell()
    size = os.fstat(f.fileno()).st_size
    with contextlib.ExitStack() as stack:
        buf = stack.enter_context(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) if size > pos else b""
        for i in range(want):
            while pos < size and buf[pos] == 10:  # the C tool's newline after each vector
                pos += 1
            space = buf.find(b" ", pos, pos + MAX_WORD_BYTES + 1)
            if space < 0 and size - pos > MAX_WORD_BYTES:
                raise ValueError(f"{name}: word {i + 1} is longer than {MAX_WORD_BYTES:,} bytes (no space after it); "
                                 "this is not a word2vec binary file")
            if space < 0 or size - space - 1 < nbytes:
                raise ValueError(f"{name}: expected {n} vectors, file ends after {i}; the file is truncated")
            try:
                words.append(buf[pos:space].decode("utf-8", unicode_errors))
            except UnicodeDecodeError as e:
                raise _not_utf8(name, f"word {i + 1}", e) from None
            offsets.append(space + 1)
            pos = space + 1 + nbytes
        if want and _NUMBER_BYTES.issuperset(buf[offsets[0] : offsets[0] + nbytes]):
            raise ValueError(f"{name}: this is the word2vec text format, not binary; pass binary=False or name it .txt")
        if want == n and buf[pos:].strip():
            raise ValueError(
                f"{name}: {size - pos} bytes follow the {n} vectors the header announces; "
                "the header is wrong or this is not a word2vec binary file"
            )
        vectors = np.empty((want, dim), dtype="<f4")
        flat = vectors.reshape(-1).view(np.uint8)
        for start in range(0, want, _ROWS_PER_COPY):
            chunk = b"".join([buf[o : o + nbytes] for o in offsets[start : start + _ROWS_PER_COPY]])
            flat[start * nbytes : start * nbytes + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    return words, vectors.astype(np.float32, copy=False)


def _read_text(f, name, dim, want, unicode_errors, start_line, expected):
    """Rows ``word v1 .. vD`` until EOF or ``want`` rows; ``expected`` is the header's count, if any."""
    words: List[str] = []
    blocks: List[np.ndarray] = []
    line_no = start_line - 1
    more = False  # lines past the ones wanted
    # Bounded lines: a file without newlines is refused, not read whole.
    reader = files.line_blocks(f, name, min(MAX_LINE_BYTES, MAX_WORD_BYTES + 64 * dim), start_line)
    for lines in reader:
        if want is not None and len(lines) > want - len(words):
            more = any(line.strip() for line in lines[want - len(words) :])
            lines = lines[: want - len(words)]
        rests = []
        for line in lines:
            line_no += 1
            word, _, rest = line.partition(b" ")
            rest = rest.rstrip()
            if rest.count(b" ") != dim - 1 and len(rest.split()) != dim:
                if not line.strip() and expected is None:  # blank lines at the end of a GloVe file
                    continue
                got = len(rest.split())
                hint = "; is this the binary format? pass binary=True or name it .bin" if _looks_binary(line) else ""
                raise ValueError(f"{name}:{line_no}: expected a word and {dim} numbers, got {got} numbers{hint}")
            try:
                words.append(word.decode("utf-8", unicode_errors))
            except UnicodeDecodeError as e:
                raise _not_utf8(name, f"line {line_no}", e) from None
            rests.append(rest)
        if rests:
            blocks.append(_parse_numbers(rests, dim, name, line_no - len(lines) + 1))
        if want is not None and len(words) >= want:
            break
    if expected is not None:
        if len(words) < (expected if want is None else want):
            raise ValueError(
                f"{name}: expected {expected} vectors, file ends after {len(words)}; the file is truncated"
            )
        if want == expected and (more or _anything_left(reader)):
            raise ValueError(
                f"{name}: there are more lines than the {expected} vectors the header announces; fix the header"
            )
    vectors = np.concatenate(blocks) if blocks else np.empty((0, dim), dtype=np.float32)
    return words, vectors


def _anything_left(reader) -> bool:
    """Whether the next block of lines holds anything but whitespace (a line too long counts)."""
    try:
        return any(line.strip() for line in next(reader, []))
    except ValueError:
        return True


def _parse_numbers(rests: List[bytes], dim: int, name: str, first_line: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # fromstring's "could not be read to its end"
        try:
            values = np.fromstring(b" ".join(rests), dtype=np.float32, sep=" ")
        except (ValueError, DeprecationWarning):
            values = None
    if values is not None and values.size == len(rests) * dim:
        return values.reshape(len(rests), dim)
    for k, rest in enumerate(rests):  # slow path, only to name the bad line
        for token in rest.split():
            try:
                float(token)
            except ValueError:
                raise ValueError(f"{name}:{first_line + k}: {token[:40]!r} is not a number") from None
    raise ValueError(f"{name}: could not parse the numbers near line {first_line}")  # pragma: no cover


def _looks_binary(line: bytes) -> bool:
    if _CONTROL.search(line):
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _not_utf8(name: str, where: str, e: UnicodeDecodeError) -> ValueError:
    return ValueError(
        f"{name}: {where} is not valid UTF-8 ({e.reason}); pass unicode_errors='ignore' or 'replace' "
        "(the C tool can cut long words mid-character)"
    )


def _drop_duplicates(name: str, words: List[str], vectors: np.ndarray):
    if len(set(words)) == len(words):
        return words, vectors
    seen, keep = set(), []
    for i, w in enumerate(words):
        if w not in seen:
            seen.add(w)
            keep.append(i)
    log.warning("%s: %d duplicate words; keeping the first vector of each", name, len(words) - len(keep))
    return [words[i] for i in keep], np.ascontiguousarray(vectors[keep])


# --- .npy + vocab, torch -----------------------------------------------------------------


def vocab_path_for(path) -> Path:
    """The vocabulary file written next to ``vectors.npy``: ``vectors.vocab.txt``."""
    path = Path(path)
    stem = path.name[: -len(".npy")] if path.name.endswith(".npy") else path.name
    return path.with_name(stem + ".vocab.txt")


def write_npy(path, words: Sequence[str], vectors: np.ndarray, counts=None) -> None:
    """Write ``vectors`` to ``path`` (``.npy``) and ``word count`` lines to :func:`vocab_path_for`."""
    vectors = _check_table(words, vectors)
    counts = np.zeros(len(words), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    _check_words(path, words)
    with atomic_write(vocab_path_for(path), "w") as fv, atomic_write(path, "wb") as fn:  # both or neither
        fv.writelines(f"{w} {c}\n" for w, c in zip(words, counts.tolist()))
        np.save(fn, vectors, allow_pickle=False)


def read_npy(path, vocab_path=None) -> Table:
    """Read ``vectors.npy`` and its words from ``vectors.vocab.txt``, else ``vocab.txt`` in the same folder.

    The vocab file is one ``word count`` line per row (the format of :class:`w2v.vocab.Vocab`).
    """
    path = Path(path)
    _check_readable(path)
    try:
        _check_npy_size(path)  # a header that claims more rows than the file holds allocates nothing
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e}); the file is damaged or truncated") from None
    if mapped.ndim != 2 or mapped.dtype.kind != "f":
        raise ValueError(f"{path}: expected a 2-D float array (words x dim), got {mapped.dtype} {mapped.shape}")
    candidates = [Path(vocab_path)] if vocab_path else [vocab_path_for(path), path.with_name("vocab.txt")]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{path}: its words are missing; expected {' or '.join(map(str, candidates))}")
    words, counts = read_word_counts(found)
    if len(words) != len(mapped):
        raise ValueError(f"{path} has {len(mapped)} rows but {found} lists {len(words)} words; they must match")
    vectors = np.array(mapped, dtype=np.float32, order="C")  # a copy in memory; the file is closed
    del mapped
    return words, vectors, np.asarray(counts, dtype=np.int64)


def _check_npy_size(path: Path) -> None:
    """Raise ``ValueError`` when the ``.npy`` header announces more bytes than follow it."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as f:
        read = readers.get(np.lib.format.read_magic(f))
        if read is None:  # another version: np.load's own checks
            return
        shape, _, dtype = read(f)
        have = os.fstat(f.fileno()).st_size - f.tell()
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if not dtype.hasobject and need > have:
        raise ValueError(f"the header announces a {dtype} array of shape {shape} ({need:,} bytes) but "
                         f"only {have:,} bytes follow it")


_TORCH_KIND = "w2v.vectors"


def write_torch(path, words: Sequence[str], vectors: np.ndarray, counts=None) -> None:
    """Write a dict of plain values (``index_to_key``, ``vectors`` tensor, ``counts``) that loads with
    ``torch.load(path, weights_only=True)``."""
    vectors = _check_table(words, vectors)
    obj = {
        "kind": _TORCH_KIND,
        "version": 1,
        "index_to_key": list(words),
        "vectors": torch.from_numpy(np.ascontiguousarray(vectors)),
        "counts": None if counts is None else torch.as_tensor(np.asarray(counts, dtype=np.int64)),
    }
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def read_torch(path) -> Table:
    """Read a file written by :func:`write_torch` (no pickled code is run)."""
    _check_readable(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise ValueError(
            f"{path}: not a readable torch vectors file ({type(e).__name__}); the file is damaged"
        ) from None
    if not isinstance(obj, dict) or obj.get("kind") != _TORCH_KIND or not torch.is_tensor(obj.get("vectors")):
        raise ValueError(f"{path}: a torch file, but not one of w2v's vectors files (no 'kind': '{_TORCH_KIND}')")
    vectors = obj["vectors"].detach().to(torch.float32).numpy()
    words = list(obj["index_to_key"])
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise ValueError(f"{path}: {len(words)} words but a vectors tensor of shape {tuple(vectors.shape)}")
    counts = obj.get("counts")
    return words, np.ascontiguousarray(vectors), None if counts is None else counts.numpy().astype(np.int64)


# --- checks --------------------------------------------------------------------------------


def _check_readable(path) -> None:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path")
    if p.is_dir():
        raise FileNotFoundError(f"{path} is a folder; give the vectors file inside it (e.g. vectors.bin)")
    files.check_regular(p)  # a FIFO would block, a device never end


def _check_limit(limit) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a whole number >= 0 (None reads every vector), got {limit!r}")


def _check_words(path, words: Sequence[str]) -> None:
    """Words with whitespace (or empty ones) would break the line-based formats."""
    if words and (min(map(len, words)) == 0 or _WHITESPACE.search("\0".join(words))):
        bad = next(w for w in words if not w or _WHITESPACE.search(w))
        raise ValueError(f"cannot write {path}: the word {bad!r} is empty or holds whitespace, "
                         "which the format cannot store")


def _check_table(words: Sequence[str], vectors) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise ValueError(f"{len(words)} words but vectors of shape {vectors.shape}; need one row per word")
    return np.ascontiguousarray(vectors, dtype=np.float32)
