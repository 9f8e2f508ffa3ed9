"""The rules every config value must follow, and :func:`validate`, which applies them.

Each key of the schema (:mod:`w2v.config`) has one rule in :data:`RULES`: a check that
takes ``(key, value)`` and returns what is wrong, in a line that names the key and the
fix, or ``None``. :func:`validate` applies them all, then the rules that tie keys
together, and raises ``ValueError`` on the first value that breaks one.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, Optional, Sequence

from .config import DISTRIBUTED, EXPORT_FORMATS, HOT_ROWS, KERNELS, MERGE_RULES, PARTITION_STRATEGIES

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


# Every key of the schema and what it must be (tests/test_config_rules.py fails on a key without one).
RULES: Dict[str, Check] = {
    "data.corpus": _text(),
    "data.lowercase": _boolean,
    "data.token_pattern": _token_pattern,
    "data.min_count": _integer(1),
    "data.max_vocab_size": _integer(1, optional=True),
    "data.cache": _boolean,
    "data.cache_dir": _text(optional=True),
    "data.tokenize_workers": _integer(1, 256, optional=True, meaning=" (null: one per core, up to 8)"),
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
    "train.adapt_workers": _boolean,
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
        cfg: a :class:`~w2v.config.Config` or anything with the same attributes.
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
    device is resolved (:func:`w2v.prepare.resolve_device`).

    >>> parse_device("cuda:1")
    'cuda:1'
    """
    if spec in ("auto", "cpu", "cuda"):
        return spec
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return spec
    raise ValueError(f"unknown train.device {spec!r}; use auto, cpu, cuda or cuda:N")
