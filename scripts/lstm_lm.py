"""Does pretraining help? A word-level LSTM language model, random embeddings vs our vectors.

The model and schedule follow TensorFlow's ``ptb_word_lm`` "small" config: 2 LSTM layers
of 200 units, batch 20, truncated backprop over ``--num-steps`` words, uniform(-0.1, 0.1)
init, plain SGD at lr 1.0 halved every epoch after ``--decay-after``, gradient norm
clipped at 5. (TF's small config uses no dropout; ``--dropout`` defaults to 0.2 here
because the slices this runs on are small.) The same run is made twice with the same seed:
once with a randomly initialised embedding, once with the rows of our vectors
(``WordVectors.to_embedding``; fine-tuned unless ``--freeze``), and the validation
perplexities are printed side by side.

    python scripts/lstm_lm.py w2v/data/enwiki-gutenberg-2m.txt.gz --vectors vectors.bin \\
        --max-words 300000 --epochs 3

The text is split into tokens by ``--token-pattern`` (default: runs of letters,
lowercased, as the trainer does); each line ends with ``<eos>``. The first
``1 - --valid-fraction`` of the tokens train, the rest validate.
"""

from __future__ import annotations

import argparse
import gzip
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from w2v.cli import USER_ERRORS, fail
from w2v.vectors import WordVectors

EOS, UNK = "<eos>", "<unk>"


def read_tokens(path: str, pattern: str, lowercase: bool, max_words: Optional[int]) -> List[str]:
    """Tokens of a text file (``.gz`` too), ``<eos>`` after each line, at most ``max_words``."""
    opener = gzip.open if path.endswith(".gz") else open
    token = re.compile(pattern)
    tokens: List[str] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            words = token.findall(line.lower() if lowercase else line)
            if words:
                tokens.extend(words)
                tokens.append(EOS)
            if max_words and len(tokens) >= max_words:
                return tokens[:max_words]
    return tokens


