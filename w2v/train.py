"""``python -m w2v.train``: corpus in, vectors out.

The only module that knows Hydra. :func:`train` is a plain function of a config (a
:class:`~w2v.config.Config` or the ``DictConfig`` Hydra composes) and an output folder,
returning the run's metrics, so tests and notebooks call it without a command line.

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
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist

from . import parallel, runlock
from .budget import check_run
from .checkpoint import FINAL, FOLDER, CheckpointFolder, load_checkpoint
from .config import register_configs
from .config_rules import parse_device, validate
from .corpus import Tokenizer, resolve_corpus
from .model import SkipGramNS
from .monitor import Monitor, NoWriter, import_in_background, open_tensorboard, quiet
from .monitor import say as _say  # a line of the run; `say` in _train is rank 0's only
from .resume import check_corpus, check_resumable, restore_tables
from .finish import finish
from .run_eval import RunEvaluation, whole_tables, word_vectors
from .run_folder import RunCheckpoints, claim_folders
from .safefile import reason
from .stopping import FinishingInterrupted, RunSignals
from .strategies import sharded_tables
from .token_cache import load_corpus
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted, TrainState
from .vocab import Vocab

log = logging.getLogger("w2v.train")  # by name: run as ``python -m``, __name__ is __main__


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks the GPU when there is one; ``cuda`` without one is a user error."""
    spec = parse_device(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={spec} but no CUDA GPU is available; use train.device=cpu or auto")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"train.device={spec} but only {torch.cuda.device_count()} GPU(s) exist; use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return torch.device(spec)


def _plain(cfg) -> Dict[str, Any]:
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.structured(cfg) if not hasattr(cfg, "_metadata") else cfg, resolve=True)
    except Exception:  # a plain dataclass without omegaconf
        from dataclasses import asdict

        return asdict(cfg)


def _data_file(path: Optional[str]) -> Optional[Path]:
    """An evaluation file given relative to the working directory or the project root."""
    if not path:
        return None
    try:
        return resolve_corpus(path)[0]
    except FileNotFoundError:
        raise FileNotFoundError(f"evaluation file not found: {path}; fix the eval.* path or set it to null")


# Corpora that configs name but the package does not ship, and where each comes from.
_NOT_SHIPPED = {
    "text8": "fetch it with scripts/download_text8.sh (in the w2v repository), or set data.corpus to a copy",
    "enwiki-gutenberg-20m.txt.gz": "+experiment=enwiki20m runs only where the 20M-word benchmark corpus is "
    "(see docs/benchmarks.md); set data.corpus to a copy",
}


def _load_corpus(data, tokenizer: Tokenizer, warn=None):
    """:func:`~w2v.corpus.load_corpus`; a missing corpus that a config names says where it comes from."""
    path = Path(data.corpus).expanduser()
    if path.name in _NOT_SHIPPED and not path.exists():
        raise FileNotFoundError(f"corpus not found: {data.corpus}; {_NOT_SHIPPED[path.name]}")
    return load_corpus(data.corpus, tokenizer, cache=data.cache, cache_dir=data.cache_dir, warn=warn)


@contextlib.contextmanager
def _one_encoder(world: int, main: bool):
    """Over several processes, rank 0 reads (and caches) the corpus first, then the others."""
    if world > 1 and not main:
        with parallel.peer_failures("waiting for rank 0 to read the corpus"):
            dist.barrier()
    yield
    if world > 1 and main:
        with parallel.peer_failures("reading the corpus"):
            dist.barrier()


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
    tensorboard = import_in_background("torch.utils.tensorboard")  # 0.1-0.4 s, while the corpus loads
    logging.getLogger("w2v.evaluate").setLevel(logging.WARNING)  # the run prints its own summary
    device = parallel.local_device(resolve_device(cfg.train.device))
    # Under torchrun: join the other processes. Rank 0 alone prints, logs and writes files.
    parallel.init_from_env(device, cfg.train.dist_timeout_seconds)
    rank, world = parallel.rank_and_size()
    check_run(cfg, device, world)  # what the settings will allocate, before allocating it
    analogies, similarity = _data_file(cfg.eval.analogies), _data_file(cfg.eval.similarity)
    out, export_dir, lock = claim_folders(cfg, output_dir, rank == 0, world)
    with contextlib.ExitStack() as held:  # the run folder's lock, the signal handlers: released on return
        if lock is not None:
            held.callback(lock.release)
        return _train(cfg, out, export_dir, device, rank, world, analogies, similarity, held, tensorboard, run_started)


