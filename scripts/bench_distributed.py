"""Training over several processes (``torchrun``, gloo on CPU) against one process, same corpus and settings.

Runs ``python -m w2v.train`` under ``torchrun`` with 1 process (the default CPU kernel on
all cores, and the torch step on one thread, which is what each rank of a distributed run
executes) and with ``--ranks`` processes (tables row-sharded over the ranks, one thread
each), then prints words/s, the ratio to each 1-process run, analogy and WS-353, and the
bytes the ranks send each other per step (ids, rows and gradients of both tables).

    python scripts/bench_distributed.py --corpus ../shared/data/enwiki-gutenberg-20m.txt.gz --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
        f"train.batch_size={args.batch_size}", "train.progress=false", "eval.every_epoch=false", "eval.projector_words=0",
        "export.formats=[]", "export.checkpoint=false", f"hydra.run.dir={folder}", *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return json.loads((folder / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(ROOT / "w2v" / "data" / "enwiki-gutenberg-2m.txt.gz"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {
            "1 process, CPU kernel, all cores": run(1, args, tmp / "a"),
            "1 process, torch step, 1 thread": run(1, args, tmp / "b", "train.kernel=torch", "train.workers=1"),
            f"{args.ranks} processes, torch step, 1 thread each": run(args.ranks, args, tmp / "c"),
        }
    dist = list(runs.values())[-1]
    print(f"corpus {args.corpus}, {args.epochs} epoch(s), dim {args.dim}, batch {args.batch_size} pairs")
    print(f"{'run':<42} {'words/s':>10} {'analogy':>8} {'WS-353':>7} {'bytes/step':>11}")
    for name, m in runs.items():
        sent = f"{m['sent_bytes_per_step']:,.0f}" if "sent_bytes_per_step" in m else "-"
        print(f"{name:<42} {m['words_per_sec']:>10,.0f} {m.get('analogy', float('nan')):>8.2%} "
              f"{m.get('ws353_spearman', float('nan')):>7.3f} {sent:>11}")
    for name, m in list(runs.items())[:2]:
        print(f"{args.ranks} processes / ({name}): {dist['words_per_sec'] / m['words_per_sec']:.2f}x")


if __name__ == "__main__":
    main()
