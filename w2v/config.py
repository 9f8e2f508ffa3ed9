"""Typed configuration: the dataclass schemas behind `conf/` and their checks.

Nothing here imports Hydra except :func:`register_configs`, which the command-line
entry point calls; the rest of the package takes these dataclasses (or any object with
the same attributes, such as an OmegaConf ``DictConfig``) as plain values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

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
MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy take any seed in [0, 2**63)
MAX_TIMEOUT = 365 * 24 * 3600  # datetime.timedelta and the process group take far more; a year is plenty

# --- checks: each takes (key, value) and returns what is wrong, or None -------------------

Check = Callable[[str, Any], Optional[str]]


def _integer(low: int, high: Optional[int] = None, optional: bool = False, meaning: str = "") -> Check:
    """An int in ``[low, high]`` (``None`` too when ``optional``); ``meaning`` explains special values."""

    def check(key, value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key} must be an integer, got {value!r}"
        if low == 1 and high is None and value < 1:
            return f"{key} must be a positive integer, got {value}; set {key}=N with N >= 1"
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            return f"{key} must be {bound}{meaning}, got {value}"
        return None

    return check


def _real(low: float, high: Optional[float] = None, above: bool = False, optional: bool = False, meaning: str = "") -> Check:
    """A finite number ``>= low`` (``> low`` when ``above``) and ``<= high``; NaN and infinities never pass."""

    def check(key, value):
        if value is None and optional:
            return None
        lo, hi = _plain_number(low), _plain_number(high)
        bound = (f"> {lo}" if above else f">= {lo}") if high is None else f"in {'(' if above else '['}{lo}, {hi}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} must be a number {bound}, got {value!r}"
        bad = not math.isfinite(value) or value < low or (above and value == low) or (high is not None and value > high)
        return f"{key} must be a finite number {bound}{meaning}, got {value}" if bad else None

    return check


def _plain_number(x):
    """``0.0`` as ``0``, for messages."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _choice(options: Sequence[str]) -> Check:
    def check(key, value):
        return None if value in options else f"unknown {key} {value!r}; use one of {tuple(options)}"

    return check


def _boolean(key, value):
    return None if isinstance(value, bool) else f"{key} must be true or false, got {value!r}"


def _text(optional: bool = False) -> Check:
    """A non-empty string; when ``optional``, any string, ``None`` and ``""`` meaning unset."""

    def check(key, value):
        if optional and (value is None or isinstance(value, str)):
            return None
        if not isinstance(value, str) or not value:
            return f"{key} must be a non-empty string{' or null' if optional else ''}, got {value!r}"
        return None

    return check


def _token_pattern(key, value):
    """A regex whose whole match is the token: it compiles, has no capturing group, never matches ''."""
    if not isinstance(value, str):
        return f"{key} must be a regular expression, got {value!r}"
    try:
        regex = re.compile(value)
    except re.error as e:
        return f"{key} {value!r} is not a valid regular expression ({e}); fix it or drop the override"
    if regex.groups:  # re.findall would return the groups instead of the tokens
        return (f"{key} {value!r} has {regex.groups} capturing group(s), which would make the groups the "
                "tokens; write (?:...) for grouping")
    if regex.fullmatch("") or any(not m.group() for m in regex.finditer("The cat's 2 hats, naïve.\n")):
        return f"{key} {value!r} can match the empty string, which is no token; use + rather than * (e.g. [a-z]+)"
    return None


