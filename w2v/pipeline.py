"""The whole run as a plain function of a config: corpus in, vectors out.

:func:`train` takes a config (a :class:`~w2v.config.Config` or the ``DictConfig`` Hydra
composes) and an output folder and returns the run's metrics, so tests and notebooks call
it without a command line (:mod:`w2v.train` is the command line over it). It reads as the
run's stages, each in a module of its own: the folders claimed (:mod:`w2v.run_folder`),
the corpus, vocabulary and model prepared (:mod:`w2v.prepare`), training shown by
:mod:`w2v.monitor` and evaluated between epochs (:mod:`w2v.run_eval`), then the trained
tables saved, evaluated and exported (:mod:`w2v.finish`).

While training, SIGINT (Ctrl-C) and SIGTERM stop the run at the next chunk boundary
after saving a checkpoint (:class:`~w2v.trainer.TrainingInterrupted`). Nothing trained is
lost (:mod:`w2v.stopping`): the moment training ends the tables go to ``checkpoint.pt``
(elsewhere, with a warning, when the run folder has no room), before evaluation,
projector and export; a signal or a failed write after that names the file, and
``train.resume`` on a finished run only evaluates and exports. A run folder is held by one
run at a time (:mod:`w2v.runlock`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Dict

from . import parallel
from .budget import check_run
from .checkpoint import FOLDER, CheckpointFolder
from .config_rules import validate
from .finish import finish
from .monitor import Monitor, NoWriter, open_tensorboard, quiet
from .monitor import say as _say  # a line of the run; prepare's `say` is rank 0's only
from .prepare import data_file, prepare, resolve_device
from .run_eval import RunEvaluation, whole_tables, word_vectors
from .run_folder import RunCheckpoints, claim_folders
from .safefile import reason
from .stopping import RunSignals
from .trainer import TrainingDiverged, TrainingInterrupted


def train(cfg, output_dir: str | Path = ".") -> Dict[str, Any]:
    """Run the whole pipeline and write the outputs into ``output_dir``.

    Writes ``vocab.txt``, ``checkpoint.pt`` (the moment training ends, before anything
    else), ``vectors.bin``/``vectors.txt`` (per ``export.formats``, into ``export.dir`` if
    set), ``metrics.json``, TensorBoard events under ``tb/`` and, when
    ``train.checkpoint_every_*`` asks or a signal stops the run, ``checkpoints/checkpoint-W.pt``.
    The run folder is held by this run until it returns.

    Returns:
        metrics: words/s, final loss, evaluation scores, vocabulary size...

    Raises:
        ValueError, FileNotFoundError: a user mistake, or a folder without room; the
            message names the fix (and where the trained tables are, once trained).
        TrainingDiverged: the loss became NaN or infinite (the message names the last good
            checkpoint).
        TrainingInterrupted: SIGINT or SIGTERM while training; its ``checkpoint`` attribute
            is the file saved (``None`` when none could be; ``unsaved`` then says why).
        FinishingInterrupted: SIGINT or SIGTERM after training; its ``checkpoint`` holds the
            trained tables.
    """
    run_started = time.perf_counter()
    validate(cfg)
    logging.getLogger("w2v.evaluate").setLevel(logging.WARNING)  # the run prints its own summary
    device = parallel.local_device(resolve_device(cfg.train.device))
    # Under torchrun: join the other processes. Rank 0 alone prints, logs and writes files.
    parallel.init_from_env(device, cfg.train.dist_timeout_seconds)
    rank, world = parallel.rank_and_size()
    check_run(cfg, device, world)  # what the settings will allocate, before allocating it
    analogies, similarity = data_file(cfg.eval.analogies), data_file(cfg.eval.similarity)
    out, export_dir, lock = claim_folders(cfg, output_dir, rank == 0, world)
    with contextlib.ExitStack() as held:  # the run folder's lock, the signal handlers: released on return
        if lock is not None:
            held.callback(lock.release)
        return _train(cfg, out, export_dir, device, rank, world, analogies, similarity, held, run_started)


def _train(
    cfg, out: Path, export_dir: Path, device, rank: int, world: int, analogies, similarity, held, run_started,
) -> Dict[str, Any]:
    """:func:`train` once its folders are claimed; ``held`` releases what it installs when the run ends."""
    main = rank == 0
    config = _plain(cfg)
    run = prepare(cfg, config, device, rank, world, say=_say if main else quiet)
    model, vocab, trainer, corpus = run.model, run.vocab, run.trainer, run.corpus
    if main:
        _save_vocab(vocab, out)

    def note(text: str) -> None:
        """A line on stderr from rank 0, clear of the progress bar."""
        if main:
            monitor.say(text, err=True)

    resumed_at = run.start.words if run.start else None  # TensorBoard hides what the stopped run logged after it
    writer = open_tensorboard(out / "tb", note, purge_step=resumed_at) if main else NoWriter()
    monitor = Monitor(trainer.total_words, len(corpus), writer, cfg.train.progress and main, run.start.words if run.start else 0)
    metrics = _first_metrics(run, device, world)
    evaluation = RunEvaluation(
        cfg.eval, analogies, similarity, writer, monitor.say,
        projector_dir=None if isinstance(writer, NoWriter) else out / "tb",
    )

    def on_epoch_end(epoch: int, result) -> None:
        monitor.end_epoch(epoch)
        if cfg.eval.every_epoch and epoch + 1 != cfg.train.epochs:
            table = whole_tables(model, run.sharded)[0]  # a collective: every rank takes part
            if main:
                evaluation.between_epochs(epoch, word_vectors(vocab, table), result, step=(epoch + 1) * len(corpus))

    signals = held.enter_context(RunSignals(trainer))
    record = {"tokens": len(corpus), "fingerprint": corpus.fingerprint}
    checkpoints = RunCheckpoints(
        CheckpointFolder(out / FOLDER, cfg.train.keep_checkpoints, rank, world, corpus=record, replicated=not run.sharded),
        model, vocab, config, out, export_dir, world, run.resumed_from, signals, note,
    )
    result = _fit(trainer, on_epoch_end, monitor, writer, checkpoints, run.start)
    signals.hold()  # from here a signal waits until the trained tables are on disk
    monitor.close()

    metrics.update(trainer.strategy.measures())
    if world > 1:  # what the ranks' exchanges cost
        metrics.update(trainer.strategy.traffic(trainer.global_step))
    final = whole_tables(model, run.sharded)
    if not main:  # rank 0 writes the files a single process writes
        writer.close()
        parallel.shutdown()
        return {**metrics, "words_per_sec": result.words_per_sec, "loss": result.loss}
    metrics = finish(
        cfg, vocab, final, trainer.state, result, out=out, export_dir=export_dir, checkpoints=checkpoints,
        evaluation=evaluation, writer=writer, signals=signals, metrics=metrics, step=cfg.train.epochs * len(corpus),
        run_started=run_started,
    )
    parallel.shutdown()
    return metrics


def _plain(cfg) -> Dict[str, Any]:
    """The config (Hydra's ``DictConfig`` or a :class:`~w2v.config.Config`) as plain values, as checkpoints keep it."""
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.structured(cfg) if not hasattr(cfg, "_metadata") else cfg, resolve=True)
    except Exception:  # a plain dataclass without omegaconf
        from dataclasses import asdict

        return asdict(cfg)


