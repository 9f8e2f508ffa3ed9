"""Training checkpoints: resumable state as plain tensors, lists and dicts.

A checkpoint holds both tables (one tensor each, in global id order, whatever the
sharding), the vocabulary, the resolved config and the position in training (a
:class:`~w2v.trainer.TrainState` as a dict). It loads with ``torch.load(weights_only=True)``:
nothing is unpickled as code. Exported vectors are a separate, query-only format
(``w2v.formats``).

Writes go to a hidden temporary file named after its writer (:mod:`w2v.safefile`) that is
fsynced and renamed, and the folder is fsynced after the rename: a process killed at any
moment leaves either the old file or the new one, never a partial file under a
checkpoint's name. A run folder holds ``checkpoint.pt`` (written the moment training
ends, before evaluation and export) and ``checkpoints/checkpoint-W.pt`` (periodic and on
SIGINT/SIGTERM; ``W`` is the corpus position in words, zero-padded so names sort in
training order; the newest ``keep`` are kept).

What a checkpoint holds is checked when it is read: a CRC-32 of each table, of the counts
and of the words (computed block by block, so a 3M x 300 table costs no extra memory)
catches bytes changed on disk, and the corpus record (its token count and a fingerprint
of its token stream, :attr:`w2v.token_cache.EncodedCorpus.fingerprint`) tells a resumed run
whether it reads the same corpus. Whether a run may resume from a checkpoint, and putting
its tables back into a model, is :mod:`w2v.resume`'s job.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .embedding import join_shards, shard_sizes
# Resuming has a module of its own; its functions are still importable from here.
from .resume import check_corpus, check_resumable, restore_tables  # noqa: F401
from .safefile import atomic_write, sweep

FORMAT = "w2v-checkpoint-1"
FINAL = "checkpoint.pt"  # written when training ends
FOLDER = "checkpoints"  # periodic checkpoints, inside a run folder
PREFIX = "checkpoint-"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a hidden temp file + fsync + rename + folder fsync.

    Raises:
        OSError: the write failed (a full disk...); nothing is left behind.
    """
    with atomic_write(path, "wb", fsync=True) as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch reports a failed write as its own error, with the OSError as context
            cause = e.__context__
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            if cause is None:
                raise
            raise cause from None


_CHECKSUMMED = ("input", "output", "counts", "words")
_BLOCK = 1 << 24  # bytes hashed per call


def checksum(value) -> str:
    """A CRC-32 of a tensor's bytes, or of a list of words, as ``crc32:XXXXXXXX``.

    A tensor is read through a byte view, block by block: no copy, whatever its size
    (a 3M x 300 float32 table hashes at about 4 GB/s).

    >>> checksum(torch.zeros(2, 3)), checksum(["<unk>", "the"])
    ('crc32:a3c1ca20', 'crc32:c1ae22ca')
    """
    crc = 0
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        view = memoryview(flat)
        for a in range(0, len(view), _BLOCK):
            crc = zlib.crc32(view[a : a + _BLOCK], crc)
    else:
        crc = zlib.crc32("\n".join(value).encode("utf-8", "surrogatepass"))
    return f"crc32:{crc:08x}"


def _world(model) -> Tuple[int, int]:
    return getattr(model.input, "rank", 0), getattr(model.input, "world_size", 1)


def save_checkpoint(
    path, model, vocab, config: Dict[str, Any], state: Dict[str, Any], tables=None, corpus: Optional[Dict[str, Any]] = None
) -> None:
    """Write a checkpoint.

    A model whose tables are spread over several processes writes this rank's shards and
    where they belong (``"shard"``); each rank writes its own file.

    Args:
        path: the file.
        model: a :class:`~w2v.model.SkipGramNS`.
        vocab: its :class:`~w2v.vocab.Vocab`.
        config: the run's resolved config as a plain dict.
        state: where training stands (``TrainState.to_dict()``), plain values.
        tables: ``(input, output)`` whole tables already gathered, instead of the model's.
        corpus: what identifies the corpus (``{"tokens": N, "fingerprint": ...}``), checked
            by :func:`check_corpus` when a run resumes.
    """
    extra: Dict[str, Any] = {}
    rank, world = _world(model)
    if tables is None and world > 1:
        tables = model.input.shards[0], model.output.shards[0]
        extra["shard"] = {
            "rank": rank, "world_size": world, "partition_strategy": model.input.partition_strategy,
            "num_embeddings": model.input.num_embeddings,
        }
    elif tables is None:
        tables = model.input.weight, model.output.weight
    ckpt = {
        "format": FORMAT,
        **extra,
        "input": _own_storage(tables[0]),
        "output": _own_storage(tables[1]),
        "words": list(vocab.index_to_key),
        "counts": torch.as_tensor(vocab.counts),
        "config": config,
        "state": dict(state),
    }
    if corpus is not None:
        ckpt["corpus"] = dict(corpus)
    ckpt["checksums"] = {name: checksum(ckpt[name]) for name in _CHECKSUMMED}
    atomic_torch_save(ckpt, path)


