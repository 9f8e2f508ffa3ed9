"""Typed configuration: the dataclass schemas behind `conf/` and their registration.

Nothing here imports Hydra except :func:`register_configs`, which the command-line
entry point calls; the rest of the package takes these dataclasses (or any object with
the same attributes, such as an OmegaConf ``DictConfig``) as plain values.

The rules the values must follow live in :mod:`w2v.config_rules`, with
:func:`~w2v.config_rules.validate`, which applies them; those names are still importable
from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

PARTITION_STRATEGIES = ("mod", "div")


def bundled(name: str) -> str:
    """The path of a file shipped in the package's ``data/`` folder.

    The defaults point here, so an installed package trains and evaluates from any working
    directory; paths a user gives stay relative to the working directory.

    >>> Path(bundled("wordsim353.tsv")).is_file()
    True
    """
    return str(Path(__file__).resolve().parent / "data" / name)


@dataclass
class DataConfig:
    """Where the corpus is and how it becomes token ids."""

    corpus: str = bundled("enwiki-gutenberg-2m.txt.gz")  # file, folder, glob; .gz is read as gzip
    lowercase: bool = True
    token_pattern: str = r"[^\W\d_]+"  # a token is a run of letters (any script)
    min_count: int = 5
    max_vocab_size: Optional[int] = None  # keep at most this many words (plus <unk>)
    cache: bool = True  # keep the encoded token stream so the next run skips tokenizing
    cache_dir: Optional[str] = None  # None: $W2V_CACHE_DIR or ~/.cache/w2v
    tokenize_workers: Optional[int] = None  # processes that tokenize a custom token_pattern; None: one per core (<= 8) past ~4M chars


@dataclass
class ModelConfig:
    """The two embedding tables of skip-gram and how they are sharded."""

    dim: int = 100
    num_shards: int = 1
    partition_strategy: str = "mod"  # TensorFlow's: "mod" (id % N) or "div" (contiguous ranges)


@dataclass
class TrainConfig:
    """Skip-gram with negative sampling, as in word2vec, plus the batching that makes it fast."""

    epochs: int = 5
    window: int = 5  # the maximum; each center draws its window uniformly from 1..window
    negatives: int = 5
    ns_exponent: float = 0.75  # noise distribution: unigram ** ns_exponent
    sample: float = 1e-3  # subsampling threshold of frequent words; 0 disables
    lr: float = 0.025
    min_lr: float = 0.0001
    # Center/context pairs per step; None: 4096 on the CPU, 16384 for the Triton step.
    batch_size: Optional[int] = None
    # Pairs that share one set of negatives. Pairs in a group always have different
    # centers (see w2v.batching), which is what keeps quality while turning the negative
    # scores into small matrix products. 1 gives every pair its own negatives.
    shared_negatives: int = 32
    # Hot rows of large batches (w2v.model.SGNSStep): each row's summed update is scaled by
    # "sum" (1, word2vec's update; diverges past ~4k pairs), "trust" (damps only rows whose
    # summed step would overshoot; for large GPU batches), "cap", "mean" or "sqrt". The
    # CPU kernel does the plain sum, so anything else runs the torch step. "auto": "trust"
    # for the Triton step (GPU), "sum" elsewhere.
    hot_rows: str = "auto"
    hot_rows_cap: float = 64.0  # hot_rows=cap: rows updated more often than this are damped
    hot_rows_trust: float = 2.0  # hot_rows=trust: the load past which a row is damped
    sub_batch: Optional[int] = None  # apply each batch as sequential sub-batches of this many pairs
    workers: int = 0  # CPU threads; 0: one per core
    # The CPU kernel's threads split every batch so that a run is bitwise the same for any
    # thread count (true), or each thread trains whole chunks on its own, Hogwild! style as
    # word2vec.c and gensim do (false: no barriers, so more cores add more speed; the result
    # depends on the threads' timing).
    deterministic: bool = True
    # The CPU kernel runs a chunk on fewer threads while fewer measure faster (its result does
    # not depend on the count: w2v.strategies.team); false keeps `workers` for every chunk.
    adapt_workers: bool = True
    # The step (w2v.strategies): "auto" runs the fused Triton step on a GPU (w2v.triton_step)
    # and the compiled CPU kernel (w2v.kernel; bitwise deterministic for any thread count)
    # on the CPU, each when it can, else the torch step; "fused" insists on the CPU kernel,
    # "triton" on the Triton step (on the CPU only under TRITON_INTERPRET=1, for tests);
    # "torch" runs the torch step on `workers` Hogwild threads (not bitwise reproducible
    # beyond one worker).
    kernel: str = "auto"
    # The Triton step applies each batch's updates together (batch-synchronous, with the
    # hot_rows damping); hogwild=True applies them as computed, one launch per chunk.
    hogwild: bool = False
    # Tokens per unit of work handed to a worker; None: 65536, or 2**20 for the Triton step
    # on a GPU in one process (fewer host reads). A resumed run must use the checkpoint's value.
    chunk_tokens: Optional[int] = None
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    seed: int = 0
    log_every: int = 50  # steps between loss measurements and TensorBoard points
    progress: bool = True  # tqdm bar
    # Periodic checkpoints, taken at chunk boundaries into the run's checkpoints/ folder
    # (0 or None: off). SIGINT and SIGTERM always save one before the run stops.
    checkpoint_every_minutes: Optional[float] = None
    checkpoint_every_words: Optional[int] = None  # corpus words, counted over all epochs
    keep_checkpoints: int = 3  # newest periodic checkpoints kept; 0 keeps them all
    resume: Optional[str] = None  # a checkpoint file, or a run folder (its latest checkpoint)
    # Under torchrun: how long a rank waits on the others before giving up (a rank that dies
    # is noticed at once; this bounds the wait on one that hangs).
    dist_timeout_seconds: float = 1800.0
    # Under torchrun: "replicas" gives every rank both whole tables, trains its share of the
    # corpus with the step one process would run and merges the ranks' changes every
    # merge_every_words corpus words; "sharded" spreads the rows of both tables over the
    # ranks (w2v.embedding.DistributedEmbedding; every step exchanges rows); "auto":
    # replicas when the tables fit on every rank, else sharded.
    distributed: str = "auto"
    # Replicas: corpus words between two merges of whole tables, where checkpoints and stops
    # land (rounded up to rounds of one chunk per rank); None: the step's own
    # (w2v.config.CPU_DEFAULTS, GPU_DEFAULTS).
    merge_every_words: Optional[int] = None
    # Replicas: the rows of this many most frequent words merge after every round, 4x as many
    # every 4 rounds, 16x every 16... (0: whole tables every merge_every_words only).
    merge_hot_rows: int = 2048
    # Replicas: how the ranks' changes since the last merge combine (w2v.replica_sync):
    # "sum" adds them all (as one process would have made them), "mean" averages them.
    merge: str = "sum"


@dataclass
class ExportConfig:
    """What the run writes when training ends."""

    formats: List[str] = field(default_factory=lambda: ["bin", "txt"])
    checkpoint: bool = True
    dir: Optional[str] = None  # where the vectors go; None: the run folder


@dataclass
class EvalConfig:
    """What is measured and shown while and after training."""

    analogies: Optional[str] = bundled("questions-words.txt")  # None: skip
    similarity: Optional[str] = bundled("wordsim353.tsv")  # None: skip
    # Analogies and similarity pairs over the most frequent words, as compute-accuracy; 0: all.
    restrict_vocab: int = 30000
    every_epoch: bool = True  # scores, probe neighbours and the projector at each epoch end
    probe_words: List[str] = field(
        default_factory=lambda: ["king", "france", "london", "water", "good", "walked"]
    )
    topn: int = 8
    # Probe neighbours among the most frequent words only (0: all): rare words' vectors are
    # noisy and crowd the first screen of a small corpus (gensim's most_similar(restrict_vocab=)).
    probe_vocab: int = 10000
    projector_words: int = 2000  # top words sent to TensorBoard's embedding projector; 0: none


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


EXPORT_FORMATS = ("bin", "txt", "npy", "pt")
# What the train settings left at null/auto mean, per kind of step (w2v.strategies.resolve).
# The Triton step applies each batch synchronously with the trust damping, which holds the
# 4k-pair quality at 16k pairs (docs/benchmarks.md, hot rows); larger chunks amortise the
# per-chunk host read on a GPU.
CPU_DEFAULTS = dict(batch_size=4096, hot_rows="sum", chunk_tokens=65536, merge_every_words=1 << 23)
GPU_DEFAULTS = dict(batch_size=16384, hot_rows="trust", chunk_tokens=1 << 20, merge_every_words=1 << 28)
KERNELS = ("auto", "fused", "torch", "triton")
DISTRIBUTED = ("auto", "replicas", "sharded")
MERGE_RULES = ("sum", "mean")  # w2v.replica_sync
HOT_ROWS = ("auto", "sum", "mean", "sqrt", "cap", "trust")  # w2v.model.HOT_ROWS, and auto


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (called by the command line only)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="train", name="base_train", node=TrainConfig)
    cs.store(group="export", name="base_export", node=ExportConfig)
    cs.store(group="eval", name="base_eval", node=EvalConfig)


# What moved to w2v.config_rules, still handed out here for `from w2v.config import validate`.
# config_rules imports this module, so the names are looked up on first use (PEP 562).
_MOVED = frozenset({"Check", "MAX_SEED", "MAX_TIMEOUT", "RULES", "parse_device", "validate"})


def __getattr__(name: str):
    if name in _MOVED:
        from . import config_rules

        return getattr(config_rules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