def _save_vocab(vocab, out: Path) -> None:
    """``vocab.txt`` in the run folder, before training: a folder without room is a user error."""
    try:
        vocab.save(out / "vocab.txt")
    except OSError as e:  # nothing trained yet: nothing lost
        raise ValueError(
            f"cannot write into hydra.run.dir={out} ({reason(e)}); free space there or choose another hydra.run.dir"
        ) from None


def _first_metrics(run, device, world: int) -> Dict[str, Any]:
    """What ``metrics.json`` knows before training: the vocabulary, the corpus, the device and step."""
    metrics: Dict[str, Any] = {
        "vocab_size": len(run.vocab), "corpus_tokens": len(run.corpus), "device": str(device),
        "step": run.trainer.strategy.name,
    }
    if world > 1:
        metrics["processes"] = world
    if run.resumed_from:
        metrics["resumed_from"] = run.resumed_from
    return metrics


def _fit(trainer, on_epoch_end, monitor, writer, checkpoints, start):
    """``trainer.fit``; a stopped or diverged run's exception names the checkpoints there are.

    Raises:
        TrainingInterrupted: with ``checkpoint`` (the stop's, ``None`` when it could not be
            written), ``unsaved`` (why not) and ``last`` (the latest checkpoint there is).
        TrainingDiverged: its message names the last good checkpoint.
    """
    try:
        return trainer.fit(on_epoch_end=on_epoch_end, progress=monitor.for_epoch, checkpoint=checkpoints.save, start=start)
    except BaseException as e:
        monitor.close()
        writer.close()
        if isinstance(e, TrainingInterrupted):
            saved, unsaved = checkpoints.saved, checkpoints.unsaved
            e.checkpoint = saved[-1] if saved and not unsaved else None
            e.unsaved = unsaved[-1] if unsaved else None  # why no checkpoint of the stop could be written
            e.last = checkpoints.last  # then, the latest one there is
        if isinstance(e, TrainingDiverged):
            last = checkpoints.last
            hint = f"the last good checkpoint is {last}" if last else "no checkpoint was written"
            raise TrainingDiverged(f"{e}; {hint}") from None
        raise


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, TrainingDiverged)
