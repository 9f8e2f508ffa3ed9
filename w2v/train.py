"""``python -m w2v.train``: corpus in, vectors out.

The only module that knows Hydra. :func:`train` is a plain function of a config (a
:class:`~w2v.config.Config` or the ``DictConfig`` Hydra composes) and an output folder,
returning the run's metrics, so tests and notebooks call it without a command line.
It reads as the run's stages, each in a module of its own: the folders claimed
(:mod:`w2v.run_folder`), the corpus, vocabulary and model prepared (:mod:`w2v.prepare`),
training shown by :mod:`w2v.monitor` and evaluated between epochs (:mod:`w2v.run_eval`),
then the trained tables saved, evaluated and exported (:mod:`w2v.finish`).

While training, SIGINT (Ctrl-C) and SIGTERM stop the run at the next chunk boundary
after saving a checkpoint (:class:`~w2v.trainer.TrainingInterrupted`); the command line
then exits with 130 or 143. A second signal aborts at once. ``train.resume`` continues
from a checkpoint file or a run folder, exactly where it stopped; on the command line, in
that run folder.

Nothing trained is lost (:mod:`w2v.stopping`): the moment training ends the tables go to
``checkpoint.pt`` (elsewhere, with a warning, when the run folder has no room), before
evaluation, projector and export; a signal or a failed write after that names the file,
and ``train.resume`` on a finished run only evaluates and exports. A run folder is held
by one run at a time (:mod:`w2v.runlock`).

What the run prints also goes to the ``w2v.train`` logger, which the command line keeps in
the run folder's ``train.log``. The configuration ships inside the package (``w2v/conf``);
the command line's overrides are checked by :mod:`w2v.overrides` before Hydra runs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from . import parallel, runlock
from .budget import check_run
from .checkpoint import FINAL, FOLDER, CheckpointFolder
from .config import register_configs
from .config_rules import validate
from .finish import finish
from .monitor import Monitor, NoWriter, import_in_background, open_tensorboard, quiet
from .monitor import say as _say  # a line of the run; prepare's `say` is rank 0's only
from .prepare import data_file, prepare, resolve_device
from .run_eval import RunEvaluation, whole_tables, word_vectors
from .run_folder import RunCheckpoints, claim_folders
from .safefile import reason
from .stopping import FinishingInterrupted, RunSignals
from .trainer import TrainingDiverged, TrainingInterrupted

log = logging.getLogger("w2v.train")  # by name: run as ``python -m``, __name__ is __main__


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
    # Imported once the corpus is read: tokenizing forks workers only while no other thread runs.
    tensorboard = import_in_background("torch.utils.tensorboard") if main else None  # 0.1-0.4 s
    model, vocab, trainer, corpus = run.model, run.vocab, run.trainer, run.corpus
    if main:
        _save_vocab(vocab, out)

    def note(text: str) -> None:
        """A line on stderr from rank 0, clear of the progress bar."""
        if main:
            monitor.say(text, err=True)

    resumed_at = run.start.words if run.start else None  # TensorBoard hides what the stopped run logged after it
    writer = open_tensorboard(tensorboard, out / "tb", note, purge_step=resumed_at) if main else NoWriter()
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
# Another process of the run failed: one line, and the run's exit status says so.
PEER_FAILURE_EXIT = 3


class _Terminated(BaseException):
    """SIGTERM outside training (while tokenizing, exporting...): unwind, cleaning up."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


def _discard_if_unused(folder: Path, parents: bool) -> None:
    """Remove a run folder that holds only what Hydra wrote before the run (``.hydra``, the log) and its lock.

    A run that fails before training so leaves nothing behind; a folder with anything of
    the run's own (TensorBoard events, checkpoints) stays, its ``train.log`` saying why the
    run stopped. With ``parents`` (Hydra's own ``outputs/DATE/TIME``), the empty folders
    above it inside the working directory go too.
    """
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    if not all(name in (".hydra", runlock.NAME) or name.endswith(".log") for name in entries):
        return
    shutil.rmtree(folder, ignore_errors=True)
    here = Path.cwd()
    for parent in Path(folder).absolute().parents if parents else ():
        if parent == here or here not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty
            break


def _stop(status: int, line: Optional[str]) -> None:
    """End a failed run with ``status``: ``line`` on stderr and in the log; an unused folder goes."""
    from hydra.core.hydra_config import HydraConfig

    if line is not None:
        _say(line, err=True, level=logging.ERROR)
    hydra = HydraConfig.get()
    chosen = any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in hydra.overrides.hydra)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 owns the folder
        _discard_if_unused(Path(hydra.runtime.output_dir), parents=not chosen)
    sys.exit(status)


