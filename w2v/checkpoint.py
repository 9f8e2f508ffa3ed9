"""Training checkpoints: resumable state as plain tensors, lists and dicts.

A checkpoint holds both tables (one tensor each, in global id order, whatever the
sharding), the vocabulary, the resolved config and the position in training. It loads
with ``torch.load(weights_only=True)``: nothing is unpickled as code. Writes go to a
temporary file that is fsynced and renamed, so a crash mid-write leaves the previous
checkpoint intact. Exported vectors are a separate, query-only format (``w2v.formats``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

FORMAT = "w2v-checkpoint-1"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a temp file + fsync + rename."""
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


def save_checkpoint(path, model, vocab, config: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Write a checkpoint.

    Args:
        path: the file.
        model: a :class:`~w2v.model.SkipGramNS`.
        vocab: its :class:`~w2v.vocab.Vocab`.
        config: the run's resolved config as a plain dict.
        state: where training stands (``epoch``, ``words``...), plain values.
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


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupt, or not a w2v checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; give the path of a checkpoint.pt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}); it may be truncated or corrupt") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a w2v checkpoint (format {FORMAT} expected)")
    return ckpt
