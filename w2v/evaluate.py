"""Word-analogy accuracy and word-similarity correlation, with gensim's answers, batched.

The library functions mirror gensim's ``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs``: the same ``restrict_vocab`` (the first N words), the same case
handling (``case_insensitive`` upper-cases the test words and the vocabulary, the first,
most frequent, spelling of a word winning), the same skipping (or, with ``dummy4unknown``,
zero-scoring) of questions with out-of-vocabulary words, and a final "Total accuracy" section.

gensim answers each analogy with its own ``most_similar`` call; here all the questions are
answered at once, from the products of their few distinct words with the table
(:mod:`w2v.cosadd`), or from one matrix product of their query vectors
(:meth:`w2v.vectors.WordVectors.top_k`) when they name many words. Both round differently
from gensim's matrix-vector products, so a question whose top candidates lie within
``1e-5`` of each other is re-scored with gensim's own arithmetic; the answers then match
gensim's question for question.

Command line (``w2v-evaluate`` once installed)::

    python -m w2v.evaluate vectors.bin                   # the bundled analogy and WordSim-353 sets
    python -m w2v.evaluate vectors.bin --analogies my-questions.txt --similarity my-pairs.tsv \\
        [--restrict-vocab 30000] [--json]

``--restrict-vocab`` defaults to the value training evaluates with (``eval.restrict_vocab``),
so both report the same score for the same vectors.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from w2v import files
from w2v.cli import USER_ERRORS, ArgumentParser, UsageError, fail, to_json, whole_number
from w2v.config import EvalConfig
from w2v.correlation import Correlation, pearson, spearman
from w2v.cosadd import cosadd_top_k, worth_it
from w2v.vectors import WordVectors, check_count, torch_device

log = logging.getLogger(__name__)

_TIE = 1e-5  # re-score a question whose deciding cosines are closer than this
_CANDIDATES = 5  # gensim looks at most_similar(..., topn=5)


# --- analogies -----------------------------------------------------------------------------


def evaluate_word_analogies(
    wv: WordVectors,
    analogies,
    restrict_vocab: Optional[int] = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    device=None,
) -> Tuple[float, List[dict]]:
    """Accuracy on ``a b c d`` questions (a is to b as c is to d) by 3CosAdd, like gensim's.

    Args:
        wv: the vectors.
        analogies: a file of ``: section`` lines and four-word questions
            (the bundled ``w2v/data/questions-words.txt``).
        restrict_vocab: only the first this-many words answer or take part in questions.
        case_insensitive: compare upper-cased words.
        dummy4unknown: count questions with unknown words as wrong instead of skipping them.
        device: where the matrix products run (None: CPU).

    Returns:
        ``(score, sections)``: the total accuracy and one dict per section,
        ``{"section", "correct", "incorrect", "oov"}``, where ``correct``/``incorrect`` list
        the questions as tuples (upper-cased when ``case_insensitive``) and ``oov`` counts the
        questions with unknown words. The last section is ``"Total accuracy"``.
    """
    ok = _ok_vocab(wv, restrict_vocab, case_insensitive)
    read = _read_analogies(analogies, case_insensitive)
    known = [[q for q in questions if all(w in ok for w in q)] for _, questions in read]
    # Every section's questions in one batch: one pass over the table instead of one per section.
    abc_d = [[ok[w] for w in q] for qs in known for q in qs]
    right = iter(_solve(wv, abc_d, ok, restrict_vocab, case_insensitive, device))
    sections = []
    for (name, questions), section_known in zip(read, known):
        section = {"section": name, "correct": [], "incorrect": [], "oov": len(questions) - len(section_known)}
        answers = [next(right) for _ in section_known]
        for q, is_right in _merge(questions, section_known, answers, ok, dummy4unknown):
            section["correct" if is_right else "incorrect"].append(q)
        sections.append(section)
        _log_section(section)
    total = {
        "section": "Total accuracy",
        "correct": [q for s in sections for q in s["correct"]],
        "incorrect": [q for s in sections for q in s["incorrect"]],
        "oov": sum(s["oov"] for s in sections),
    }
    sections.append(total)
    return _log_section(total), sections


def _ok_vocab(wv: WordVectors, restrict_vocab, case_insensitive) -> Dict[str, int]:
    """gensim's ``ok_vocab``: the first ``restrict_vocab`` words; the first of several spellings wins."""
    check_count(restrict_vocab, "restrict_vocab")
    keys = wv.index_to_key[:restrict_vocab]
    return {(k.upper() if case_insensitive else k): i for i, k in reversed(list(enumerate(keys)))}


