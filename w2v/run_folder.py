"""Where a run's files go: the run folder it holds, and spare folders when that one is full.

A run folder is held by one run at a time (:mod:`w2v.runlock`); :func:`claim_folders`
checks that it and the export folder take files, and sweeps what killed runs left there.
:class:`RunCheckpoints` writes the checkpoints of a run so that nothing trained is lost
to a full disk (:mod:`w2v.stopping`): a periodic checkpoint without room is a warning, a
stop's checkpoint and the trained tables go to a spare folder (:func:`spare_folders`)
when the run folder has no room, and the message of a run that cannot save names the
last checkpoint there is.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import torch.distributed as dist

from .checkpoint import FINAL, FOLDER, CheckpointFolder, save_checkpoint
from .monitor import say
from .runlock import RunLock
from .safefile import reason, sweep


def writable(folder: Path, key: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it.

    Args:
        key: the setting that names the folder (``export.dir``), for the message.

    Raises:
        ValueError: the folder cannot be created or written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{key}={folder} is not writable ({e.strerror or e}); choose a folder you can write to") from None
    return folder


def claim_folders(cfg, output_dir, main: bool, world: int) -> Tuple[Path, Path, Optional[RunLock]]:
    """The run folder (rank 0's for every rank), held by rank 0 alone, and the export folder.

    Raises:
        ValueError: a folder is not writable, or another live run holds the run folder.
    """
    lock, problem = None, None
    if main:
        try:
            lock = RunLock(writable(Path(output_dir), "hydra.run.dir"))
        except ValueError as e:
            problem = str(e)
    if world > 1:  # every rank writes into rank 0's run folder, and stops with it
        shared = [str(output_dir), problem]
        dist.broadcast_object_list(shared, src=0)
        output_dir, problem = shared
    if problem:
        raise ValueError(problem)
    try:
        out = writable(Path(output_dir), "hydra.run.dir")
        export_dir = writable(Path(cfg.export.dir), "export.dir") if cfg.export.dir else out
    except ValueError:
        if lock is not None:
            lock.release()
        raise
    if main:  # what killed runs left: temp files of exports and checkpoints
        for folder in (out, out / FOLDER, export_dir):
            sweep(folder)
    return out, export_dir, lock


def spare_folders(out: Path, export_dir: Path) -> Iterator[Path]:
    """Where the trained tables go when the run folder has no room: beside the vectors, else $TMPDIR.

    Lazily: finding $TMPDIR writes a probe file there (~30 ms), asked only when needed; a
    machine with no usable temp folder has one spare folder fewer.
    """
    yield export_dir
    try:
        tmp = tempfile.gettempdir()
    except OSError:  # no writable temp folder at all: the caller names the folders it tried
        return
    yield Path(tmp) / f"w2v-saved-{out.name}-{os.getpid()}"


def save_somewhere(name: str, write: Callable[[Path], None], folders: Iterable[Path]) -> Tuple[Optional[Path], List[str]]:
    """``write(folder / name)`` into the first of ``folders`` that takes it (each folder tried once).

    Returns:
        the path written (``None``: none took it), and why each folder tried before refused.
    """
    refused: List[str] = []
    tried = set()
    for folder in folders:
        if folder in tried:
            continue
        tried.add(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write(folder / name)
            return folder / name, refused
        except OSError as e:
            refused.append(f"{folder} ({reason(e)})")
    return None, refused


class RunCheckpoints:
    """The checkpoints a run writes: periodic ones and a stop's while it trains, then the trained tables.

    Args:
        folder: the run's periodic checkpoints.
        model, vocab, config: what each checkpoint holds (see :func:`~w2v.checkpoint.save_checkpoint`).
        out: the run folder.
        export_dir: the export folder, the first spare folder.
        world: how many processes run; a stop's checkpoint goes to a spare folder with one only.
        resumed_from: the checkpoint the run continues from, if any.
        signals: the run's :class:`~w2v.stopping.RunSignals` (whether a signal asked to stop).
        note: a line on stderr while training (from rank 0, clear of the progress bar).

    Attributes:
        saved: the checkpoints written, oldest first.
        unsaved: why the checkpoint of a stop could not be written.
    """

    def __init__(
        self, folder: CheckpointFolder, model, vocab, config, out: Path, export_dir: Path, world: int,
        resumed_from: Optional[str], signals, note: Callable[[str], None],
    ) -> None:
        self.folder, self.model, self.vocab, self.config = folder, model, vocab, config
        self.out, self.export_dir, self.world, self.resumed_from = out, export_dir, world, resumed_from
        self.signals, self.note = signals, note
        self.saved: list = []
        self.unsaved: list = []

    @property
    def last(self):
        """The latest checkpoint there is: the last one saved, else the one resumed from (``None``: none)."""
        return self.saved[-1] if self.saved else self.resumed_from

    def save(self, state) -> None:
        """A periodic checkpoint, or a stop's; a full disk is a warning, and a stop's state is kept elsewhere.

        Args:
            state: the :class:`~w2v.state.TrainState` to save (the trainer's ``checkpoint`` callback).
        """
        model, vocab, config, checkpoints = self.model, self.vocab, self.config, self.folder
        try:
            path = checkpoints.save(model, vocab, config, state.to_dict())
        except OSError as e:
            refused, path = [f"{checkpoints.folder} ({reason(e)})"], None
            stopping = self.signals.received is not None
            if stopping and self.world == 1:  # a stop: this state must be kept somewhere
                path, more = save_somewhere(
                    checkpoints.path(state.words).name,
                    lambda p: save_checkpoint(p, model, vocab, config, state.to_dict(), corpus=checkpoints.corpus),
                    (f / FOLDER for f in spare_folders(self.out, self.export_dir) if f / FOLDER != checkpoints.folder),
                )
                refused += more
            if path is None:
                if stopping:
                    self.unsaved.append("; ".join(refused))
                else:
                    self.note(
                        f"warning: no checkpoint at {state.words:,} words: cannot write into {'; '.join(refused)}; "
                        "training goes on (free space there)" + (f"; the last saved is {self.saved[-1]}" if self.saved else "")
                    )
                return
            self.note(f"warning: cannot write into {refused[0]}; the checkpoint goes to {path} instead")
        self.saved.append(path)
        self.note(f"checkpoint: {self.saved[-1]} (epoch {state.epoch + 1}, {state.words:,} words)")

    def keep_trained(self, state, tables, trained_words: int) -> Path:
        """Write the trained tables as ``checkpoint.pt``: into the run folder, else a spare folder.

        Args:
            state: where training ended (a :class:`~w2v.state.TrainState`).
            tables: both whole tables, ``(input, output)``.
            trained_words: the words this run trained (0: training had ended in the checkpoint resumed from).

        Returns:
            the file (the checkpoint resumed from, when it is this folder's and nothing was trained).

        Raises:
            ValueError: no folder took it; the message names the last checkpoint saved.
        """
        out, resumed_from = self.out, self.resumed_from
        if not trained_words and resumed_from and Path(resumed_from) == out / FINAL:
            return Path(resumed_from)  # already here, whole
        path, refused = save_somewhere(FINAL, lambda p: save_checkpoint(
            p, self.model, self.vocab, self.config, state.to_dict(), tables=tables, corpus=self.folder.corpus
        ), itertools.chain([out], spare_folders(out, self.export_dir)))
        if path is None:
            last = self.last
            then = f"resume from the last checkpoint, train.resume={last}" if last else "train again"
            raise ValueError(f"cannot save the trained tables: no room in {'; '.join(refused)}; free space, then {then}")
        if refused:
            say(f"warning: cannot write {FINAL} into {refused[0]}; the trained tables are saved in {path} instead", err=True)
        return path
