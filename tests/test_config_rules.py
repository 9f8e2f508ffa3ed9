"""Every key of the schema has a rule; a bad value is refused in one line naming its key."""

import math

import pytest

from w2v.config import Config
from w2v.config_rules import RULES, validate
from w2v.overrides import schema_keys

from test_config import compose_cfg, with_value


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "dim", 0, "model.dim"),
        ("train", "window", -1, "train.window"),
        ("train", "negatives", 0, "train.negatives"),
        ("train", "epochs", 0, "train.epochs"),
        ("model", "partition_strategy", "hash", "partition_strategy"),
        ("train", "device", "tpu", "train.device"),
        ("train", "batch_size", 1000, "multiple"),
        ("train", "min_lr", 1.0, "min_lr"),
        ("train", "checkpoint_every_minutes", -1.0, "train.checkpoint_every_minutes"),
        ("train", "checkpoint_every_words", -1, "train.checkpoint_every_words"),
        ("train", "keep_checkpoints", -1, "train.keep_checkpoints"),
        ("train", "hot_rows", "clip", "train.hot_rows"),
        ("train", "hot_rows_trust", 0.0, "train.hot_rows_trust"),
        ("train", "sub_batch", 100, "train.sub_batch"),
        ("train", "dist_timeout_seconds", 0.0, "train.dist_timeout_seconds"),
    ],
)
def test_invalid_values_name_the_key(section, key, value, message):
    cfg = Config()
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ValueError, match=message):
        validate(cfg)


# --- every key of the schema has a rule; every rule names its key ---------------------------


# One bad value per key: wrong type, out of range, NaN or infinite, malformed.
BAD = {
    "data.corpus": "",
    "data.lowercase": "yes",
    "data.token_pattern": "(\\w)+",
    "data.min_count": 0,
    "data.max_vocab_size": 0,
    "data.cache": 1,
    "data.cache_dir": 7,
    "data.tokenize_workers": 0,
    "model.dim": 0,
    "model.num_shards": -1,
    "model.partition_strategy": "hash",
    "train.epochs": 0,
    "train.window": 0,
    "train.negatives": 0,
    "train.ns_exponent": math.nan,
    "train.sample": math.nan,
    "train.lr": math.inf,
    "train.min_lr": math.nan,
    "train.batch_size": 0,
    "train.shared_negatives": 0,
    "train.hot_rows": "clip",
    "train.hot_rows_cap": math.nan,
    "train.hot_rows_trust": math.inf,
    "train.sub_batch": 0,
    "train.workers": -1,
    "train.kernel": "cuda",
    "train.hogwild": "yes",
    "train.deterministic": 1,
    "train.adapt_workers": "sometimes",
    "train.chunk_tokens": 1,
    "train.device": "tpu",
    "train.seed": 2**63,
    "train.log_every": 0,
    "train.progress": "no",
    "train.checkpoint_every_minutes": math.nan,
    "train.checkpoint_every_words": -1,
    "train.keep_checkpoints": -1,
    "train.resume": 3,
    "train.dist_timeout_seconds": math.inf,
    "train.distributed": "ddp",
    "train.merge_every_words": 0,
    "train.merge_hot_rows": -1,
    "train.merge": "max",
    "export.formats": ["bin", "hdf5"],
    "export.checkpoint": None,
    "export.dir": ["out"],
    "eval.analogies": 3,
    "eval.similarity": ["a.tsv"],
    "eval.restrict_vocab": -1,
    "eval.every_epoch": "true",
    "eval.probe_words": ["king", ""],
    "eval.topn": 0,
    "eval.probe_vocab": -5,
    "eval.projector_words": -1,
}
# More values, each refused with its key.
MORE_BAD = [
    ("train.ns_exponent", math.inf), ("train.ns_exponent", -math.inf), ("train.ns_exponent", 40.0),
    ("train.lr", math.nan), ("train.lr", 0.0), ("train.sample", -1e-3), ("train.sample", math.inf),
    ("train.checkpoint_every_minutes", math.inf), ("train.checkpoint_every_minutes", -1.0),
    ("train.dist_timeout_seconds", math.nan), ("train.dist_timeout_seconds", 0.0), ("train.dist_timeout_seconds", 1e30),
    ("train.hot_rows_cap", 0.0), ("train.hot_rows_trust", -1.0), ("train.seed", -1), ("train.seed", 2**64),
    ("train.log_every", -5), ("train.workers", 10**6), ("train.window", 2.5), ("model.dim", "100"), ("model.dim", True),
    ("data.tokenize_workers", 1000), ("data.tokenize_workers", 2.0),
    ("eval.topn", -3), ("eval.projector_words", -10), ("eval.probe_words", "king"), ("eval.probe_words", ["new york"]),
    ("data.token_pattern", "(a)(b)"), ("data.token_pattern", "[a-z]*"), ("data.token_pattern", "\\b"),
    ("data.token_pattern", "[a-"), ("data.token_pattern", 5), ("export.formats", "bin"),
]


def test_every_schema_key_has_a_rule_and_a_bad_value():
    keys = list(schema_keys())
    assert len(keys) == len(set(keys)) > 40
    assert set(keys) == set(RULES), "add the new key to w2v.config_rules.RULES"
    assert set(keys) == set(BAD), "add a bad value for the new key to BAD"


@pytest.mark.parametrize("key, value", list(BAD.items()) + MORE_BAD, ids=lambda x: repr(x)[:40])
def test_a_bad_value_is_refused_naming_its_key(key, value):
    with pytest.raises(ValueError) as e:
        validate(with_value(key, value))
    assert key in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("key, value", [
    ("train.ns_exponent", -0.5), ("train.ns_exponent", 0.0), ("train.sample", 0.0), ("train.seed", 2**63 - 1),
    ("train.checkpoint_every_minutes", 0.5), ("train.checkpoint_every_words", 0), ("train.min_lr", 0.0),
    ("eval.restrict_vocab", 0), ("eval.projector_words", 0), ("eval.probe_words", []), ("export.formats", []),
    ("data.token_pattern", "(?:[a-z]+)(?=\\s)"), ("data.cache_dir", None), ("eval.analogies", ""),
    ("train.lr", 1), ("train.chunk_tokens", 2), ("train.merge_every_words", 1), ("train.merge_every_words", None),
])
def test_edge_values_that_are_fine(key, value):
    validate(with_value(key, value))


def test_hydra_values_are_checked_too():
    cfg = compose_cfg(["train.lr=nan"])
    with pytest.raises(ValueError, match="train.lr must be a finite number > 0, got nan"):
        validate(cfg)
    cfg = compose_cfg(["eval.probe_words=[king,'']"])
    with pytest.raises(ValueError, match=r"eval.probe_words\[1\]"):
        validate(cfg)
