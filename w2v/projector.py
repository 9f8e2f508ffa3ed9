"""Vectors for TensorBoard's embedding projector, written where ``SummaryWriter.add_embedding`` puts them.

A run shows its most frequent words' vectors in the projector at each evaluation. The files
are those of ``add_embedding``: under the TensorBoard folder, ``STEP/TAG/tensors.tsv`` (a row
of tab-separated values per word) and ``STEP/TAG/metadata.tsv`` (a word per line), listed
in ``projector_config.pbtxt``. Written here instead because ``add_embedding`` formats each
value with a Python call (a quarter of a second for 2,000 words of 100 values, on the path
of every run's end), prints a warning when a resumed run writes a step again, and keeps
only its own writer's entries in the listing. Here the listing is rebuilt from the folders
there are, so a resumed run's projections join the earlier ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from .float_text import scientific
from .safefile import atomic_write

CONFIG = "projector_config.pbtxt"


def write_projector(logdir: str | Path, vectors: np.ndarray, words: Sequence[str], step: int, tag: str = "input") -> Path:
    """Write ``vectors`` and their ``words`` for the projector of the TensorBoard run in ``logdir``.

    Args:
        logdir: the folder of the run's TensorBoard events.
        vectors: ``(n, D)`` the rows to show.
        words: the ``n`` words they stand for (no tabs or newlines: vocabulary words).
        step: the training step they were taken at (a second write of a step replaces the first).
        tag: the name the projector lists them under, with the step: ``input:00042``.

    Returns:
        the folder of the two ``.tsv`` files.

    Raises:
        OSError: a file could not be written (a full disk); the listing is left as it was.
    """
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.ndim != 2 or len(rows) != len(words):
        raise ValueError(f"the projector takes (n, D) vectors and n words, got {rows.shape} and {len(words)} words")
    logdir = Path(logdir)
    folder = logdir / _subdir(step, tag)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "metadata.tsv", "wb") as f:
        f.write("".join(f"{w}\n" for w in words).encode("utf-8"))
    text, _ = scientific(rows)
    with atomic_write(folder / "tensors.tsv", "wb") as f:
        f.write(text.replace(b" ", b"\t"))
    with atomic_write(logdir / CONFIG, "w") as f:
        f.write(projector_config(logdir))
    return folder


def projector_config(logdir: str | Path) -> str:
    """``projector_config.pbtxt`` (protobuf text) listing every ``STEP/TAG/tensors.tsv`` under ``logdir``."""
    entries: List[str] = []
    for tensors in sorted(Path(logdir).glob("[0-9]*/*/tensors.tsv")):
        step, tag = tensors.parent.parent.name, tensors.parent.name
        if not step.isdigit():
            continue
        subdir = f"{step}/{tag}"
        lines = [f'  tensor_name: "{_quoted(_decode(tag))}:{step}"']
        if (tensors.parent / "metadata.tsv").is_file():
            lines.append(f'  metadata_path: "{_quoted(subdir)}/metadata.tsv"')
        lines.append(f'  tensor_path: "{_quoted(subdir)}/tensors.tsv"')
        entries.append("embeddings {\n" + "\n".join(lines) + "\n}\n")
    return "".join(entries)


def _subdir(step: int, tag: str) -> str:
    """``add_embedding``'s folder name: the step in 5 digits, then the tag with ``%``, ``/``, ``\\`` escaped."""
    return f"{step:05d}/{_encode(tag)}"


def _encode(tag: str) -> str:
    return tag.replace("%", "%25").replace("/", "%2f").replace("\\", "%5c")


def _decode(name: str) -> str:
    return name.replace("%5c", "\\").replace("%2f", "/").replace("%25", "%")


def _quoted(text: str) -> str:
    """A string as protobuf text quotes it (backslash and double quote escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
