"""Tokenize, count and cache a 200M-token stream in bounded memory; report tokens/s and peak RSS.

    python scripts/bench_corpus.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --repeat 10
    python scripts/bench_corpus.py --against-python --rounds 3

``--against-python`` instead times one cold tokenization of the corpus (what a first run
does: :func:`w2v.token_cache.encode`) with the C tokenizer and with Python's (its worker
processes, one per core), alternately, checks that both write the same cache entry, and
prints the ratio per round and its median.

The corpus is read ``--repeat`` times through a generator (nothing is copied on disk) and
encoded by :func:`w2v.token_cache.encode_streams` into a temporary folder, exactly as
``load_corpus`` fills its cache: provisional ids streamed to disk, then renumbered by rank
block by block into ``tokens.npy``. Peak resident memory comes from
``resource.getrusage`` and covers the whole process (interpreter and numpy included);
the baseline before encoding is printed next to it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from w2v.corpus import DecodeStats, Tokenizer, read_chunks, resolve_corpus  # noqa: E402
from w2v import native_tokens  # noqa: E402
from w2v.token_cache import encode, encode_streams  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "enwiki-gutenberg-20m.txt.gz"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(SHARED if SHARED.is_file() else str(ROOT / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz")))
    parser.add_argument("--repeat", type=int, default=10, help="times the corpus is streamed (default 10)")
    parser.add_argument("--workdir", default=None, help="where the encoded stream is written (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--against-python", action="store_true", help="time the C tokenizer against Python's")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --against-python (default 3)")
    args = parser.parse_args()
    if args.against_python:
        return against_python(args)

    files = resolve_corpus(args.corpus)
    tokenizer = Tokenizer()
    stats = DecodeStats()
    streams = (read_chunks(path, stats=stats) for _ in range(args.repeat) for path in files)
    work = Path(tempfile.mkdtemp(prefix="w2v-bench-corpus-", dir=args.workdir))
    baseline = peak_rss_mib()
    tokens_seen = [0]
    last = [time.perf_counter()]

    def progress(n: int) -> None:
        tokens_seen[0] += n
        now = time.perf_counter()
        if now - last[0] > 10:
            last[0] = now
            print(f"  {tokens_seen[0] / 1e6:,.0f}M tokens, peak RSS {peak_rss_mib():,.0f} MiB", file=sys.stderr)

    try:
        started = time.perf_counter()
        enc = encode_streams(streams, tokenizer, work, progress, stats, name=args.corpus)
        seconds = time.perf_counter() - started
        cache_mib = sum(p.stat().st_size for p in work.iterdir()) / (1 << 20)
        figures = {
            "corpus": args.corpus,
            "repeat": args.repeat,
            "tokens": len(enc),
            "types": len(enc.types),
            "seconds": round(seconds, 1),
            "tokens_per_sec": round(len(enc) / seconds),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "baseline_rss_mib": round(baseline, 1),
            "cache_mib": round(cache_mib, 1),
            "stream_mib_in_ram_if_held": round(len(enc) * 4 / (1 << 20), 1),
        }
        del enc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{figures['tokens']:,} tokens ({args.repeat} x {args.corpus}), {figures['types']:,} types "
        f"in {seconds:,.1f}s: {figures['tokens_per_sec']:,} tokens/s; peak RSS {figures['peak_rss_mib']:,} MiB "
        f"(baseline {figures['baseline_rss_mib']:,} MiB; the stream itself is {figures['stream_mib_in_ram_if_held']:,} MiB, "
        f"cached on disk as {figures['cache_mib']:,} MiB)"
    )


def against_python(args) -> None:
    files = resolve_corpus(args.corpus)
    own = native_tokens._native
    if own() is None:
        raise SystemExit(f"the C tokenizer is not built here: {native_tokens.native.why_not('tokens')}")
    ratios = []
    print("| round | C s | Python s | C speed-up |\n|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        seconds, entries = {}, {}
        for way in ("c", "python"):
            native_tokens._native = own if way == "c" else (lambda: None)
            work = Path(tempfile.mkdtemp(prefix=f"w2v-bench-corpus-{way}-", dir=args.workdir))
            try:
                started = time.perf_counter()
                enc = encode(files, Tokenizer(), work)
                seconds[way] = time.perf_counter() - started
                entries[way] = [(work / name).read_bytes() for name in ("types.txt", "meta.json")], len(enc)
                del enc
            finally:
                shutil.rmtree(work, ignore_errors=True)
        native_tokens._native = own
        if entries["c"] != entries["python"]:
            raise SystemExit("the C and Python tokenizers wrote different cache entries")
        ratios.append(seconds["python"] / seconds["c"])
        print(f"| {round_} | {seconds['c']:.2f} | {seconds['python']:.2f} | {ratios[-1]:.2f}x |")
    print(f"\n{entries['c'][1]:,} tokens of {args.corpus}: the C tokenizer is {statistics.median(ratios):.2f}x Python's (median)")


if __name__ == "__main__":
    main()