def _one_line(e: BaseException) -> str:
    return "error: " + " ".join(str(e).split())


def _saved(stop: TrainingInterrupted, world: int) -> str:
    """What a stop saved, and how to continue from it."""
    if stop.checkpoint is None:
        then = f"continue from the last one with train.resume={stop.last}" if stop.last else "start again"
        return f"no checkpoint could be written ({stop.unsaved}); free space, then {then}"
    # Over several processes every rank saved its own file; the run folder names them all.
    where = stop.checkpoint if world == 1 else Path(stop.checkpoint).parent.parent
    return f"checkpoint saved to {stop.checkpoint}; continue with train.resume={where}"


def _compose_once(argv) -> None:
    """Let Hydra compose the config once per command, not twice.

    Hydra 1.3 (``hydra-core<1.4``, as pinned) composes the whole config a first time only to
    read ``hydra.mode`` (``Hydra.get_mode``), ~0.1 s of every command. No
    config of ours sets it, so unless an override names it, the answer is "unset": the
    command line's ``-m`` alone decides, as Hydra then does.
    """
    from hydra._internal.hydra import Hydra

    if not any(a.lstrip("+~").startswith("hydra.mode=") for a in argv):
        Hydra.get_mode = lambda self, config_name, overrides: None


def main() -> None:
    """``w2v-train`` and ``python -m w2v.train``: Hydra's command line over :func:`train`."""
    # What is imported by now (torch: ~10^6 objects) and, below, what Hydra builds lives as long
    # as the command: frozen, the collector's full passes no longer walk it (they took ~0.2 s
    # of every run).
    gc.freeze()
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .exiting import exit_now
    from .overrides import check_overrides, resume_in_place

    register_configs()
    _compose_once(sys.argv[1:])
    try:  # Hydra's own reports of a bad override are many lines and exit status 1
        given = sys.argv[1:]
        check_overrides(given)
        sys.argv[1:] = resume_in_place(given)
        carried = [a for a in sys.argv[1 + len(given):] if not a.startswith("hydra.")]
        if carried:  # the resumed run's own settings, which the command did not give again
            check_overrides(carried)
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"resuming with the run's own settings: {' '.join(carried)} (settings given replace them)",
                      file=sys.stderr)
    except ValueError as e:
        print(_one_line(e), file=sys.stderr)
        sys.exit(2)

    # The package's own conf/, by its full path: found the same way as python -m w2v.train
    # and as the installed w2v-train (for which Hydra would look for a module w2v.conf).
    @hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
    def run(cfg) -> Optional[float]:
        gc.freeze()
        out = Path(HydraConfig.get().runtime.output_dir)
        signal.signal(signal.SIGTERM, _terminate)
        try:
            metrics = train(cfg, out)
        except USER_ERRORS as e:
            _stop(2, _one_line(e))
        except parallel.PeerFailure as e:
            _stop(PEER_FAILURE_EXIT, _one_line(e))
        except TrainingInterrupted as e:
            by = signal.Signals(e.signum).name if e.signum else "request"
            rank, world = parallel.rank_and_size()
            line = f"stopped by {by} at epoch {e.state.epoch + 1}, {e.state.words:,} words; {_saved(e, world)}"
            _stop(128 + e.signum, line if rank == 0 else None)
        except FinishingInterrupted as e:
            line = None
            if e.checkpoint:  # rank 0: the others write nothing after training
                folder = Path(e.checkpoint).parent if Path(e.checkpoint).name == FINAL else e.checkpoint
                line = (
                    f"stopped by {signal.Signals(e.signum).name} while {e.doing}, after training ended; the trained "
                    f"tables are saved in {e.checkpoint}; finish with train.resume={folder} (training is skipped: "
                    "it only evaluates and exports)"
                )
            _stop(128 + e.signum, line)
        except KeyboardInterrupt:
            _stop(130, "error: interrupted")
        except _Terminated:
            _stop(128 + signal.SIGTERM, "error: terminated")
        except BaseException:
            log.exception("the run failed")  # a bug: the traceback goes to stderr and to train.log
            raise
        return metrics.get("analogy")  # what a sweeper would optimise

    run()
    exit_now(0)  # every run of the command (all of a sweep's) is done and its files closed


if __name__ == "__main__":
    main()
