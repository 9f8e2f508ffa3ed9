"""From the command to the vectors: w2v's whole run against gensim's, end to end.

Each round runs, one after the other, each in a fresh process, timed from its start to its
exit (so imports, reading the corpus, training and every output count):

- **w2v**: ``python -m w2v.train data.corpus=C train.epochs=E model.dim=D train.progress=false``,
  defaults otherwise: the evaluation (analogies, WS-353), the probe neighbours, the
  TensorBoard projector, ``vectors.bin`` and ``vectors.txt`` and the checkpoint. "cold" runs
  with an empty token cache (it tokenizes the corpus, as gensim scans it); "warm" runs again
  with that cache (a second run on the same corpus).
- **gensim**: a Python process that imports gensim, streams the corpus with ``LineSentence``,
  builds the vocabulary, trains with the same settings (skip-gram, negative 5, window 5,
  sample 1e-3, min_count 5, alpha 0.025 -> 0.0001, one worker thread per core) and saves
  ``vectors.bin``. It evaluates nothing and writes no other file.

The corpus is the first ``--words`` words of ``--corpus`` written text8-style (lowercased
runs of letters, 1,000 per line), so both systems see the same tokens. The rounds alternate
the systems, so a machine whose speed drifts treats both alike; the ratio is taken per round
and its median printed.

    python scripts/bench_end_to_end.py                     # 5M words of the 20M-word corpus, 3 rounds
    python scripts/bench_end_to_end.py --words 2000000 --rounds 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "enwiki-gutenberg-20m.txt.gz"
BUNDLED = ROOT / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz"

GENSIM = """
import sys
from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence
corpus, out, dim, epochs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = Word2Vec(LineSentence(corpus), vector_size=dim, window=5, negative=5, sample=1e-3, sg=1, hs=0, min_count=5,
                 alpha=0.025, min_alpha=0.0001, epochs=epochs, workers=workers, seed=1)
model.wv.save_word2vec_format(out, binary=True)
"""


def text8_style(source: str, words: int, dest: Path) -> int:
    """Write the first ``words`` tokens of ``source`` (w2v's tokenizer), 1,000 per line; return the count."""
    sys.path.insert(0, str(ROOT))
    from w2v.corpus import Tokenizer, read_chunks, resolve_corpus

    tokenizer = Tokenizer()
    stream = (t for path in resolve_corpus(source) for tokens in tokenizer.stream(read_chunks(path)) for t in tokens)
    stream = itertools.islice(stream, words)
    written = 0
    with open(dest, "w", encoding="utf-8") as f:
        while line := list(itertools.islice(stream, 1000)):
            f.write(" ".join(line) + "\n")
            written += len(line)
    return written


def timed(cmd, env, cwd) -> float:
    started = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))}... failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(SHARED if SHARED.is_file() else BUNDLED))
    p.add_argument("--words", type=int, default=5_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--skip-gensim", action="store_true")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="w2v-e2e-"))
    try:
        corpus = tmp / "corpus.txt"
        n = text8_style(args.corpus, args.words, corpus)
        print(f"corpus: {n:,} tokens of {args.corpus}, text8-style; {args.epochs} epoch(s), dim {args.dim}, "
              f"{args.workers} threads", flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        w2v = [sys.executable, "-m", "w2v.train", f"data.corpus={corpus}", f"train.epochs={args.epochs}",
               f"model.dim={args.dim}", f"train.workers={args.workers}", "train.progress=false"]
        gensim = [sys.executable, "-c", GENSIM, str(corpus), str(tmp / "gensim.bin"), str(args.dim), str(args.epochs),
                  str(args.workers)]
        rows = []
        print("\n| round | w2v cold s | w2v warm s | gensim s | x gensim (cold) | x gensim (warm) | w2v training s (cold, warm) |")
        print("|---|---|---|---|---|---|---|")
        for k in range(args.rounds):
            cache = tmp / f"cache-{k}"  # a fresh token cache: the cold run tokenizes
            run_env = dict(env, W2V_CACHE_DIR=str(cache))
            cold = timed(w2v + [f"hydra.run.dir={tmp / f'cold-{k}'}"], run_env, tmp)
            gensim_s = float("nan") if args.skip_gensim else timed(gensim, env, tmp)
            warm = timed(w2v + [f"hydra.run.dir={tmp / f'warm-{k}'}"], run_env, tmp)
            trained = [json.loads((tmp / f"{run}-{k}" / "metrics.json").read_text())["train_seconds"] for run in ("cold", "warm")]
            rows.append((cold, warm, gensim_s))
            print(f"| {k + 1} | {cold:.1f} | {warm:.1f} | {gensim_s:.1f} | {gensim_s / cold:.2f} | {gensim_s / warm:.2f} "
                  f"| {trained[0]:.1f}, {trained[1]:.1f} |", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        cold_x = statistics.median(g / c for c, _, g in rows)
        warm_x = statistics.median(g / w for _, w, g in rows)
        print(f"\nmedian: w2v is {cold_x:.2f}x gensim from command to vectors with a cold token cache, "
              f"{warm_x:.2f}x with a warm one")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
