from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from w2v.config import Config, register_configs, validate
from w2v.overrides import schema_keys

from conftest import ROOT


def compose_cfg(overrides=()):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "w2v" / "conf")):
        return compose(config_name="config", overrides=list(overrides))


def test_defaults_compose_and_validate():
    cfg = compose_cfg()
    validate(cfg)
    assert cfg.model.dim == 100 and cfg.train.window == 5 and cfg.train.negatives == 5
    assert cfg.data.corpus.endswith(".txt.gz")
    assert cfg.train.device == "auto"


def test_overrides_reach_the_typed_config():
    cfg = compose_cfg(["model.dim=300", "train.epochs=2", "model.partition_strategy=div", "data.max_vocab_size=1000"])
    assert (cfg.model.dim, cfg.train.epochs, cfg.model.partition_strategy, cfg.data.max_vocab_size) == (300, 2, "div", 1000)


def test_type_errors_are_caught_by_the_schema():
    with pytest.raises(Exception, match="dim"):
        compose_cfg(["model.dim=lots"])


def test_experiment_debug_overrides():
    cfg = compose_cfg(["+experiment=debug"])
    assert cfg.train.epochs == 1 and cfg.model.dim == 32


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


def test_checkpoint_and_resume_keys_compose():
    cfg = compose_cfg(["train.checkpoint_every_minutes=10", "train.checkpoint_every_words=1000000",
                       "train.keep_checkpoints=5", "train.resume=outputs/run", "export.dir=/tmp/vectors"])
    validate(cfg)
    assert (cfg.train.checkpoint_every_minutes, cfg.train.checkpoint_every_words, cfg.train.keep_checkpoints) == (10, 1000000, 5)
    assert cfg.train.resume == "outputs/run" and cfg.export.dir == "/tmp/vectors"
    defaults = compose_cfg()
    assert defaults.train.checkpoint_every_minutes is None and defaults.train.resume is None and defaults.export.dir is None


def test_hot_row_keys_compose_and_the_kernel_refuses_them():
    cfg = compose_cfg(["train.hot_rows=trust", "train.sub_batch=16384", "train.batch_size=262144"])
    validate(cfg)
    assert (cfg.train.hot_rows, cfg.train.sub_batch, cfg.train.hot_rows_trust) == ("trust", 16384, 2.0)
    cfg = Config()
    cfg.train.kernel, cfg.train.hot_rows = "fused", "trust"
    with pytest.raises(ValueError, match="train.kernel=torch"):
        validate(cfg)


def test_defaults_point_into_the_package():
    package = ROOT / "w2v"
    for cfg in (compose_cfg(), Config()):
        for path in (cfg.data.corpus, cfg.eval.analogies, cfg.eval.similarity):
            assert Path(path).is_file() and package in Path(path).parents, path


def test_the_readme_names_every_config_key():
    readme = (ROOT / "README.md").read_text()
    assert [key for key in schema_keys() if f"`{key}`" not in readme] == []