def _read_analogies(path, case_insensitive) -> List[Tuple[str, List[tuple]]]:
    """The sections of an analogy file, each ``(name, [question, ...])``; read once per version of the file.

    A run evaluates after every epoch: the file is parsed the first time only (~0.1 s for
    questions-words.txt), and again if it changes. Callers must not change the lists.
    """
    files.check_regular(path)  # a FIFO would block; lines are bounded (a file without newlines)
    status = os.stat(path)
    return _parse_analogies(str(path), case_insensitive, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=4)
def _parse_analogies(path: str, case_insensitive: bool, mtime_ns: int, size: int) -> List[Tuple[str, List[tuple]]]:
    sections: List[Tuple[str, List[tuple]]] = []
    line_no = 0
    with open(path, "rb") as f:
        for block in files.line_blocks(f, str(path), files.MAX_LINE_BYTES):  # ~4x reading line by line
            for raw in block:
                line_no += 1
                line = raw.decode("utf-8")
                if line.startswith(": "):
                    sections.append((line.lstrip(": ").strip(), []))
                    continue
                if not sections:
                    raise ValueError(f"{path}:{line_no}: a question before the first ': section' line; "
                                     "an analogy file starts with a line like ': capital-common-countries'")
                words = (line.upper() if case_insensitive else line).split()
                if len(words) == 4:  # gensim skips other lines too
                    sections[-1][1].append(tuple(words))
    return sections


def _merge(questions, known, right, ok, dummy4unknown):
    answers = iter(right)
    for q in questions:
        if all(w in ok for w in q):
            yield q, next(answers)
        elif dummy4unknown:
            yield q, False


def _solve(wv: WordVectors, abc_d: List[List[int]], ok: Dict[str, int], restrict_vocab, case_insensitive, device) -> List[bool]:
    """Whether gensim's 3CosAdd answer to each question (ids of a, b, c, expected) is right.

    Question ids come from ``ok`` (:func:`_ok_vocab`): each is the first id of its spelling,
    so a candidate is spelled like a question word when its first id is that word's id.
    """
    if not abc_d:
        return []
    restrict_vocab = min(len(wv), restrict_vocab or len(wv))  # the words searched
    ids = np.asarray(abc_d, dtype=np.int64)  # (n, 4)
    wv.fill_norms()
    if worth_it(ids[:, :3], wv.vector_size):  # few distinct words: from their products with the table
        scores, top = cosadd_top_k(wv.unit_table(device), ids[:, :3], _CANDIDATES + 1, restrict_vocab)
    else:
        query = _gensim_queries(wv.vectors, wv.norms, ids[:, 0], ids[:, 1], ids[:, 2])  # (n, D)
        scores, top = wv.top_k(query, _CANDIDATES + 1, exclude=ids[:, :3], restrict_vocab=restrict_vocab, device=device)
    first = np.arange(restrict_vocab, dtype=np.int64)  # each word's first spelling's id
    if case_insensitive:
        first = np.fromiter((ok[k.upper()] for k in wv.index_to_key[:restrict_vocab]), np.int64, restrict_vocab)
    valid = top >= 0  # (n, 6): ids first, -1 padding last
    spelled = np.where(valid, first[np.where(valid, top, 0)], -1)
    pos = _first_pick(spelled[:, :_CANDIDATES], valid[:, :_CANDIDATES], ids[:, :3])  # (n,)
    n_valid = valid.sum(1)
    # A question is re-scored when the pick or the next candidate ties with one before it.
    deciding = np.minimum(pos + 2, n_valid)  # how many of the best scores decide the pick
    gaps = scores[:, :-1] - scores[:, 1:]  # (n, 5); -inf - -inf is nan, beyond `deciding`
    tie = ((gaps < _TIE) & (np.arange(gaps.shape[1]) < (deciding - 1)[:, None])).any(1)
    picked = np.where(pos >= 0, spelled[np.arange(len(ids)), np.maximum(pos, 0)], -1)
    right = (pos >= 0) & (picked == ids[:, 3])
    key = (lambda i: wv.index_to_key[i].upper()) if case_insensitive else (lambda i: wv.index_to_key[i])
    for n in np.flatnonzero(tie):  # gensim's own arithmetic decides near-ties
        a, b, c, expected = ids[n].tolist()
        query = _gensim_queries(wv.vectors, wv.norms, ids[n : n + 1, 0], ids[n : n + 1, 1], ids[n : n + 1, 2])[0]
        cands = _gensim_candidates(wv.vectors, wv.norms, query, (a, b, c), restrict_vocab)
        p = _pick(cands, {key(a), key(b), key(c)}, key)
        right[n] = p >= 0 and key(cands[p]) == key(expected)
    return right.tolist()


