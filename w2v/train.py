"""``python -m w2v.train``: corpus in, vectors out.

The only module that knows Hydra. :func:`train` is a plain function of a config (a
:class:`~w2v.config.Config` or the ``DictConfig`` Hydra composes) and an output folder,
returning the run's metrics, so tests and notebooks call it without a command line.

While training, SIGINT (Ctrl-C) and SIGTERM stop the run at the next chunk boundary
after saving a checkpoint (:class:`~w2v.trainer.TrainingInterrupted`); the command line
then exits with 130 or 143. A second signal aborts at once. ``train.resume`` continues
from a checkpoint file or a run folder, exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.distributed as dist

from . import parallel
from .budget import check_run
from .checkpoint import FINAL, FOLDER, CheckpointFolder, check_resumable, load_checkpoint, restore_tables, save_checkpoint
from .config import parse_device, register_configs, validate
from .corpus import Tokenizer, load_corpus, resolve_corpus
from .model import SkipGramNS
from .strategies import sharded_tables
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted, TrainState
from .vocab import Vocab


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


def _writable(folder: Path, key: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{key}={folder} is not writable ({e.strerror or e}); choose a folder you can write to") from None
    return folder


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """SIGINT and SIGTERM ask ``trainer`` to checkpoint and stop at the next chunk boundary.

    The first signal puts the previous handlers back, so a second one aborts at once
    (Ctrl-C: ``KeyboardInterrupt``). Outside the main thread nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
        trainer.request_stop(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


class _NoWriter:
    """What ranks other than 0 log to: nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Monitor:
    """tqdm bar and TensorBoard scalars fed by the trainer's progress callback."""

    def __init__(self, total_words: int, epoch_words: int, writer, show: bool, start: int = 0) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total_words, initial=start, unit="w", unit_scale=True, dynamic_ncols=True, disable=not show, mininterval=0.5
        )
        self.writer, self.epoch_words = writer, epoch_words
        self.last = (time.perf_counter(), start)

    def for_epoch(self, epoch: int):
        base = epoch * self.epoch_words

        def report(words: int, stats, loss: float) -> None:
            done = base + words
            now = time.perf_counter()
            t0, w0 = self.last
            rate = (done - w0) / max(now - t0, 1e-9)
            self.last = (now, done)
            lr = max(s.lr for s in stats)
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.5f}", epoch=epoch + 1, refresh=False)
            self.writer.add_scalar("train/loss", loss, done)
            self.writer.add_scalar("train/lr", lr, done)
            self.writer.add_scalar("train/words_per_sec", rate, done)

        return report

    def note(self, text: str) -> None:
        """A line on stderr that does not break the bar."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def train(cfg, output_dir: str | Path = ".") -> Dict[str, Any]:
    """Run the whole pipeline and write the outputs into ``output_dir``.

    Writes ``vocab.txt``, ``vectors.bin``/``vectors.txt`` (per ``export.formats``, into
    ``export.dir`` if set), ``checkpoint.pt``, ``metrics.json``, TensorBoard events under
    ``tb/`` and, when ``train.checkpoint_every_*`` asks or a signal stops the run,
    ``checkpoints/checkpoint-W.pt``.

    Returns:
        metrics: words/s, final loss, evaluation scores, vocabulary size...

    Raises:
        ValueError, FileNotFoundError: a user mistake; the message names the fix.
        TrainingDiverged: the loss became NaN or infinite (the message names the last good
            checkpoint).
        TrainingInterrupted: SIGINT or SIGTERM; its ``checkpoint`` attribute is the file saved.
    """
    from .evaluate import evaluate_word_analogies, evaluate_word_pairs
    from .vectors import WordVectors

    validate(cfg)
    logging.getLogger("w2v.evaluate").setLevel(logging.WARNING)  # the run prints its own summary
    device = parallel.local_device(resolve_device(cfg.train.device))
    # Under torchrun: join the other processes. Rank 0 alone prints, logs and writes files.
    parallel.init_from_env(device, cfg.train.dist_timeout_seconds)
    rank, world = parallel.rank_and_size()
    check_run(cfg, device, world)  # what the settings will allocate, before allocating it
    main = rank == 0
    say = print if main else (lambda *args, **kwargs: None)
    if world > 1:  # every rank's periodic checkpoints go to rank 0's run folder
        folder = [str(output_dir)]
        dist.broadcast_object_list(folder, src=0)
        output_dir = folder[0]
    analogies, similarity = _data_file(cfg.eval.analogies), _data_file(cfg.eval.similarity)
    out = _writable(Path(output_dir), "hydra.run.dir")
    export_dir = _writable(Path(cfg.export.dir), "export.dir") if cfg.export.dir else out
    config = _plain(cfg)
    ckpt = None
    if cfg.train.resume:  # before the corpus: a bad checkpoint fails fast
        ckpt = load_checkpoint(cfg.train.resume, rank, world)
        for change in check_resumable(ckpt, config):
            say(f"warning: resuming with {change}; the result will differ from an uninterrupted run", file=sys.stderr)
    torch.manual_seed(cfg.train.seed)

    tokenizer = Tokenizer(cfg.data.token_pattern, cfg.data.lowercase)
    started = time.perf_counter()
    with _one_encoder(world, main):
        corpus = load_corpus(cfg.data.corpus, tokenizer, cache=cfg.data.cache, cache_dir=cfg.data.cache_dir)
    if corpus.bad_bytes:
        say(f"warning: {corpus.bad_bytes} bytes of the corpus were not valid UTF-8 and were read as U+FFFD", file=sys.stderr)
    if ckpt is not None:  # the vocabulary comes from the checkpoint
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
        file=sys.stderr,
    )

    model = SkipGramNS(
        len(vocab), cfg.model.dim, cfg.model.num_shards, cfg.model.partition_strategy, device=device, distributed=sharded
    )
    trainer = Trainer(model, corpus.tokens, vocab.encode(corpus.types), vocab.counts, cfg.train, device)
    say(f"step: {trainer.strategy.describe()}", file=sys.stderr)
    start: Optional[TrainState] = None
    resumed_from = None
    if ckpt is not None:
        start = TrainState.from_dict(ckpt["state"])
        trainer.check_start(start)
        restore_tables(model, ckpt)
        resumed_from = ckpt["path"]
        say(f"resuming from {resumed_from} at epoch {start.epoch + 1}, {start.words:,} words", file=sys.stderr)
        del ckpt  # the tables are in the model now
    else:
        model.reset_parameters(torch.Generator().manual_seed(cfg.train.seed))

    from torch.utils.tensorboard import SummaryWriter

    if main:
        vocab.save(out / "vocab.txt")
    writer = SummaryWriter(str(out / "tb")) if main else _NoWriter()
    monitor = _Monitor(trainer.total_words, len(corpus), writer, cfg.train.progress and main, start.words if start else 0)
    metrics: Dict[str, Any] = {
        "vocab_size": len(vocab), "corpus_tokens": len(corpus), "device": str(device), "step": trainer.strategy.name,
    }
    if world > 1:
        metrics["processes"] = world
    if resumed_from:
        metrics["resumed_from"] = resumed_from
    checkpoints = CheckpointFolder(out / FOLDER, cfg.train.keep_checkpoints, rank, world, replicated=not sharded)
    saved: list = []

    def save(state: TrainState) -> None:
        saved.append(checkpoints.save(model, vocab, config, state.to_dict()))
        if main:
            monitor.note(f"checkpoint: {saved[-1]} (epoch {state.epoch + 1}, {state.words:,} words)")

    def tables():
        """Both whole tables on rank 0 (``None`` elsewhere): a collective over several processes."""
        if not sharded:  # one process, or replicas: equal on every rank after the last merge
            return model.input.weight.detach(), model.output.weight.detach()
        with parallel.peer_failures("gathering the tables"):
            return model.input.full_table(dst=0), model.output.full_table(dst=0)

    def vectors(table) -> WordVectors:
        return WordVectors(vocab.index_to_key, table.cpu().numpy())

    warned: list = []

    def evaluate(wv: WordVectors, step: int) -> Dict[str, float]:
        scores = {}
        try:  # a corpus that shares no words with an evaluation set still trains
            if analogies is not None:
                score, _ = evaluate_word_analogies(wv, analogies, restrict_vocab=cfg.eval.restrict_vocab or None)
                scores["analogy"] = float(score)
            if similarity is not None:
                _, spearman, oov = evaluate_word_pairs(wv, similarity)
                scores["ws353_spearman"] = float(spearman[0])
                scores["ws353_oov"] = float(oov)
        except ValueError as e:
            if not warned:
                print(f"warning: evaluation skipped: {e}", file=sys.stderr)
                warned.append(True)
        for name, value in scores.items():
            writer.add_scalar(f"eval/{name}", value, step)
        return scores

    def probes(wv: WordVectors, step: int) -> str:
        lines = []
        for word in cfg.eval.probe_words:
            if word in wv:
                near = ", ".join(f"{w} {s:.2f}" for w, s in wv.most_similar(word, topn=cfg.eval.topn))
                lines.append(f"{word}: {near}")
        text = "\n".join(lines)
        if text:
            writer.add_text("neighbours", text.replace("\n", "  \n"), step)
        return text

    def projector(wv: WordVectors, step: int) -> None:
        if cfg.eval.projector_words > 0:
            n = min(cfg.eval.projector_words, len(wv))
            writer.add_embedding(torch.from_numpy(wv.vectors[:n]), metadata=wv.index_to_key[:n], global_step=step, tag="input")

    def on_epoch_end(epoch: int, result) -> None:
        step = (epoch + 1) * len(corpus)
        if not cfg.eval.every_epoch or epoch + 1 == cfg.train.epochs:
            return
        table = tables()[0]
        if not main:
            return
        wv = vectors(table)
        scores = evaluate(wv, step)
        probes(wv, step)
        projector(wv, step)
        monitor.bar.write(
            f"epoch {epoch + 1}: loss {result.loss:.4f}, {result.words_per_sec:,.0f} words/s"
            + "".join(f", {k} {v:.4f}" for k, v in scores.items())
        )

    try:
        with _stop_on_signals(trainer):
            result = trainer.fit(on_epoch_end=on_epoch_end, progress=monitor.for_epoch, checkpoint=save, start=start)
    except BaseException as e:
        monitor.close()
        writer.close()
        if isinstance(e, TrainingInterrupted):
            e.checkpoint = saved[-1]
        if isinstance(e, TrainingDiverged):
            last = saved[-1] if saved else resumed_from
            hint = f"the last good checkpoint is {last}" if last else "no checkpoint was written"
            raise TrainingDiverged(f"{e}; {hint}") from None
        raise
    monitor.close()

    if world > 1:  # what the ranks' exchanges cost
        metrics.update(trainer.strategy.traffic(trainer.global_step))
    final = tables()
    if not main:  # rank 0 writes the files a single process writes
        writer.close()
        parallel.shutdown()
        return {**metrics, "words_per_sec": result.words_per_sec, "loss": result.loss}
    wv = vectors(final[0])
    final_step = cfg.train.epochs * len(corpus)
    metrics.update(
        words_per_sec=result.words_per_sec,
        train_seconds=result.seconds,
        loss=result.loss,
        epoch_losses=result.epoch_losses,
    )
    metrics.update(evaluate(wv, final_step))
    neighbours = probes(wv, final_step)
    projector(wv, final_step)
    writer.close()

    for fmt in cfg.export.formats:
        if fmt in ("bin", "txt"):
            wv.save_word2vec_format(export_dir / f"vectors.{fmt}", binary=fmt == "bin")
        else:
            wv.save(export_dir / f"vectors.{fmt}")
    if cfg.export.checkpoint:
        save_checkpoint(out / FINAL, model, vocab, config, trainer.state.to_dict(), tables=final)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    print(
        f"trained {result.words:,} words in {result.seconds:.1f}s ({result.words_per_sec:,.0f} words/s), final loss {result.loss:.4f}"
        + "".join(f", {k} {metrics[k]:.4f}" for k in ("analogy", "ws353_spearman") if k in metrics)
    )
    if neighbours:
        print("nearest neighbours:\n" + neighbours)
    print(f"outputs in {out}")
    parallel.shutdown()
    return metrics


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, TrainingDiverged)
# Another process of the run failed: one line, and the run's exit status says so.
PEER_FAILURE_EXIT = 3


class _Terminated(BaseException):
    """SIGTERM outside training (while tokenizing, exporting...): unwind, cleaning up."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register_configs()

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def run(cfg) -> Optional[float]:
        signal.signal(signal.SIGTERM, _terminate)
        try:
            metrics = train(cfg, HydraConfig.get().runtime.output_dir)
        except USER_ERRORS as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(2)
        except parallel.PeerFailure as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(PEER_FAILURE_EXIT)
        except TrainingInterrupted as e:
            by = signal.Signals(e.signum).name if e.signum else "request"
            rank, world = parallel.rank_and_size()
            # Over several processes every rank saved its own file; the run folder names them all.
            where = e.checkpoint if world == 1 else Path(e.checkpoint).parent.parent
            if rank == 0:
                print(
                    f"stopped by {by} at epoch {e.state.epoch + 1}, {e.state.words:,} words; "
                    f"checkpoint saved to {e.checkpoint}; continue with train.resume={where}",
                    file=sys.stderr,
                )
            sys.exit(128 + e.signum)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        except _Terminated:
            print("error: terminated", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)
        return metrics.get("analogy")  # what a sweeper would optimise

    run()


if __name__ == "__main__":
    main()
