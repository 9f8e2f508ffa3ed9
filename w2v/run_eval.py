"""What a run learns of its vectors as it goes: evaluation scores, probe neighbours, the projector.

Between epochs (``eval.every_epoch``) and once training ends, the ranks gather the tables
on rank 0 (:func:`whole_tables`), which turns the input table into
:class:`~w2v.vectors.WordVectors` (:func:`word_vectors`); :class:`RunEvaluation` then
scores them on the analogy and similarity sets, finds the probe words' neighbours among
the frequent words and writes the first rows to TensorBoard's projector. Scoring
(:meth:`RunEvaluation.score`) reads the vectors only, so the end of a run scores on a
thread of its own; :meth:`RunEvaluation.report` then logs the scores from the thread that
writes files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from . import parallel
from .evaluate import evaluate_word_analogies, evaluate_word_pairs
from .monitor import format_scores
from .projector import write_projector
from .safefile import reason
from .vectors import WordVectors

Scored = Tuple[Dict[str, float], Optional[str]]  # the scores, and why the evaluation was skipped (if it was)


def whole_tables(model, sharded: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Both whole tables on rank 0 (``None`` elsewhere): a collective over several processes.

    Args:
        model: a :class:`~w2v.model.SkipGramNS`.
        sharded: its tables are spread over the processes (else each holds them whole).
    """
    if not sharded:  # one process, or replicas: equal on every rank after the last merge
        return model.input.weight.detach(), model.output.weight.detach()
    with parallel.peer_failures("gathering the tables"):
        return model.input.full_table(dst=0), model.output.full_table(dst=0)


def word_vectors(vocab, table: torch.Tensor) -> WordVectors:
    """The rows of ``table`` (on any device) as the vectors of ``vocab``'s words, with their counts."""
    return WordVectors(vocab.index_to_key, table.cpu().numpy(), counts=vocab.counts)


class RunEvaluation:
    """Scores, probe neighbours and the projector of a run's vectors, logged to TensorBoard.

    Args:
        cfg: the run's ``eval`` config (``restrict_vocab``, ``probe_words``, ``topn``, ...).
        analogies, similarity: the evaluation files (``None``: that score is left out).
        writer: TensorBoard's ``SummaryWriter`` (or anything with its methods).
        say: ``say(text, err=False)``, a line of the run (clear of the progress bar).
        projector_dir: the writer's folder, where the projector's files go (``None``: none).
    """

    def __init__(
        self, cfg, analogies: Optional[Path], similarity: Optional[Path], writer, say: Callable[..., None],
        projector_dir: Optional[Path] = None,
    ) -> None:
        self.cfg, self.analogies, self.similarity, self.writer, self.say = cfg, analogies, similarity, writer, say
        self.projector_dir = projector_dir
        self._warned = False

    def score(self, wv: WordVectors) -> Scored:
        """The evaluation's scores, and why it was skipped (if it was); reads ``wv`` only."""
        scores = {}
        try:  # a corpus that shares no words with an evaluation set still trains
            if self.analogies is not None:
                accuracy, _ = evaluate_word_analogies(wv, self.analogies, restrict_vocab=self.cfg.restrict_vocab or None)
                scores["analogy"] = float(accuracy)
            if self.similarity is not None:
                _, spearman, oov = evaluate_word_pairs(wv, self.similarity, restrict_vocab=self.cfg.restrict_vocab or None)
                scores["ws353_spearman"] = float(spearman[0])
                scores["ws353_oov_pct"] = float(oov)
        except ValueError as e:
            return scores, str(e)
        return scores, None

    def report(self, scored: Scored, step: int) -> Dict[str, float]:
        """Log what :meth:`score` found: the scores to TensorBoard, a skipped evaluation once."""
        scores, skipped = scored
        if skipped and not self._warned:
            self.say(f"warning: evaluation skipped: {skipped}", err=True)
            self._warned = True
        for name, value in scores.items():
            self.writer.add_scalar(f"eval/{name}", value, step)
        return scores

    def evaluate(self, wv: WordVectors, step: int) -> Dict[str, float]:
        """:meth:`score`, then :meth:`report`."""
        return self.report(self.score(wv), step)

    def probes(self, wv: WordVectors, step: int) -> str:
        """Each probe word's neighbours among the frequent words (as analogies are scored)."""
        lines = []
        for word in self.cfg.probe_words:
            if word in wv:
                near = wv.most_similar(word, topn=self.cfg.topn, restrict_vocab=self.cfg.probe_vocab or None)
                lines.append(f"{word}: " + ", ".join(f"{w} {s:.2f}" for w, s in near))
        text = "\n".join(lines)
        if text:
            self.writer.add_text("neighbours", text.replace("\n", "  \n"), step)
        return text

    def projector(self, wv: WordVectors, step: int) -> None:
        """The first ``eval.projector_words`` vectors (the most frequent words) to TensorBoard's projector.

        A folder that takes no more files (a full disk) is one warning; the run goes on without.
        """
        if self.cfg.projector_words > 0 and self.projector_dir is not None:
            n = min(self.cfg.projector_words, len(wv))
            try:
                write_projector(self.projector_dir, wv.vectors[:n], wv.index_to_key[:n], step, tag="input")
            except OSError as e:
                self.say(f"warning: no more projector files: cannot write into {self.projector_dir} ({reason(e)})", err=True)
                self.projector_dir = None

    def between_epochs(self, epoch: int, wv: WordVectors, result, step: int) -> None:
        """Evaluate after epoch ``epoch`` (of :class:`~w2v.state.FitResult` ``result``) and say how it went."""
        scores = self.evaluate(wv, step)
        self.probes(wv, step)
        self.projector(wv, step)
        self.say(f"epoch {epoch + 1}: loss {result.loss:.4f}, {result.words_per_sec:,.0f} words/s" + format_scores(scores, ", "))
