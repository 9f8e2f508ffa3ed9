import pytest
from hydra import compose, initialize_config_dir

from w2v.config import Config, register_configs, validate

from conftest import ROOT


def compose_cfg(overrides=()):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
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
    ],
)
def test_invalid_values_name_the_key(section, key, value, message):
    cfg = Config()
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ValueError, match=message):
        validate(cfg)