def _own_storage(table: torch.Tensor) -> torch.Tensor:
    """``table`` on the CPU, as a tensor whose storage is exactly its values.

    ``torch.save`` writes a tensor's whole storage, so a view into a larger buffer (a shard
    of a flat table) is copied first; a whole table is written as it is (no 15 MB copy per
    100 x 39k table).
    """
    t = table.detach().cpu()
    whole = t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    return t if whole else t.clone()


def rank_suffix(rank: int, world_size: int) -> str:
    """What tells one rank's periodic checkpoint from another's: ``""`` for a single process."""
    return "" if world_size == 1 else f".rank{rank}of{world_size}"


_NAME = re.compile(r"^checkpoint-(\d+)(?:\.rank(\d+)of(\d+))?\.pt$")


def _periodic(where: Path) -> Dict[int, Dict[int, Path]]:
    """Periodic checkpoints in ``where`` by position, then by rank (-1: a single process's)."""
    found: Dict[int, Dict[int, Path]] = {}
    for p in where.glob(f"{PREFIX}*.pt"):
        m = _NAME.match(p.name)
        if m and p.is_file():
            rank = -1 if m.group(2) is None else int(m.group(2))
            found.setdefault(int(m.group(1)), {})[rank] = p
    return found


def _complete(ranks: Dict[int, Path]) -> bool:
    if -1 in ranks:
        return True
    m = _NAME.match(next(iter(ranks.values())).name)
    return sorted(ranks) == list(range(int(m.group(3))))


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The checkpoint to resume a run folder from.

    ``checkpoint.pt`` when training ended there, else the newest ``checkpoints/checkpoint-*.pt``
    (or ``checkpoint-*.pt`` when ``folder`` is that ``checkpoints`` folder itself); of a run
    over several processes, the newest position every rank saved (its rank-0 file).
    Temporary files of an interrupted write are hidden and never chosen.

    Raises:
        FileNotFoundError: the folder holds no checkpoint.
    """
    folder = Path(folder)
    if (folder / FINAL).is_file():
        return folder / FINAL
    for where in (folder / FOLDER, folder):
        found = {w: ranks for w, ranks in _periodic(where).items() if _complete(ranks)}
        if found:
            ranks = found[max(found)]
            return ranks.get(-1, ranks.get(0))
    raise FileNotFoundError(
        f"no checkpoint in {folder}; give train.resume a checkpoint file or a run folder "
        f"holding {FINAL} or {FOLDER}/{PREFIX}*.pt"
    )


def _read(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; give the path of a checkpoint file or a run folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(e).__name__}); it may be truncated or corrupt: "
            f"{_earlier_hint(path)}"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a w2v checkpoint (format {FORMAT} expected)")
    problem = _inconsistency(ckpt) or _bad_checksum(ckpt)
    if problem:
        raise ValueError(f"{path} is a damaged checkpoint: {problem}; {_earlier_hint(path)}")
    ckpt["path"] = str(path)
    return ckpt


def _bad_checksum(ckpt: Dict[str, Any]) -> Optional[str]:
    """Which part no longer matches the checksum written with it, or ``None`` (also for a
    checkpoint written before checksums were)."""
    sums = ckpt.get("checksums")
    if not isinstance(sums, dict):
        return None
    for name in _CHECKSUMMED:
        if name in sums and checksum(ckpt[name]) != sums[name]:
            what = {"input": "input table", "output": "output table"}.get(name, name)
            return f"its {what} no longer matches the checksum written with it (bytes changed on disk)"
    return None


def _earlier(path: Path) -> Optional[Path]:
    """The newest complete checkpoint of the same run that is older than ``path``, if any."""
    m = _NAME.match(path.name)
    if path.name == FINAL:
        where, before = path.parent / FOLDER, None
    elif m is not None:
        where, before = path.parent, int(m.group(1))
    else:
        return None
    found = {w: ranks for w, ranks in _periodic(where).items() if _complete(ranks) and (before is None or w < before)}
    if not found:
        return None
    ranks = found[max(found)]
    return ranks.get(-1, ranks.get(0))


def _earlier_hint(path: Path) -> str:
    earlier = _earlier(path)
    if earlier is not None:
        return f"resume from an earlier one, train.resume={earlier}"
    return f"resume from an earlier one (the run's {FOLDER}/ folder keeps the last few)"


_RANK_SUMS = ("epoch_pairs", "epoch_loss_sum", "epoch_loss_pairs")  # TrainState fields counted per rank


def load_checkpoint(path: str | os.PathLike, rank: int = 0, world_size: int = 1) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a folder means its latest.

    A checkpoint of a run over ``N`` processes is ``N`` files (any one names the set). With
    ``world_size == N`` this reads rank ``rank``'s own file; with any other world size it
    reads all ``N`` and joins the shards into whole tables (the layer's resharding), which
    every rank then splits its own way. Loss totals counted per rank go to rank 0.

    Raises:
        FileNotFoundError: no such file, a folder without checkpoints, or a missing rank's file.
        ValueError: the file is truncated, corrupt, or not a w2v checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    m = _NAME.match(path.name)
    if m is None or m.group(2) is None:  # whole tables
        ckpt = _read(path)
        if rank:
            ckpt["state"].update({k: 0 for k in _RANK_SUMS if k in ckpt["state"]})
        return ckpt
    saved_world = int(m.group(3))
    def rank_file(r: int) -> Path:
        return path.with_name(f"{PREFIX}{m.group(1)}{rank_suffix(r, saved_world)}.pt")
    if saved_world == world_size:
        return _read(rank_file(rank))
    parts = [_read(rank_file(r)) for r in range(saved_world)]
    ckpt = parts[0]
    strategy = ckpt["shard"]["partition_strategy"]
    for name in ("input", "output"):
        ckpt[name] = join_shards([p[name] for p in parts], strategy)
    for key in _RANK_SUMS:
        ckpt["state"][key] = 0 if rank else type(ckpt["state"][key])(sum(p["state"][key] for p in parts))
    del ckpt["shard"]
    ckpt.pop("checksums", None)  # each part was verified; the joined tables are new values
    return ckpt


def _inconsistency(ckpt: Dict[str, Any]) -> Optional[str]:
    """What does not add up in a loaded checkpoint, or ``None``."""
    tables = ckpt.get("input"), ckpt.get("output")
    if not all(isinstance(t, torch.Tensor) and t.dim() == 2 for t in tables):
        return "its tables are missing"
    if tables[0].shape != tables[1].shape:
        return f"its tables differ in shape ({tuple(tables[0].shape)} and {tuple(tables[1].shape)})"
    rows = len(tables[0])
    shard = ckpt.get("shard")
    if shard is not None:  # one rank's rows of the tables
        try:
            rows = shard["num_embeddings"]
            expected = shard_sizes(rows, shard["world_size"], shard["partition_strategy"])[shard["rank"]]
        except (KeyError, TypeError, IndexError, ValueError):
            return "its shard record is unreadable"
        if len(tables[0]) != expected:
            return f"its tables hold {len(tables[0])} rows, rank {shard['rank']}'s shard has {expected}"
    words, counts = ckpt.get("words"), ckpt.get("counts")
    if not isinstance(words, list) or not isinstance(counts, torch.Tensor) or not len(words) == len(counts) == rows:
        return f"its vocabulary does not match its {rows} table rows"
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state"), dict):
        return "its config or training state is missing"
    return None


class CheckpointFolder:
    """Periodic checkpoints of a run: ``folder/checkpoint-W.pt``, the newest ``keep`` kept.

    Each rank of a run over several processes keeps its own files,
    ``checkpoint-W.rankRofN.pt``; when every rank holds the same whole tables
    (``replicated``), rank 0 alone writes ``checkpoint-W.pt``.

    Args:
        folder: where they go (created on the first save).
        keep: how many to keep; 0 keeps them all.
        rank, world_size: this process's place in the run.
        corpus: the corpus record every checkpoint carries (see :func:`save_checkpoint`).
        replicated: every rank holds the same whole tables when a checkpoint is taken.
    """

    def __init__(
        self, folder: str | os.PathLike, keep: int = 3, rank: int = 0, world_size: int = 1,
        corpus: Optional[Dict[str, Any]] = None, replicated: bool = False,
    ) -> None:
        self.folder, self.keep, self.corpus = Path(folder), keep, corpus
        self.suffix = "" if replicated else rank_suffix(rank, world_size)
        self.writes = rank == 0 or not replicated

    def path(self, words: int) -> Path:
        return self.folder / f"{PREFIX}{words:015d}{self.suffix}.pt"

    def save(self, model, vocab, config: Dict[str, Any], state: Dict[str, Any]) -> Path:
        """Write the checkpoint of ``state`` (named by ``state['words']``), then prune; return its path."""
        path = self.path(int(state["words"]))
        if self.writes:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, model, vocab, config, state, corpus=self.corpus)
            self.prune()
        return path

    def checkpoints(self) -> List[Path]:
        """This process's complete checkpoints, oldest first."""
        rank = -1 if not self.suffix else int(self.suffix[5 : self.suffix.index("of")])
        return [ranks[rank] for _, ranks in sorted(_periodic(self.folder).items()) if rank in ranks]

    def prune(self) -> None:
        """Remove all but the newest ``keep``, and temp files left by killed processes."""
        if self.keep:
            for old in self.checkpoints()[: -self.keep]:
                old.unlink(missing_ok=True)
        sweep(self.folder)
