"""Training checkpoints: resumable state as plain tensors, lists and dicts.

A checkpoint holds both tables (one tensor each, in global id order, whatever the
sharding), the vocabulary, the resolved config and the position in training (a
:class:`~w2v.trainer.TrainState` as a dict). It loads with ``torch.load(weights_only=True)``:
nothing is unpickled as code. Exported vectors are a separate, query-only format
(``w2v.formats``).

Writes go to a hidden temporary file (``.NAME.tmp-PID``) that is fsynced and renamed, and
the folder is fsynced after the rename: a process killed at any moment leaves either the
old file or the new one, never a partial file under a checkpoint's name. A run folder
holds ``checkpoint.pt`` (written when training ends) and ``checkpoints/checkpoint-W.pt``
(periodic and on SIGINT/SIGTERM; ``W`` is the corpus position in words, zero-padded so
names sort in training order; the newest ``keep`` are kept).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from .embedding import split_table

FORMAT = "w2v-checkpoint-1"
FINAL = "checkpoint.pt"  # written when training ends
FOLDER = "checkpoints"  # periodic checkpoints, inside a run folder
PREFIX = "checkpoint-"

# Settings a resumed run must share with the checkpoint's: they fix the vocabulary (which
# comes from the checkpoint) and what a position in the token stream means.
_MUST_MATCH = ("data.token_pattern", "data.lowercase", "data.min_count", "data.max_vocab_size", "train.chunk_tokens")
# Settings that may change on resume, at the price of a run that no longer equals an
# uninterrupted one; a resumed run names each one that changed.
_TRAJECTORY = (
    "train.epochs", "train.window", "train.negatives", "train.ns_exponent", "train.sample", "train.lr",
    "train.min_lr", "train.batch_size", "train.shared_negatives", "train.seed", "train.kernel",
)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a hidden temp file + fsync + rename + folder fsync."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path, model, vocab, config: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Write a checkpoint.

    Args:
        path: the file.
        model: a :class:`~w2v.model.SkipGramNS`.
        vocab: its :class:`~w2v.vocab.Vocab`.
        config: the run's resolved config as a plain dict.
        state: where training stands (``TrainState.to_dict()``), plain values.
    """
    atomic_torch_save(
        {
            "format": FORMAT,
            "input": model.input.weight.detach().cpu().clone(),
            "output": model.output.weight.detach().cpu().clone(),
            "words": list(vocab.index_to_key),
            "counts": torch.as_tensor(vocab.counts),
            "config": config,
            "state": dict(state),
        },
        path,
    )


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The checkpoint to resume a run folder from.

    ``checkpoint.pt`` when training ended there, else the newest ``checkpoints/checkpoint-*.pt``
    (or ``checkpoint-*.pt`` when ``folder`` is that ``checkpoints`` folder itself). Temporary
    files of an interrupted write are hidden and never chosen.

    Raises:
        FileNotFoundError: the folder holds no checkpoint.
    """
    folder = Path(folder)
    if (folder / FINAL).is_file():
        return folder / FINAL
    for where in (folder / FOLDER, folder):
        found = sorted(p for p in where.glob(f"{PREFIX}*.pt") if p.is_file())
        if found:
            return found[-1]
    raise FileNotFoundError(
        f"no checkpoint in {folder}; give train.resume a checkpoint file or a run folder "
        f"holding {FINAL} or {FOLDER}/{PREFIX}*.pt"
    )


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a folder means its latest.

    Raises:
        FileNotFoundError: no such file, or a folder without checkpoints.
        ValueError: the file is truncated, corrupt, or not a w2v checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; give the path of a checkpoint file or a run folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(e).__name__}); it may be truncated or corrupt: "
            f"resume from an earlier one (the run's {FOLDER}/ folder keeps the last few)"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a w2v checkpoint (format {FORMAT} expected)")
    problem = _inconsistency(ckpt)
    if problem:
        raise ValueError(f"{path} is a damaged checkpoint: {problem}; resume from an earlier one")
    ckpt["path"] = str(path)
    return ckpt


def _inconsistency(ckpt: Dict[str, Any]) -> Optional[str]:
    """What does not add up in a loaded checkpoint, or ``None``."""
    tables = ckpt.get("input"), ckpt.get("output")
    if not all(isinstance(t, torch.Tensor) and t.dim() == 2 for t in tables):
        return "its tables are missing"
    if tables[0].shape != tables[1].shape:
        return f"its tables differ in shape ({tuple(tables[0].shape)} and {tuple(tables[1].shape)})"
    words, counts = ckpt.get("words"), ckpt.get("counts")
    if not isinstance(words, list) or not isinstance(counts, torch.Tensor) or not len(words) == len(counts) == len(tables[0]):
        return f"its vocabulary does not match its {len(tables[0])} table rows"
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state"), dict):
        return "its config or training state is missing"
    return None


class CheckpointFolder:
    """Periodic checkpoints of a run: ``folder/checkpoint-W.pt``, the newest ``keep`` kept.

    Args:
        folder: where they go (created on the first save).
        keep: how many to keep; 0 keeps them all.
    """

    def __init__(self, folder: str | os.PathLike, keep: int = 3) -> None:
        self.folder, self.keep = Path(folder), keep

    def path(self, words: int) -> Path:
        return self.folder / f"{PREFIX}{words:015d}.pt"

    def save(self, model, vocab, config: Dict[str, Any], state: Dict[str, Any]) -> Path:
        """Write the checkpoint of ``state`` (named by ``state['words']``), then prune; return its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(int(state["words"]))
        save_checkpoint(path, model, vocab, config, state)
        self.prune()
        return path

    def checkpoints(self) -> List[Path]:
        """The complete checkpoints, oldest first."""
        return sorted(p for p in self.folder.glob(f"{PREFIX}*.pt") if p.is_file())

    def prune(self) -> None:
        """Remove all but the newest ``keep``, and temp files left by killed processes."""
        if self.keep:
            for old in self.checkpoints()[: -self.keep]:
                old.unlink(missing_ok=True)
        for tmp in self.folder.glob(f".{PREFIX}*.pt.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def restore_tables(model, ckpt: Dict[str, Any]) -> None:
    """Copy the checkpoint's tables into ``model`` (any sharding), exactly.

    Raises:
        ValueError: the model's shape differs from the checkpoint's.
    """
    with torch.no_grad():
        for layer, table in ((model.input, ckpt["input"]), (model.output, ckpt["output"])):
            if tuple(table.shape) != (layer.num_embeddings, layer.embedding_dim):
                raise ValueError(
                    f"the checkpoint's tables are {tuple(table.shape)}, the model's "
                    f"{(layer.num_embeddings, layer.embedding_dim)}; set model.dim={table.shape[1]}"
                )
            for shard, part in zip(layer.shards, split_table(table, layer.num_shards, layer.partition_strategy)):
                shard.copy_(part)


def _get(config: Dict[str, Any], dotted: str):
    section, key = dotted.split(".")
    return (config.get(section) or {}).get(key)


def check_resumable(ckpt: Dict[str, Any], config: Dict[str, Any]) -> List[str]:
    """Check that a run with ``config`` can continue from ``ckpt``.

    Args:
        ckpt: from :func:`load_checkpoint`.
        config: the new run's resolved config as a plain dict.

    Returns:
        one line per setting that changed but may (``train.lr=0.01, the checkpoint's run
        had 0.025``); the resumed run then differs from an uninterrupted one.

    Raises:
        ValueError: the vectors' size or the vocabulary settings differ; the message names
            the setting to use.
    """
    where = ckpt.get("path", "the checkpoint")
    dim = ckpt["input"].shape[1]
    if _get(config, "model.dim") != dim:
        raise ValueError(
            f"train.resume: {where} holds vectors of model.dim={dim} but this run asks for "
            f"model.dim={_get(config, 'model.dim')}; set model.dim={dim} or start without train.resume"
        )
    saved = ckpt["config"]
    for key in _MUST_MATCH:
        if _get(saved, key) != _get(config, key):
            raise ValueError(
                f"train.resume: {where} was trained with {key}={_get(saved, key)} but this run asks for "
                f"{key}={_get(config, key)}; set {key}={_get(saved, key)} (the vocabulary and positions "
                "come from the checkpoint) or start without train.resume"
            )
    return [
        f"{key}={_get(config, key)}, the checkpoint's run had {_get(saved, key)}"
        for key in _TRAJECTORY
        if _get(saved, key) != _get(config, key)
    ]
