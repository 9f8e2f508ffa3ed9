"""Overrides checked against the schema before Hydra runs (the command line's tests are in test_train)."""

import pytest

from w2v.overrides import check_overrides, groups, resume_in_place, schema_keys, suggest


@pytest.mark.parametrize(
    "argv, message",
    [
        (["model.dim=abc"], "model.dim=abc: model.dim takes an integer; e.g. model.dim=100"),
        (["model.dim=1.5"], "model.dim takes an integer"),
        (["model.dim=null"], "model.dim takes an integer"),
        (["train.lr=fast"], "train.lr=fast: train.lr takes a number; e.g. train.lr=0.025"),
        (["train.progress=maybe"], "train.progress takes true or false; e.g. train.progress=true"),
        (["train.sub_batch=many"], "train.sub_batch takes an integer or null"),
        (["export.formats=bin"], "export.formats=bin: export.formats takes a list; e.g. export.formats=[bin,txt]"),
        (["model.dimm=10"], "unknown key model.dimm; did you mean model.dim=10?"),
        (["+model.dimm=10"], "unknown key model.dimm; did you mean model.dim=10?"),
        (["++model.dimm=10"], "unknown key model.dimm; did you mean model.dim=10?"),
        (["train.dim=10"], "did you mean model.dim=10?"),
        (["lr=0.1"], "did you mean train.lr=0.1?"),
        (["train.learning_rate=0.1"], "unknown key train.learning_rate; the keys are listed by --help"),
        (["+model.dim=10"], "+model.dim=10: model.dim exists already; set it without the +, model.dim=10"),
        (["~train.seed"], "the schema's keys cannot be removed"),
        (["model.dim=100,300"], "model.dim=100,300 is a sweep; add -m (--multirun)"),
        (["-m", "model.dim=100,abc"], "model.dim=100,abc: model.dim takes an integer"),
        (["data=text9"], "unknown data=text9; use one of default, text8"),
        (["+data=text8"], "choose another without the +, data=text8"),
        (["experiment=debug"], "an experiment is added with +, as in +experiment=debug"),
        (["+experiment=nope"], "unknown experiment=nope; use one of debug, enwiki20m"),
        (["--cfg", "job", "model.dimm=1"], "unknown key model.dimm"),
        (["model.dim=[1"], "cannot read the override 'model.dim=[1'"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_key_and_the_fix(argv, message):
    with pytest.raises(ValueError) as e:
        check_overrides(argv)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["model.dim=300", "train.lr=0.01", "train.progress=false", "export.formats=[bin,npy]", "eval.analogies=null"],
        ["+experiment=debug", "data=text8", "++model.dim=3", "model.dim=${train.epochs}"],
        ["-m", "model.dim=100,300", "train.lr=range(0.01,0.03,0.01)", "data=glob(*)", "train.sample=interval(0,1)"],
        ["hydra.run.dir=somewhere", "hydra/job_logging=disabled", "hydra.verbose=true"],
        ["--help"],
        ["--hydra-help", "model.dimm=1"],
        ["--cfg", "job", "model.dim=7"],
        ["--config-dir", "mine", "+mine.key=1"],  # another config: Hydra checks it
    ],
)
def test_good_overrides_pass(argv):
    check_overrides(argv)


def test_the_schema_and_the_groups():
    keys = schema_keys()
    assert keys["model.dim"] == (int, 100) and "train.hot_rows_trust" in keys and "export.checkpoint" in keys
    found = groups()
    assert found["data"] == ["default", "text8"] and found["experiment"] == ["debug", "enwiki20m"]


def test_suggestions():
    keys = list(schema_keys())
    assert suggest("train.epoch", keys) == "train.epochs"
    assert suggest("eval.restrict", keys) == "eval.restrict_vocab"
    assert suggest("model.zzz", keys) is None


def test_resume_in_place_names_the_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-000000000000100.pt").write_bytes(b"")
    for given in (run, run / "checkpoints" / "checkpoint-000000000000100.pt"):
        argv = resume_in_place([f"train.resume={given}", "model.dim=8"])
        assert argv[:2] == [f"train.resume={given}", "model.dim=8"]
        assert argv[2] == f"hydra.run.dir='{run}'" and argv[3].startswith("hydra.output_subdir='.hydra/resumed-")
    for kept in (
        [f"train.resume={run}", "hydra.run.dir=elsewhere"],  # the user's choice wins
        ["-m", f"train.resume={run}"],
        [f"train.resume={tmp_path / 'missing'}"],
        ["train.resume=null"],
    ):
        assert resume_in_place(kept) == kept


def test_resuming_a_run_folder_takes_its_own_settings_but_those_given(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- +experiment=debug\n- model.dim=300\n- train.epochs=5\n")
    argv = resume_in_place([f"train.resume={run}", "train.epochs=7"])
    assert argv[:4] == [f"train.resume={run}", "train.epochs=7", "+experiment=debug", "model.dim=300"]
    assert argv[4].startswith("hydra.run.dir=") and len(argv) == 6
    # A resumed run's own settings (with the resume) are the newest; hydra.* and train.resume stay out.
    later = run / ".hydra" / "resumed-2026-11-30_10-00-00"
    later.mkdir()
    (later / "overrides.yaml").write_text(f"- +experiment=debug\n- train.resume={run}\n- train.lr=0.05\n")
    argv = resume_in_place([f"train.resume={run}", "+experiment=debug"])
    assert argv[:3] == [f"train.resume={run}", "+experiment=debug", "train.lr=0.05"] and len(argv) == 5
    (later / "overrides.yaml").write_text("{not: [a list")  # unreadable: nothing carried
    assert len(resume_in_place([f"train.resume={run}"])) == 3
