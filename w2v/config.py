"""Typed configuration: the dataclass schemas behind `conf/` and their checks.

Nothing here imports Hydra except :func:`register_configs`, which the command-line
entry point calls; the rest of the package takes these dataclasses (or any object with
the same attributes, such as an OmegaConf ``DictConfig``) as plain values.
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
    batch_size: int = 4096  # center/context pairs per step
    # Pairs that share one set of negatives. Pairs in a group always have different
    # centers (see w2v.batching), which is what keeps quality while turning the negative
    # scores into small matrix products. 1 gives every pair its own negatives.
    shared_negatives: int = 32
    # Hot rows of large batches (w2v.model.SGNSStep): each row's summed update is scaled by
    # "sum" (1, word2vec's update; diverges past ~4k pairs), "trust" (damps only rows whose
    # summed step would overshoot; for large GPU batches), "cap", "mean" or "sqrt". The
    # CPU kernel does the plain sum, so anything else runs the torch step.
    hot_rows: str = "sum"
    hot_rows_cap: float = 64.0  # hot_rows=cap: rows updated more often than this are damped
    hot_rows_trust: float = 2.0  # hot_rows=trust: the load past which a row is damped
    sub_batch: Optional[int] = None  # apply each batch as sequential sub-batches of this many pairs
    workers: int = 0  # CPU threads; 0: one per core
    # The CPU step: "auto" runs the compiled kernel (w2v.kernel; bitwise deterministic for
    # any thread count) when it builds, else the torch step; "fused" insists on the kernel;
    # "torch" runs the torch step on `workers` Hogwild threads (not bitwise reproducible
    # beyond one worker).
    kernel: str = "auto"
    chunk_tokens: int = 65536  # tokens per unit of work handed to a worker
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
    restrict_vocab: int = 30000  # analogies over the most frequent words, as compute-accuracy
    every_epoch: bool = True  # scores, probe neighbours and the projector at each epoch end
    probe_words: List[str] = field(
        default_factory=lambda: ["king", "france", "london", "water", "good", "walked"]
    )
    topn: int = 8
    projector_words: int = 2000  # top words sent to TensorBoard's embedding projector; 0: none


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


EXPORT_FORMATS = ("bin", "txt", "npy", "pt")
KERNELS = ("auto", "fused", "torch")
HOT_ROWS = ("sum", "mean", "sqrt", "cap", "trust")  # w2v.model.HOT_ROWS


def validate(cfg) -> None:
    """Check the values a user can get wrong; raise ``ValueError`` naming the fix.

    Args:
        cfg: a :class:`Config` or anything with the same attributes.
    """

    def positive(value, key):
        if value is None or value <= 0:
            raise ValueError(f"{key} must be a positive integer, got {value}; set {key}=N with N >= 1")

    positive(cfg.model.dim, "model.dim")
    positive(cfg.model.num_shards, "model.num_shards")
    positive(cfg.train.epochs, "train.epochs")
    positive(cfg.train.window, "train.window")
    positive(cfg.train.negatives, "train.negatives")
    positive(cfg.train.batch_size, "train.batch_size")
    positive(cfg.train.shared_negatives, "train.shared_negatives")
    positive(cfg.train.chunk_tokens, "train.chunk_tokens")
    positive(cfg.data.min_count, "data.min_count")
    if cfg.data.max_vocab_size is not None:
        positive(cfg.data.max_vocab_size, "data.max_vocab_size")
    if cfg.model.partition_strategy not in PARTITION_STRATEGIES:
        raise ValueError(
            f"unknown model.partition_strategy {cfg.model.partition_strategy!r}; use one of {PARTITION_STRATEGIES}"
        )
    if not cfg.train.lr > 0:
        raise ValueError(f"train.lr must be > 0, got {cfg.train.lr}")
    if not 0 <= cfg.train.min_lr <= cfg.train.lr:
        raise ValueError(f"train.min_lr must be in [0, train.lr={cfg.train.lr}], got {cfg.train.min_lr}")
    if cfg.train.sample < 0:
        raise ValueError(f"train.sample must be >= 0 (0 disables subsampling), got {cfg.train.sample}")
    if cfg.train.kernel not in KERNELS:
        raise ValueError(f"unknown train.kernel {cfg.train.kernel!r}; use one of {KERNELS}")
    for key in ("checkpoint_every_minutes", "checkpoint_every_words"):
        value = getattr(cfg.train, key)
        if value is not None and value < 0:
            raise ValueError(f"train.{key} must be >= 0 (0 or null: off), got {value}")
    if cfg.train.keep_checkpoints < 0:
        raise ValueError(f"train.keep_checkpoints must be >= 0 (0 keeps all), got {cfg.train.keep_checkpoints}")
    if not cfg.train.dist_timeout_seconds > 0:
        raise ValueError(f"train.dist_timeout_seconds must be > 0, got {cfg.train.dist_timeout_seconds}")
    if cfg.train.workers < 0:
        raise ValueError(f"train.workers must be >= 0 (0: one per core), got {cfg.train.workers}")
    if cfg.train.hot_rows not in HOT_ROWS:
        raise ValueError(f"unknown train.hot_rows {cfg.train.hot_rows!r}; use one of {HOT_ROWS}")
    for key in ("hot_rows_cap", "hot_rows_trust"):
        if not getattr(cfg.train, key) > 0:
            raise ValueError(f"train.{key} must be > 0, got {getattr(cfg.train, key)}")
    sub = cfg.train.sub_batch
    if sub is not None and (sub <= 0 or sub % cfg.train.shared_negatives):
        raise ValueError(
            f"train.sub_batch={sub} must be a positive multiple of train.shared_negatives={cfg.train.shared_negatives} "
            "(or null)"
        )
    if cfg.train.kernel == "fused" and (cfg.train.hot_rows != "sum" or sub is not None):
        raise ValueError(
            "the CPU kernel (train.kernel=fused) applies the plain sum: use train.kernel=torch with "
            "train.hot_rows or train.sub_batch"
        )
    if cfg.train.batch_size % cfg.train.shared_negatives:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} must be a multiple of "
            f"train.shared_negatives={cfg.train.shared_negatives}"
        )
    for fmt in cfg.export.formats:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r} in export.formats; use any of {EXPORT_FORMATS}")
    parse_device(cfg.train.device)


def parse_device(spec: str) -> str:
    """Normalise ``train.device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns the spec unchanged when it is well formed; availability is checked where the
    device is resolved (:func:`w2v.train.resolve_device`).

    >>> parse_device("cuda:1")
    'cuda:1'
    """
    if spec in ("auto", "cpu", "cuda"):
        return spec
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return spec
    raise ValueError(f"unknown train.device {spec!r}; use auto, cpu, cuda or cuda:N")


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