def _first_pick(spelled: np.ndarray, valid: np.ndarray, abc: np.ndarray) -> np.ndarray:
    """:func:`_pick` for every question at once: the position gensim answers with, ``-1`` for none.

    Args:
        spelled: ``(n, m)`` the candidates' first-spelling ids, best first.
        valid: ``(n, m)`` which candidates exist (the rest pad the end).
        abc: ``(n, 3)`` the question words' first-spelling ids.
    """
    other = valid & (spelled[:, :, None] != abc[:, None, :]).all(2)  # (n, m) not spelled like a question word
    last = valid.sum(1) - 1  # gensim's answer when every candidate is a question word (-1: none)
    return np.where(other.any(1), other.argmax(1), last)


def _pick(cands: Sequence[int], ignore: set, key) -> int:
    """gensim's loop: the first candidate not spelled like a question word, else the last one."""
    for pos, i in enumerate(cands):
        if key(i) not in ignore:
            return pos
    return len(cands) - 1


def _gensim_queries(vectors, norms, a, b, c) -> np.ndarray:
    """gensim's ``get_mean_vector([b, c, a], [1, 1, -1], post_normalize=True)``, step for step."""
    unit = lambda i: vectors[i] / norms[i][:, None]  # noqa: E731  (float32, as get_vector(norm=True))
    mean = unit(b)
    mean = (mean.astype(np.float64) + unit(c)).astype(np.float32)  # gensim adds float64 terms in place
    mean = (mean.astype(np.float64) - unit(a)).astype(np.float32)
    mean = mean.astype(np.float64) / 3.0
    mean = mean * (1.0 / np.linalg.norm(mean, axis=1, keepdims=True))
    return mean.astype(np.float32)


def _gensim_candidates(vectors, norms, query, abc, restrict_vocab) -> List[int]:
    """gensim's ``most_similar(..., topn=5)`` ids for one question, with its arithmetic."""
    dists = np.dot(vectors[:restrict_vocab], query) / norms[:restrict_vocab]
    x, topn = -dists, _CANDIDATES + len(abc)
    if topn >= x.size:
        best = np.argsort(x)[:topn]
    else:
        best = np.argpartition(x, topn)[:topn]
        best = best.take(np.argsort(x.take(best)))
    return [int(i) for i in best if i not in abc][:_CANDIDATES]


def _log_section(section: dict) -> float:
    correct, incorrect = len(section["correct"]), len(section["incorrect"])
    if correct + incorrect == 0:
        return 0.0
    score = correct / (correct + incorrect)
    log.info("%s: %.1f%% (%i/%i)", section["section"], 100.0 * score, correct, correct + incorrect)
    return score


# --- word pairs ----------------------------------------------------------------------------


def evaluate_word_pairs(
    wv: WordVectors,
    pairs,
    delimiter: str = "\t",
    restrict_vocab: Optional[int] = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    encoding: str = "utf8",
) -> Tuple[Correlation, Correlation, float]:
    """Correlation of cosine similarity with human judgements, like gensim's.

    Args:
        wv: the vectors.
        pairs: ``word1<delimiter>word2<delimiter>score`` lines; lines starting with ``#`` are
            skipped (the bundled ``w2v/data/wordsim353.tsv``).
        delimiter: the field separator.
        restrict_vocab: only the first this-many words count as known.
        case_insensitive: compare upper-cased words.
        dummy4unknown: give pairs with unknown words similarity 0 instead of skipping them.
        encoding: of the file.

    Returns:
        ``(pearson, spearman, oov_ratio)``: two :class:`Correlation` ``(statistic, pvalue)``
        and the percentage of pairs with an unknown word.
    """
    gold, model, oov = _word_pairs(wv, pairs, delimiter, restrict_vocab, case_insensitive, dummy4unknown, encoding)
    return pearson(gold, model), spearman(gold, model), _oov_ratio(len(gold), oov, dummy4unknown)


def _word_pairs(wv, pairs, delimiter, restrict_vocab, case_insensitive, dummy4unknown, encoding):
    ok = _ok_vocab(wv, restrict_vocab, case_insensitive)
    unit = wv.get_normed_vectors()
    gold, model, oov = [], [], 0
    files.check_regular(pairs)  # a FIFO would block; lines are bounded (a file without newlines)
    with open(pairs, "rb") as f:
        for raw in files.lines(f, str(pairs)):
            line = raw.decode(encoding)
            if not line or line.startswith("#"):
                continue
            try:
                a, b, sim = [w.upper() for w in line.split(delimiter)] if case_insensitive else line.split(delimiter)
                sim = float(sim)
            except (ValueError, TypeError):
                continue
            if a not in ok or b not in ok:
                oov += 1
                if dummy4unknown:
                    gold.append(sim)
                    model.append(0.0)
                continue
            gold.append(sim)
            model.append(float(unit[ok[a]] @ unit[ok[b]]))
    if not gold:
        raise ValueError(f"{pairs}: no similarity judgements found: either the lines are not "
                         f"'word1{delimiter!r}word2{delimiter!r}score' or every pair is out of vocabulary")
    return gold, model, oov