def _words(key, value):
    """A list of words: strings without whitespace, none empty."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return f"{key} must be a list of words like [king, france], got {value!r}"
    for i, word in enumerate(value):
        if not isinstance(word, str) or not word or any(c.isspace() for c in word):
            return f"{key}[{i}] is {word!r}; each entry must be one word (no spaces), or drop it"
    return None


def _formats(key, value):
    if isinstance(value, str) or not isinstance(value, Sequence):
        return f"{key} must be a list such as [bin, txt], got {value!r}"
    for fmt in value:
        if fmt not in EXPORT_FORMATS:
            return f"unknown export format {fmt!r} in {key}; use any of {EXPORT_FORMATS}"
    return None


def _device(key, value):
    try:
        parse_device(value)
    except (ValueError, AttributeError, TypeError):
        return f"unknown {key} {value!r}; use auto, cpu, cuda or cuda:N"
    return None


# Every key of the schema and what it must be (tests/test_config.py fails on a key without one).
RULES: Dict[str, Check] = {
    "data.corpus": _text(),
    "data.lowercase": _boolean,
    "data.token_pattern": _token_pattern,
    "data.min_count": _integer(1),
    "data.max_vocab_size": _integer(1, optional=True),
    "data.cache": _boolean,
    "data.cache_dir": _text(optional=True),
    "model.dim": _integer(1),
    "model.num_shards": _integer(1),
    "model.partition_strategy": _choice(PARTITION_STRATEGIES),
    "train.epochs": _integer(1),
    "train.window": _integer(1),
    "train.negatives": _integer(1),
    # Past +-10, counts ** exponent leaves float64 (1e9 ** 35 overflows); word2vec uses 0.75.
    "train.ns_exponent": _real(-10.0, 10.0, meaning=" (word2vec's is 0.75)"),
    "train.sample": _real(0.0, meaning=" (0 disables subsampling)"),
    "train.lr": _real(0.0, above=True),
    "train.min_lr": _real(0.0),  # and <= train.lr, below
    "train.batch_size": _integer(1, optional=True, meaning=" (null: the step's own)"),
    "train.shared_negatives": _integer(1),
    "train.hot_rows": _choice(HOT_ROWS),
    "train.hot_rows_cap": _real(0.0, above=True),
    "train.hot_rows_trust": _real(0.0, above=True),
    "train.sub_batch": _integer(1, optional=True),
    "train.workers": _integer(0, 4096, meaning=" (0: one per core)"),
    "train.kernel": _choice(KERNELS),
    "train.hogwild": _boolean,
    "train.deterministic": _boolean,
    "train.chunk_tokens": _integer(2, optional=True, meaning=" (a chunk of one token has no pairs; null: the step's own)"),
    "train.device": _device,
    "train.seed": _integer(0, MAX_SEED),
    "train.log_every": _integer(1),
    "train.progress": _boolean,
    "train.checkpoint_every_minutes": _real(0.0, optional=True, meaning=" (0 or null: off)"),
    "train.checkpoint_every_words": _integer(0, optional=True, meaning=" (0 or null: off)"),
    "train.keep_checkpoints": _integer(0, meaning=" (0 keeps all)"),
    "train.resume": _text(optional=True),
    "train.dist_timeout_seconds": _real(0.0, MAX_TIMEOUT, above=True, meaning=" (seconds)"),
    "train.distributed": _choice(DISTRIBUTED),
    "train.merge_every_words": _integer(1, optional=True, meaning=" (null: the step's own)"),
    "train.merge_hot_rows": _integer(0, meaning=" (0: whole tables only)"),
    "train.merge": _choice(MERGE_RULES),
    "export.formats": _formats,
    "export.checkpoint": _boolean,
    "export.dir": _text(optional=True),
    "eval.analogies": _text(optional=True),
    "eval.similarity": _text(optional=True),
    "eval.restrict_vocab": _integer(0, meaning=" (0: every word)"),
    "eval.every_epoch": _boolean,
    "eval.probe_words": _words,
    "eval.topn": _integer(1),
    "eval.probe_vocab": _integer(0, meaning=" (0: every word)"),
    "eval.projector_words": _integer(0, meaning=" (0: none)"),
}


def _get(cfg, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def validate(cfg) -> None:
    """Check every value a user can set; raise ``ValueError`` naming the key and the fix.

    Each key is checked by its rule in :data:`RULES` (type, finite, range), then the rules
    that tie keys together. What a setting will allocate is checked where the device is
    known (:mod:`w2v.budget`).

    Args:
        cfg: a :class:`Config` or anything with the same attributes.
    """
    for key, check in RULES.items():
        problem = check(key, _get(cfg, key))
        if problem:
            raise ValueError(problem)
    t = cfg.train
    if t.min_lr > t.lr:
        raise ValueError(f"train.min_lr must be in [0, train.lr={t.lr}], got {t.min_lr}")
    if t.batch_size is not None and t.batch_size % t.shared_negatives:
        raise ValueError(
            f"train.batch_size={t.batch_size} must be a multiple of train.shared_negatives={t.shared_negatives}"
        )
    if t.sub_batch is not None and t.sub_batch % t.shared_negatives:
        raise ValueError(
            f"train.sub_batch={t.sub_batch} must be a positive multiple of train.shared_negatives={t.shared_negatives} "
            "(or null)"
        )
    if t.kernel == "triton" and t.hot_rows not in ("sum", "trust", "auto"):
        raise ValueError(
            f"the Triton step damps hot rows with sum or trust, not {t.hot_rows!r}: set train.hot_rows=trust "
            "(or auto), or train.kernel=torch"
        )
    if t.kernel == "triton" and t.sub_batch is not None:
        raise ValueError("the Triton step applies batches in order already: set train.sub_batch=null, or train.kernel=torch")
    if t.hogwild and t.hot_rows not in ("sum", "auto"):
        raise ValueError("train.hogwild=true applies the plain sum: set train.hot_rows=sum, or train.hogwild=false")
    if t.kernel == "fused" and (t.hot_rows not in ("sum", "auto") or t.sub_batch is not None):
        raise ValueError(
            "the CPU kernel (train.kernel=fused) applies the plain sum: use train.kernel=torch with "
            "train.hot_rows or train.sub_batch"
        )


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