def batchify(ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """PTB reader layout: ``(batch, steps)``, each row a contiguous stretch of the text."""
    n = len(ids) // batch_size
    return torch.from_numpy(ids[: n * batch_size].reshape(batch_size, n))


class LSTMLanguageModel(nn.Module):
    """Embedding -> dropout -> stacked LSTM -> dropout -> softmax over the vocabulary."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int, layers: int, dropout: float, init_scale: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, vocab_size)
        for p in self.parameters():  # TF's uniform_unit_scaling-free "small" init
            nn.init.uniform_(p, -init_scale, init_scale)

    def forward(self, ids: torch.Tensor, state=None):
        x = self.drop(self.embedding(ids))  # (B, T) -> (B, T, E)
        h, state = self.lstm(x, state)  # (B, T, H)
        return self.out(self.drop(h)), state  # (B, T, V)


def run_epoch(model, data: torch.Tensor, num_steps: int, optimizer=None, clip: float = 5.0) -> float:
    """One pass over ``data`` (B, N); trains when given an optimizer. Returns perplexity."""
    model.train(optimizer is not None)
    state, total, count = None, 0.0, 0
    loss_fn = nn.CrossEntropyLoss()
    with torch.set_grad_enabled(optimizer is not None):
        for start in range(0, data.shape[1] - 1, num_steps):
            x = data[:, start : start + num_steps]  # (B, T)
            y = data[:, start + 1 : start + 1 + num_steps]
            x = x[:, : y.shape[1]]
            if state is not None:
                state = tuple(s.detach() for s in state)  # truncated backprop through time
            logits, state = model(x, state)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
            total += loss.item() * y.numel()
            count += y.numel()
    return math.exp(total / max(count, 1))


def train(args, vocab: List[str], train_data, valid_data, pretrained: Optional[nn.Embedding], label: str) -> float:
    torch.manual_seed(args.seed)
    model = LSTMLanguageModel(len(vocab), args.emb_dim, args.hidden, args.layers, args.dropout, args.init_scale)
    if pretrained is not None:
        model.embedding = pretrained
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    best = math.inf
    for epoch in range(1, args.epochs + 1):
        lr = args.lr * args.lr_decay ** max(0, epoch - args.decay_after)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        train_ppl = run_epoch(model, train_data, args.num_steps, optimizer, args.clip)
        valid_ppl = run_epoch(model, valid_data, args.num_steps)
        best = min(best, valid_ppl)
        print(f"[{label}] epoch {epoch}  lr {lr:.3f}  train ppl {train_ppl:8.2f}  valid ppl {valid_ppl:8.2f}  "
              f"({time.perf_counter() - start:.0f}s)", flush=True)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("text", help="a text file (.gz too)")
    p.add_argument("--vectors", help="our vectors (.bin, .txt, .npy, .pt); without it, only the random run")
    p.add_argument("--format", help="vectors format when the suffix does not say")
    p.add_argument("--max-words", type=int, default=300_000, help="tokens read from the text (default 300k)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--vocab-size", type=int, default=10_000, help="most frequent training words kept (PTB: 10k)")
    p.add_argument("--token-pattern", default=r"[^\W\d_]+",
                   help=r"token regex (default: runs of letters; '\S+' for pre-tokenized text)")
    p.add_argument("--no-lowercase", action="store_true")
    p.add_argument("--emb-dim", type=int, default=None, help="embedding size (default: the vectors' dim, else 200)")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--num-steps", type=int, default=25)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--lr-decay", type=float, default=0.5)
    p.add_argument("--decay-after", type=int, default=2, help="epochs at full lr before halving each epoch")
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--init-scale", type=float, default=0.1)
    p.add_argument("--freeze", action="store_true", help="keep our vectors fixed")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 < args.valid_fraction < 1:
        return fail(f"--valid-fraction must be between 0 and 1, got {args.valid_fraction}")
    try:
        if not Path(args.text).is_file():
            raise FileNotFoundError(f"{args.text}: no such file; check the path")
        wv = WordVectors.load(args.vectors, format=args.format) if args.vectors else None
    except USER_ERRORS as e:
        return fail(e)
    if wv is not None:
        if args.emb_dim not in (None, wv.vector_size):
            return fail(f"--emb-dim {args.emb_dim} differs from the vectors' dim {wv.vector_size}; "
                        f"drop --emb-dim or pass --emb-dim {wv.vector_size}")
        args.emb_dim = wv.vector_size
    args.emb_dim = args.emb_dim or 200

    tokens = read_tokens(args.text, args.token_pattern, not args.no_lowercase, args.max_words)
    split = int(len(tokens) * (1 - args.valid_fraction))
    if split < args.batch_size * (args.num_steps + 1) or len(tokens) - split < args.batch_size * 2:
        return fail(f"{len(tokens)} tokens are too few for batch {args.batch_size} x {args.num_steps}; "
                    "raise --max-words or use a longer text")
    counts = Counter(tokens[:split])
    vocab = [UNK] + [w for w, _ in counts.most_common(args.vocab_size) if w != UNK]
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.fromiter((index.get(w, 0) for w in tokens), dtype=np.int64, count=len(tokens))
    train_data = batchify(ids[:split], args.batch_size)  # (20, N)
    valid_data = batchify(ids[split:], args.batch_size)
    print(f"{args.text}: {split:,} training and {len(tokens) - split:,} validation tokens, vocabulary "
          f"{len(vocab):,} (<unk> covers {100 * np.mean(ids == 0):.1f}%); emb {args.emb_dim}, hidden {args.hidden}, "
          f"{args.layers} layers, batch {args.batch_size} x {args.num_steps}, {torch.get_num_threads()} threads",
          flush=True)

    results = {"random init": train(args, vocab, train_data, valid_data, None, "random")}
    if wv is not None:
        emb, missing = wv.to_embedding(vocab, freeze=args.freeze, seed=args.seed)
        print(f"our vectors: {len(vocab) - len(missing):,} of {len(vocab):,} words found "
              f"({len(missing):,} start from our <unk> vector or random)", flush=True)
        results["our vectors"] = train(args, vocab, train_data, valid_data, emb, "vectors")
    print("\nbest validation perplexity:")
    for name, ppl in results.items():
        print(f"  {name:<12} {ppl:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