# --- command line --------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m w2v.evaluate VECTORS [--analogies FILE] [--similarity FILE] [--json]``."""
    defaults = EvalConfig()
    p = ArgumentParser(prog="python -m w2v.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("vectors", help="vectors file (.bin, .txt, .glove.txt, .npy, .pt)")
    p.add_argument("--analogies", help="analogy questions (default, with neither file: the bundled questions-words.txt)")
    p.add_argument("--similarity", help="word pairs with human scores (default, with neither file: the bundled wordsim353.tsv)")
    p.add_argument("--format", help="vectors format when the suffix does not say (bin, txt, glove, npy, pt)")
    p.add_argument("--restrict-vocab", type=whole_number(0, " (0: all)"), default=defaults.restrict_vocab,
                   help=f"only the first N words count (default {defaults.restrict_vocab}, as training's "
                   "eval.restrict_vocab; 0: all)")
    p.add_argument("--case-sensitive", action="store_true", help="compare words as written (default: upper-cased)")
    p.add_argument("--dummy4unknown", action="store_true", help="count questions/pairs with unknown words as wrong/0")
    p.add_argument("--delimiter", default="\t", help="field separator of --similarity (default tab)")
    p.add_argument("--device", default=None, help="where analogies are solved: cpu, cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        return fail(e)
    if not (args.analogies or args.similarity):  # the sets training evaluates with
        args.analogies, args.similarity = defaults.analogies, defaults.similarity
    try:
        torch_device(args.device, "--device")  # before the vectors are read
        wv = WordVectors.load(args.vectors, format=args.format)
        report: dict = {"vectors": args.vectors, "words": len(wv), "dim": wv.vector_size}
        opts = dict(restrict_vocab=args.restrict_vocab or None, case_insensitive=not args.case_sensitive,
                    dummy4unknown=args.dummy4unknown)
        if args.analogies:
            score, sections = evaluate_word_analogies(wv, args.analogies, device=args.device, **opts)
            report["analogies"] = {"path": args.analogies, **opts, "score": score,
                                   "sections": [_section_counts(s, args.dummy4unknown) for s in sections]}
        if args.similarity:
            gold, model, oov = _word_pairs(wv, args.similarity, args.delimiter, encoding="utf8", **opts)
            pr, sp, ratio = pearson(gold, model), spearman(gold, model), _oov_ratio(len(gold), oov, args.dummy4unknown)
            report["similarity"] = {"path": args.similarity, **opts, "pearson": pr._asdict(),
                                    "spearman": sp._asdict(), "pairs": len(gold), "oov": oov, "oov_pct": ratio}
    except USER_ERRORS as e:
        return fail(e)
    print(to_json(report, indent=2) if args.json else _text(report))
    return 0


def _oov_ratio(n_scored: int, oov: int, dummy4unknown: bool) -> float:
    """gensim's percentage of pairs with unknown words (``n_scored`` includes dummies)."""
    return 100.0 * oov / (n_scored if dummy4unknown else n_scored + oov)


def _section_counts(s: dict, dummy4unknown: bool) -> dict:
    correct, incorrect = len(s["correct"]), len(s["incorrect"])
    seen = correct + incorrect
    return {"section": s["section"], "correct": correct, "incorrect": incorrect, "seen": seen,
            "skipped": 0 if dummy4unknown else s["oov"], "accuracy": correct / seen if seen else 0.0}


def _text(report: dict) -> str:
    out = [f"{report['vectors']}: {report['words']} words x {report['dim']}"]
    if "analogies" in report:
        a = report["analogies"]
        case = "case-insensitive" if a["case_insensitive"] else "case-sensitive"
        out += ["", f"analogies: {a['path']} (restrict_vocab={a['restrict_vocab']}, {case})",
                f"{'section':<32}{'correct':>8}{'seen':>7}{'skipped':>9}{'accuracy':>10}"]
        for s in a["sections"]:
            out.append(f"{s['section']:<32}{s['correct']:>8}{s['seen']:>7}{s['skipped']:>9}"
                       f"{100 * s['accuracy']:>9.1f}%")
    if "similarity" in report:
        s = report["similarity"]
        out += ["", f"similarity: {s['path']} (restrict_vocab={s['restrict_vocab']}; {s['pairs']} pairs scored, "
                    f"{s['oov']} with unknown words: {s['oov_pct']:.1f}%)"]
        for name in ("spearman", "pearson"):
            out.append(f"  {name:<9}{s[name]['statistic']:.4f}  (p = {s[name]['pvalue']:.3g})")
    return "\n".join(out)


def cli() -> None:
    """The ``w2v-evaluate`` command: :func:`main`, then the process ends at once (:mod:`w2v.exiting`)."""
    from .exiting import exit_now

    exit_now(main())


if __name__ == "__main__":
    cli()
