"""The first stage of a run: what it trains on and where it starts, up to the first step.

:func:`prepare` reads the checkpoint a resumed run continues from (first, so that a bad
one fails fast), reads the corpus (rank 0 first, which fills the token cache for the
others), builds the vocabulary (the checkpoint's, when resuming), chooses whether the
tables are whole on every rank or spread over the ranks, builds the model and its
:class:`~w2v.trainer.Trainer`, and puts the checkpoint's tables and position back, or
initialises the tables from the seed. Before the run folder is claimed,
:func:`resolve_device` and :func:`data_file` turn the device and the evaluation files of
the config into what they name, refusing what cannot be.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

from . import parallel
from .checkpoint import load_checkpoint
from .config_rules import parse_device
from .corpus import Tokenizer, resolve_corpus
from .model import SkipGramNS
from .resume import check_corpus, check_resumable, restore_tables
from .strategies import sharded_tables
from .token_cache import EncodedCorpus, load_corpus
from .trainer import Trainer, TrainState
from .vocab import Vocab

# Corpora that configs name but the package does not ship, and where each comes from.
_NOT_SHIPPED = {
    "text8": "fetch it with scripts/download_text8.sh (in the w2v repository), or set data.corpus to a copy",
    "enwiki-gutenberg-20m.txt.gz": "+experiment=enwiki20m runs only where the 20M-word benchmark corpus is "
    "(see docs/benchmarks.md); set data.corpus to a copy",
}


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


def data_file(path: Optional[str]) -> Optional[Path]:
    """An evaluation file given relative to the working directory or the project root."""
    if not path:
        return None
    try:
        return resolve_corpus(path)[0]
    except FileNotFoundError:
        raise FileNotFoundError(f"evaluation file not found: {path}; fix the eval.* path or set it to null")


@dataclass
class Prepared:
    """A run ready for its first step.

    Attributes:
        corpus: the corpus as rank ids.
        vocab: its vocabulary.
        sharded: whether the tables are spread over the processes.
        model: the :class:`~w2v.model.SkipGramNS`, its tables initialised or restored.
        trainer: the :class:`~w2v.trainer.Trainer` of ``model``.
        start: the state to continue from (``None``: from the beginning).
        resumed_from: the checkpoint file ``start`` comes from.
    """

    corpus: EncodedCorpus
    vocab: Vocab
    sharded: bool
    model: SkipGramNS
    trainer: Trainer
    start: Optional[TrainState] = None
    resumed_from: Optional[str] = None


def prepare(cfg, config: Dict[str, Any], device: torch.device, rank: int, world: int, say: Callable[..., None]) -> Prepared:
    """Read the checkpoint to resume from and the corpus, build the vocabulary, the model and its trainer.

    Args:
        cfg: the run's config, validated.
        config: the same, resolved into plain values (as checkpoints keep it).
        device: where this process trains.
        rank, world: this process's place in the run.
        say: ``say(text, err=False, level=logging.INFO)``, a line of the run (nothing off rank 0).

    Raises:
        ValueError, FileNotFoundError: a corpus or checkpoint that cannot be used; the message names the fix.
    """
    ckpt = _read_checkpoint(cfg.train.resume, config, rank, world, say) if cfg.train.resume else None
    torch.manual_seed(cfg.train.seed)

    started = time.perf_counter()
    corpus = _read_corpus(cfg.data, world, rank == 0, say)
    vocab, type_ids = _build_vocab(cfg, corpus, ckpt, say)
    # and the tables, now that their size is known: whole on every rank, or spread over the ranks
    sharded = sharded_tables(cfg, device, world, len(vocab), len(corpus))
    if ckpt is not None and "shard" in ckpt and not sharded:  # a sharded run's files, joined for replicas
        ckpt = load_checkpoint(ckpt["path"], rank, 1)
    say(
        f"corpus: {len(corpus):,} tokens, {len(corpus.types):,} types; vocabulary: {len(vocab):,} words "
        f"(min_count={cfg.data.min_count}, <unk> absorbs {vocab.counts[0]:,} tokens); "
        f"device: {device}" + (f" x {world} processes" if world > 1 else "") + f"; prepared in {time.perf_counter() - started:.1f}s",
        err=True,
    )

    model = SkipGramNS(
        len(vocab), cfg.model.dim, cfg.model.num_shards, cfg.model.partition_strategy, device=device, distributed=sharded
    )
    trainer = Trainer(model, corpus.tokens, type_ids, vocab.counts, cfg.train, device)
    say(f"step: {trainer.strategy.describe()}", err=True)
    run = Prepared(corpus, vocab, sharded, model, trainer)
    if ckpt is not None:
        _restore(run, ckpt, cfg.train.epochs, say)
        del ckpt  # the tables are in the model now
    else:
        model.reset_parameters(torch.Generator().manual_seed(cfg.train.seed))
    return run


def _read_checkpoint(path: str, config: Dict[str, Any], rank: int, world: int, say) -> Dict[str, Any]:
    """The checkpoint to resume from; each setting that changed since is a warning."""
    ckpt = load_checkpoint(path, rank, world)
    for change in check_resumable(ckpt, config):
        say(
            f"warning: resuming with {change}; the result will differ from an uninterrupted run",
            err=True, level=logging.WARNING,
        )
    return ckpt


def _read_corpus(data, world: int, main: bool, say) -> EncodedCorpus:
    """The corpus of ``data.corpus``, tokenized (once, into the cache); bytes that are not UTF-8 are a warning.

    Raises:
        FileNotFoundError: no such corpus; for one a config names, where it comes from.
    """
    tokenizer = Tokenizer(data.token_pattern, data.lowercase)
    path = Path(data.corpus).expanduser()
    with _one_encoder(world, main):
        if path.name in _NOT_SHIPPED and not path.exists():
            raise FileNotFoundError(f"corpus not found: {data.corpus}; {_NOT_SHIPPED[path.name]}")
        corpus = load_corpus(
            data.corpus, tokenizer, cache=data.cache, cache_dir=data.cache_dir,
            warn=lambda text: say(f"warning: {text}", err=True), workers=data.tokenize_workers,
        )
    if corpus.bad_bytes:
        say(
            f"warning: {corpus.bad_bytes} bytes of the corpus were not valid UTF-8 and were read as U+FFFD",
            err=True, level=logging.WARNING,
        )
    return corpus


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


def _build_vocab(cfg, corpus: EncodedCorpus, ckpt: Optional[Dict[str, Any]], say) -> Tuple[Vocab, np.ndarray]:
    """The corpus's vocabulary, or the checkpoint's when resuming (a changed corpus is a warning),
    and the vocabulary id of each of the corpus's types.

    Raises:
        ValueError: fewer vocabulary rows than ``model.num_shards``.
    """
    if ckpt is not None:  # the vocabulary comes from the checkpoint
        older = check_corpus(ckpt, len(corpus), corpus.fingerprint)
        if older:
            say(f"warning: {older}", err=True)
        vocab = Vocab(ckpt["words"], ckpt["counts"].tolist())
        type_ids = vocab.encode(corpus.types)
    else:
        vocab, type_ids = Vocab.from_types(corpus.types, corpus.counts, cfg.data.min_count, cfg.data.max_vocab_size)
    if cfg.model.num_shards > len(vocab):
        raise ValueError(
            f"model.num_shards={cfg.model.num_shards} is more than the {len(vocab)} vocabulary rows; "
            "use fewer shards or a lower data.min_count"
        )
    return vocab, type_ids


def _restore(run: Prepared, ckpt: Dict[str, Any], epochs: int, say) -> None:
    """Put the checkpoint's tables into the model and its position into ``run.start``; say where training goes on."""
    run.start = start = TrainState.from_dict(ckpt["state"])
    run.trainer.check_start(start)
    restore_tables(run.model, ckpt)
    run.resumed_from = ckpt["path"]
    if start.epoch >= epochs:
        say(f"resuming from {run.resumed_from}: training ended there ({start.epoch} epochs); evaluating and exporting only",
            err=True)
    else:
        say(f"resuming from {run.resumed_from} at epoch {start.epoch + 1}, {start.words:,} words", err=True)
