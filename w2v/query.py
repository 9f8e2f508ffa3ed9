"""Query trained vectors from the command line, like word2vec's ``distance`` and ``word-analogy``.

Interactive (a prompt; one query per line, ``EXIT`` or end of input to quit)::

    python -m w2v.query vectors.bin
    > king                     nearest words to king
    > king - man + woman       analogy: nearest to king - man + woman
    > paris france             nearest to the mean of several words

One shot::

    python -m w2v.query vectors.bin --word king --topn 10
    python -m w2v.query vectors.bin --analogy man king woman     # man : king :: woman : ?
    python -m w2v.query vectors.bin --word king --json
"""

from __future__ import annotations

import sys
import time
from typing import List, Optional, Sequence, TextIO, Tuple

from w2v.cli import USER_ERRORS, ArgumentParser, UsageError, error_message, fail, to_json, whole_number
from w2v.vectors import WordVectors

PROMPT = "Enter word or expression (EXIT to break): "
MAX_QUERY_CHARS = 1 << 16  # a query line; input without newlines (/dev/zero) is refused, not read whole


def parse_expression(text: str) -> Tuple[List[str], List[str]]:
    """Split ``king - man + woman`` into positive and negative words.

    Operators are separate tokens (words may hold hyphens); words without an operator add.

    >>> parse_expression("king - man + woman")
    (['king', 'woman'], ['man'])
    >>> parse_expression("paris france")
    (['paris', 'france'], [])
    """
    positive, negative, sign = [], [], "+"
    for token in text.split():
        if token in ("+", "-"):
            sign = token
            continue
        (positive if sign == "+" else negative).append(token)
        sign = "+"
    return positive, negative


def run_query(wv: WordVectors, positive, negative, topn: int, restrict_vocab: Optional[int]) -> dict:
    """One query as a dict for :func:`w2v.cli.to_json`: the words asked, and the neighbours or an error.

    ``topn`` past the vocabulary returns every word (nothing is sized by ``topn``).
    """
    out: dict = {"positive": positive, "negative": negative}
    if not positive and not negative:
        out["error"] = "nothing to look up; type a word or an expression like 'king - man + woman'"
        return out
    try:
        pairs = wv.most_similar(positive=positive, negative=negative, topn=topn, restrict_vocab=restrict_vocab)
    except KeyError as e:
        out["error"] = error_message(e)
        return out
    out["results"] = [{"word": w, "cosine": round(c, 6)} for w, c in pairs]
    return out


def format_result(result: dict) -> str:
    """A table of neighbours like ``distance``'s, or the error line."""
    if "error" in result:
        return result["error"]
    query = " + ".join(result["positive"])
    if result["negative"]:
        query = (query + " - " if query else "- ") + " - ".join(result["negative"])
    lines = [f"{'Word':>40}  Cosine similarity   (query: {query})", "-" * 72]
    lines += [f"{r['word']:>40}  {r['cosine']:.6f}" for r in result["results"]]
    return "\n".join(lines)


def interact(wv: WordVectors, topn: int, restrict_vocab, as_json: bool, stdin: TextIO, stdout: TextIO) -> None:
    """The prompt: read queries from ``stdin`` until ``EXIT`` or end of input.

    Raises:
        ValueError: a line longer than :data:`MAX_QUERY_CHARS` (input that is not queries).
    """
    prompt = PROMPT if stdin.isatty() else ""
    while True:
        if prompt:
            stdout.write(prompt)
            stdout.flush()
        line = stdin.readline(MAX_QUERY_CHARS + 1)
        if len(line) > MAX_QUERY_CHARS:
            raise ValueError(f"a query line longer than {MAX_QUERY_CHARS:,} characters; is the input a file of queries?")
        if not line or line.strip().upper() in ("EXIT", "QUIT"):
            return
        if not line.strip():
            continue
        result = run_query(wv, *parse_expression(line), topn=topn, restrict_vocab=restrict_vocab)
        stdout.write((to_json(result) if as_json else format_result(result)) + "\n")
        stdout.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m w2v.query VECTORS [--word W | --analogy A B C] [--topn N] [--json]``."""
    p = ArgumentParser(prog="python -m w2v.query", description="Nearest words and analogies, "
                       "like word2vec's distance tool. Without --word/--analogy: a prompt.")
    p.add_argument("vectors", help="vectors file (.bin, .txt, .glove.txt, .npy, .pt)")
    p.add_argument("--format", help="vectors format when the suffix does not say (bin, txt, glove, npy, pt)")
    p.add_argument("--word", help="print the nearest words to WORD (or to an expression in quotes) and exit")
    p.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"), help="A is to B as C is to ?  (B - A + C)")
    p.add_argument("--topn", type=whole_number(1), default=10, help="how many neighbours (default 10)")
    p.add_argument("--restrict-vocab", type=whole_number(0, " (0: all)"), default=0,
                   help="search only the first N (most frequent) words (default 0: all)")
    p.add_argument("--limit", type=whole_number(1), default=None,
                   help="load only the first N vectors (fast look at big files)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        return fail(e)
    if args.word and args.analogy:
        return fail("give either --word or --analogy, not both")
    restrict = args.restrict_vocab or None
    try:
        start = time.perf_counter()
        wv = WordVectors.load(args.vectors, format=args.format, limit=args.limit)
    except USER_ERRORS as e:
        return fail(e)
    if args.word is None and args.analogy is None:
        if sys.stdin.isatty():
            print(f"{args.vectors}: {len(wv)} words x {wv.vector_size}, loaded in "
                  f"{time.perf_counter() - start:.1f}s", file=sys.stderr)
        try:
            interact(wv, args.topn, restrict, args.json, sys.stdin, sys.stdout)
        except ValueError as e:
            return fail(e)
        return 0
    if args.analogy:
        a, b, c = args.analogy
        positive, negative = [b, c], [a]
    else:
        positive, negative = parse_expression(args.word)
    result = run_query(wv, positive, negative, topn=args.topn, restrict_vocab=restrict)
    if "error" in result:
        return fail(result["error"])
    print(to_json(result) if args.json else format_result(result))
    return 0


def cli() -> None:
    """The ``w2v-query`` command: :func:`main`, then the process ends at once (:mod:`w2v.exiting`)."""
    from .exiting import exit_now

    exit_now(main())


if __name__ == "__main__":
    cli()
