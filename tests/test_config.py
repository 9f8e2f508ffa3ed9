from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from w2v.config import Config, register_configs
from w2v.config_rules import validate
from w2v.overrides import schema_keys

from conftest import ROOT


def compose_cfg(overrides=()):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "w2v" / "conf")):
        return compose(config_name="config", overrides=list(overrides))


def with_value(key, value):
    cfg = Config()
    section, name = key.split(".")
    setattr(getattr(cfg, section), name, value)
    return cfg


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


def test_checkpoint_and_resume_keys_compose():
    cfg = compose_cfg(["train.checkpoint_every_minutes=10", "train.checkpoint_every_words=1000000",
                       "train.keep_checkpoints=5", "train.resume=outputs/run", "export.dir=/tmp/vectors"])
    validate(cfg)
    assert (cfg.train.checkpoint_every_minutes, cfg.train.checkpoint_every_words, cfg.train.keep_checkpoints) == (10, 1000000, 5)
    assert cfg.train.resume == "outputs/run" and cfg.export.dir == "/tmp/vectors"
    defaults = compose_cfg()
    assert defaults.train.checkpoint_every_minutes is None and defaults.train.resume is None and defaults.export.dir is None


def test_distributed_keys_compose():
    defaults = compose_cfg()
    assert (defaults.train.distributed, defaults.train.merge_every_words, defaults.train.merge) == ("auto", None, "sum")
    cfg = compose_cfg(["train.distributed=sharded", "train.merge_every_words=65536", "train.merge=mean"])
    validate(cfg)
    assert (cfg.train.distributed, cfg.train.merge_every_words, cfg.train.merge) == ("sharded", 65536, "mean")
    with pytest.raises(ValueError, match=r"unknown train.distributed 'ddp'; use one of \('auto', 'replicas', 'sharded'\)"):
        validate(with_value("train.distributed", "ddp"))


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
