"""Training over several processes (``torchrun``, gloo on CPU) against one process with the same resources.

Alternates one process and ``--ranks`` processes, each with ``train.workers=--workers``
(so N processes get N times the cores of one), ``--repeat`` times, and prints each run's
words/s, analogy and WS-353, the ratio of every N-process run to the 1-process run just
before it (runs side by side see the same machine), and what the ranks exchanged. A
speed-up of N processes is meaningful only on a machine with N x workers idle cores.

    python scripts/bench_distributed.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --repeat 3

``--cores-per-process K`` gives every process the same cores: one process runs on cores
0..K-1 and N processes on cores 0..NK-1 (``taskset``). Without it one process with
``train.workers=1`` also uses a second core when there is one (its drawing thread), which
N processes on N cores cannot: the comparison is then of unequal resources per process.

``--mode sharded`` runs the row-sharded layout instead of replicas. ``--merge`` and
``--merge-every`` take comma-separated lists: every combination runs once after the
alternating pairs (a run is deterministic, so one run gives its quality), which is how
the merge rule and interval were chosen (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(ranks: int, args, folder: Path, *overrides: str) -> dict:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_port", str(free_port()),
        "-m", "w2v.train", f"data.corpus={args.corpus}", f"train.epochs={args.epochs}", f"model.dim={args.dim}",
        f"train.workers={args.workers}", "train.progress=false", "eval.every_epoch=false", "eval.projector_words=0",
        "export.formats=[]", "export.checkpoint=false", f"hydra.run.dir={folder}", *overrides,
    ]
    if args.cores_per_process:
        cmd = ["taskset", "-c", f"0-{ranks * args.cores_per_process - 1}", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.workers)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["label"] = f"{ranks} process{'es' if ranks > 1 else ''}, " + (" ".join(overrides) or "defaults")
    return metrics


def row(m: dict) -> str:
    extra = ""
    if "merges" in m:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in m["rank_seconds"].items())
        extra = f"{m['merges']} merges of {m['merge_bytes'] / 2**20:.1f} MiB; rank 0 s: {parts}"
    elif "sent_bytes_per_step" in m:
        extra = f"{m['sent_bytes_per_step']:,.0f} B sent per step"
    return (f"{m['label']:<58} {m['words_per_sec']:>10,.0f} {m.get('analogy', float('nan')):>8.2%} "
            f"{m.get('ws353_spearman', float('nan')):>7.3f}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(ROOT / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="train.workers of every process")
    parser.add_argument("--repeat", type=int, default=2, help="alternating pairs of runs (1 process, then N)")
    parser.add_argument("--mode", default="replicas", choices=("replicas", "sharded"))
    parser.add_argument("--cores-per-process", type=int, default=0,
                        help="pin one process to this many cores and N processes to N times as many (taskset)")
    parser.add_argument("--merge", default="", help="merge rules to sweep, e.g. sum,mean,changed")
    parser.add_argument("--merge-every", default="", help="merge intervals in words to sweep, e.g. 262144,1048576")
    args = parser.parse_args()
    mode = [f"train.distributed={args.mode}"]
    if args.cores_per_process and args.ranks * args.cores_per_process > len(os.sched_getaffinity(0)):
        sys.exit(f"--cores-per-process {args.cores_per_process} x {args.ranks} ranks needs more cores than this machine has")
    pinned = f", {args.cores_per_process} core(s) per process (taskset)" if args.cores_per_process else ""
    print(f"corpus {args.corpus}, {args.epochs} epoch(s), dim {args.dim}, train.workers={args.workers} per process{pinned}",
          flush=True)
    print(f"{'run':<58} {'words/s':>10} {'analogy':>8} {'WS-353':>7}")
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(args.repeat):
            one = run(1, args, tmp / f"one{i}")
            print(row(one), flush=True)
            many = run(args.ranks, args, tmp / f"many{i}", *mode)
            print(row(many), flush=True)
            pairs.append((one, many))
        sweep = list(itertools.product([r for r in args.merge.split(",") if r], [k for k in args.merge_every.split(",") if k]))
        for rule, every in sweep:
            m = run(args.ranks, args, tmp / f"sweep-{rule}-{every}", *mode, f"train.merge={rule}", f"train.merge_every_words={every}")
            print(row(m), flush=True)
    if pairs:
        ratios = [m["words_per_sec"] / o["words_per_sec"] for o, m in pairs]
        print(f"{args.ranks} processes / 1 process, words/s, pair by pair: " + ", ".join(f"{r:.2f}x" for r in ratios)
              + f"; median {statistics.median(ratios):.2f}x")
        one, many = pairs[-1]
        for key, name in (("analogy", "analogy"), ("ws353_spearman", "WS-353")):
            if key in one and key in many:
                print(f"{name}: {many[key] - one[key]:+.4f} against one process")


if __name__ == "__main__":
    main()