def _train(
    cfg, out: Path, export_dir: Path, device, rank: int, world: int, analogies, similarity, held, tensorboard, run_started,
) -> Dict[str, Any]:
    """:func:`train` once its folders are claimed; ``held`` releases what it installs when the run ends."""
    main = rank == 0
    say = _say if main else quiet
    config = _plain(cfg)
    ckpt = None
    if cfg.train.resume:  # before the corpus: a bad checkpoint fails fast
        ckpt = load_checkpoint(cfg.train.resume, rank, world)
        for change in check_resumable(ckpt, config):
            say(
                f"warning: resuming with {change}; the result will differ from an uninterrupted run",
                err=True, level=logging.WARNING,
            )
    torch.manual_seed(cfg.train.seed)

    tokenizer = Tokenizer(cfg.data.token_pattern, cfg.data.lowercase)
    started = time.perf_counter()
    with _one_encoder(world, main):
        corpus = _load_corpus(cfg.data, tokenizer, warn=lambda text: say(f"warning: {text}", err=True))
    if corpus.bad_bytes:
        say(
            f"warning: {corpus.bad_bytes} bytes of the corpus were not valid UTF-8 and were read as U+FFFD",
            err=True, level=logging.WARNING,
        )
    if ckpt is not None:  # the vocabulary comes from the checkpoint
        older = check_corpus(ckpt, len(corpus), corpus.fingerprint)
        if older:
            say(f"warning: {older}", err=True)
        vocab = Vocab(ckpt["words"], ckpt["counts"].tolist())
    else:
        vocab = Vocab.from_counts(zip(corpus.types, corpus.counts.tolist()), cfg.data.min_count, cfg.data.max_vocab_size)
    if cfg.model.num_shards > len(vocab):
        raise ValueError(
            f"model.num_shards={cfg.model.num_shards} is more than the {len(vocab)} vocabulary rows; "
            "use fewer shards or a lower data.min_count"
        )
    # and the tables, now that their size is known: whole on every rank, or spread over the ranks
    sharded = sharded_tables(cfg, device, world, len(vocab), len(corpus))
    if ckpt is not None and "shard" in ckpt and not sharded:  # a sharded run's files, joined for replicas
        ckpt = load_checkpoint(ckpt["path"], rank, 1)
    say(
        f"corpus: {len(corpus):,} tokens, {len(corpus.types):,} types; vocabulary: {len(vocab):,} words "
        f"(min_count={cfg.data.min_count}, <unk> absorbs {vocab.counts[0]:,} tokens); "
        f"device: {device}" + (f" x {world} processes" if world > 1 else "") + f"; prepared in {time.perf_counter() - started:.1f}s",
        err=True,
    )

    model = SkipGramNS(
        len(vocab), cfg.model.dim, cfg.model.num_shards, cfg.model.partition_strategy, device=device, distributed=sharded
    )
    trainer = Trainer(model, corpus.tokens, vocab.encode(corpus.types), vocab.counts, cfg.train, device)
    say(f"step: {trainer.strategy.describe()}", err=True)
    start: Optional[TrainState] = None
    resumed_from = None
    if ckpt is not None:
        start = TrainState.from_dict(ckpt["state"])
        trainer.check_start(start)
        restore_tables(model, ckpt)
        resumed_from = ckpt["path"]
        if start.epoch >= cfg.train.epochs:
            say(f"resuming from {resumed_from}: training ended there ({start.epoch} epochs); evaluating and exporting only",
                err=True)
        else:
            say(f"resuming from {resumed_from} at epoch {start.epoch + 1}, {start.words:,} words", err=True)
        del ckpt  # the tables are in the model now
    else:
        model.reset_parameters(torch.Generator().manual_seed(cfg.train.seed))

    if main:
        try:
            vocab.save(out / "vocab.txt")
        except OSError as e:  # nothing trained yet: nothing lost
            raise ValueError(
                f"cannot write into hydra.run.dir={out} ({reason(e)}); free space there or choose another hydra.run.dir"
            ) from None

    def note(text: str) -> None:
        """A line on stderr from rank 0, clear of the progress bar."""
        if main:
            monitor.say(text, err=True)

    writer = open_tensorboard(tensorboard, out / "tb", note) if main else NoWriter()
    monitor = Monitor(trainer.total_words, len(corpus), writer, cfg.train.progress and main, start.words if start else 0)
    metrics: Dict[str, Any] = {
        "vocab_size": len(vocab), "corpus_tokens": len(corpus), "device": str(device), "step": trainer.strategy.name,
    }
    if world > 1:
        metrics["processes"] = world
    if resumed_from:
        metrics["resumed_from"] = resumed_from
    record = {"tokens": len(corpus), "fingerprint": corpus.fingerprint}
    folder = CheckpointFolder(out / FOLDER, cfg.train.keep_checkpoints, rank, world, corpus=record, replicated=not sharded)

    evaluation = RunEvaluation(cfg.eval, analogies, similarity, writer, monitor.say)

    def on_epoch_end(epoch: int, result) -> None:
        monitor.end_epoch(epoch)
        if cfg.eval.every_epoch and epoch + 1 != cfg.train.epochs:
            table = whole_tables(model, sharded)[0]  # a collective: every rank takes part
            if main:
                evaluation.between_epochs(epoch, word_vectors(vocab, table), result, step=(epoch + 1) * len(corpus))

    signals = held.enter_context(RunSignals(trainer))
    checkpoints = RunCheckpoints(folder, model, vocab, config, out, export_dir, world, resumed_from, signals, note)
    try:
        result = trainer.fit(on_epoch_end=on_epoch_end, progress=monitor.for_epoch, checkpoint=checkpoints.save, start=start)
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
    signals.hold()  # from here a signal waits until the trained tables are on disk
    monitor.close()

    if world > 1:  # what the ranks' exchanges cost
        metrics.update(trainer.strategy.traffic(trainer.global_step))
    final = whole_tables(model, sharded)
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


def main() -> None:
    """``w2v-train`` and ``python -m w2v.train``: Hydra's command line over :func:`train`."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .exiting import exit_now
    from .overrides import check_overrides, resume_in_place

    register_configs()
    try:  # Hydra's own reports of a bad override are many lines and exit status 1
        check_overrides(sys.argv[1:])
        sys.argv[1:] = resume_in_place(sys.argv[1:])
    except ValueError as e:
        print(_one_line(e), file=sys.stderr)
        sys.exit(2)

    # The package's own conf/, by its full path: found the same way as python -m w2v.train
    # and as the installed w2v-train (for which Hydra would look for a module w2v.conf).
    @hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
    def run(cfg) -> Optional[float]:
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
