"""The last stage of a run, on rank 0: the trained tables saved first, then evaluation and outputs.

The moment training ends the trained tables go to ``checkpoint.pt``
(:meth:`~w2v.run_folder.RunCheckpoints.keep_trained`) while the final evaluation's matrix
products, which release the GIL, run beside it on a daemon thread (:class:`Background`).
Then come the probe neighbours, the projector, the exported vectors (``export.formats``),
``metrics.json`` and the run's summary lines. Only the main thread writes files, so a
signal meanwhile finds no partial file and stops the run naming the saved tables
(:class:`~w2v.stopping.FinishingInterrupted`); a write that fails says how to finish from
them with ``train.resume``, which skips training.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .checkpoint import FINAL
from .monitor import format_scores, say
from .run_eval import word_vectors
from .safefile import atomic_write, reason


class Background:
    """``fn(*args)`` on a daemon thread: a signal that ends the run does not wait for it."""

    def __init__(self, fn: Callable, *args) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as e:  # handed to result()
                self._error = e
            finally:
                self._done.set()

        threading.Thread(target=run, name="w2v-evaluate", daemon=True).start()

    def result(self) -> Any:
        """Wait for the value (in short waits, so that a signal is handled meanwhile); re-raise a failure."""
        while not self._done.wait(0.1):
            pass
        if self._error is not None:
            raise self._error
        return self._value


def finish(
    cfg, vocab, tables, state, result, *, out: Path, export_dir: Path, checkpoints, evaluation, writer, signals,
    metrics: Dict[str, Any], step: int, run_started: float,
) -> Dict[str, Any]:
    """Save the trained tables, evaluate, write the outputs and say how the run went.

    Args:
        cfg: the run's config.
        vocab: the run's :class:`~w2v.vocab.Vocab`.
        tables: both whole trained tables, ``(input, output)``.
        state: where training ended (a :class:`~w2v.state.TrainState`).
        result: what training did (a :class:`~w2v.state.FitResult`).
        out: the run folder (``metrics.json``).
        export_dir: where the vectors go.
        checkpoints: the run's :class:`~w2v.run_folder.RunCheckpoints`.
        evaluation: the run's :class:`~w2v.run_eval.RunEvaluation`.
        writer: the TensorBoard writer, closed once the last scores are in.
        signals: the run's :class:`~w2v.stopping.RunSignals`, holding a signal until the tables are saved.
        metrics: the run's metrics so far, completed here.
        step: the TensorBoard step of the end of training (the last epoch's end, in words).
        run_started: when the run started (``time.perf_counter()``).

    Returns:
        ``metrics``, as written to ``metrics.json``.

    Raises:
        ValueError: a file could not be written; the message names where the trained tables are.
        FinishingInterrupted: SIGINT or SIGTERM arrived once training had ended.
    """
    wv = word_vectors(vocab, tables[0])
    wv.fill_norms()  # once, before two threads read the unit table
    # The evaluation's matrix products (which release the GIL) run on a thread of their own
    # while this one saves the checkpoint and writes the outputs; only this thread writes
    # files, so a signal still finds no partial file and names the saved tables.
    scoring = Background(evaluation.score, wv)
    kept = checkpoints.keep_trained(state, tables, result.words)
    signals.finish(str(kept), "evaluating")
    resume = f"train.resume={kept.parent if kept.name == FINAL else kept}"

    metrics.update(
        words_per_sec=result.words_per_sec,
        train_seconds=result.seconds,
        loss=result.loss,
        epoch_losses=result.epoch_losses,
    )
    neighbours = evaluation.probes(wv, step)
    signals.now("writing the projector")
    evaluation.projector(wv, step)
    _export(wv, cfg.export.formats, export_dir, kept, resume, signals)
    signals.now("evaluating")
    scores = evaluation.report(scoring.result(), step)
    metrics.update(scores)
    writer.close()
    metrics["run_seconds"] = time.perf_counter() - run_started
    signals.now("writing metrics.json")
    _write_metrics(metrics, out, export_dir, kept, resume)
    if not cfg.export.checkpoint and str(kept) != checkpoints.resumed_from:
        kept.unlink(missing_ok=True)  # asked for vectors only; it was kept until they were written
    _summary(cfg, wv, result, metrics, scores, neighbours, checkpoints.resumed_from, out)
    return metrics


def _export(wv, formats, export_dir: Path, kept: Path, resume: str, signals) -> None:
    """Write ``vectors.FMT`` for each format of ``export.formats``; a full disk names the saved tables."""
    for fmt in formats:
        signals.now(f"exporting vectors.{fmt}")
        try:
            if fmt in ("bin", "txt"):
                wv.save_word2vec_format(export_dir / f"vectors.{fmt}", binary=fmt == "bin")
            else:
                wv.save(export_dir / f"vectors.{fmt}")
        except OSError as e:  # the trained tables are safe in `kept`: say so
            raise ValueError(
                f"cannot write vectors.{fmt} into {export_dir} ({reason(e)}); free space there or set export.dir "
                f"to a folder with room, then finish with {resume} (training is skipped): the trained tables "
                f"are saved in {kept}"
            ) from None


def _write_metrics(metrics: Dict[str, Any], out: Path, export_dir: Path, kept: Path, resume: str) -> None:
    """``metrics.json`` in the run folder; a full disk names the vectors and the saved tables."""
    try:
        with atomic_write(out / "metrics.json", "w") as f:
            f.write(json.dumps(metrics, indent=2))
    except OSError as e:
        raise ValueError(
            f"cannot write metrics.json into {out} ({reason(e)}); the vectors are written (in {export_dir}) and "
            f"the trained tables saved in {kept}; free space there and finish with {resume}"
        ) from None


def _summary(cfg, wv, result, metrics, scores, neighbours: str, resumed_from, out: Path) -> None:
    """Say how the run went: speed and loss, the scores, the probe words' neighbours, where the outputs are."""
    if result.words:
        say(
            f"trained {result.words:,} words in {result.seconds:.1f}s ({result.words_per_sec:,.0f} words/s), "
            f"final loss {result.loss:.4f}; the run took {metrics['run_seconds']:.1f}s"
        )
    else:
        say(f"training had ended in {resumed_from}: evaluated and exported only; final loss {result.loss:.4f}")
    if metrics.get("kernel_threads_changes"):
        runs = ", ".join(f"{chunks:,} on {size}" for size, chunks in metrics["kernel_threads"].items())
        say(
            f"chunks by CPU kernel threads: {runs}; fewer threads measured faster for a while "
            "(cores busy, or slow to share memory), so chunks ran on fewer (train.adapt_workers)"
        )
    if scores:
        say(f"evaluation (eval.restrict_vocab={cfg.eval.restrict_vocab}): " + format_scores(scores))
    if neighbours:
        among = min(cfg.eval.probe_vocab or len(wv), len(wv))
        say(f"nearest neighbours (among the {among:,} most frequent words):\n" + neighbours)
    missing = [word for word in cfg.eval.probe_words if word not in wv]
    if missing:
        say(f"probe words not in the vocabulary: {', '.join(missing)} (eval.probe_words)")
    say(f"outputs in {out}")
