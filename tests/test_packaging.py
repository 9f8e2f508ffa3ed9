"""The wheel: built, installed into a fresh virtual environment, and used outside the repository."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


def run(*cmd, cwd, env, timeout=180):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment holding the built wheel (torch, hydra... from the system's site-packages)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "w2v", src / "w2v", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", tmp / "dist", src, cwd=tmp, env=env)
    (wheel,) = (tmp / "dist").glob("w2v-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp, env=env)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp, env=env)
    work = tmp / "elsewhere"  # outside the repository: nothing but the installed package to go by
    work.mkdir()
    env["W2V_CACHE_DIR"] = str(tmp / "cache")
    return wheel, venv, work, env


@pytest.mark.slow
def test_the_wheel_holds_the_config_the_data_and_the_licence(installed):
    wheel, *_ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("w2v/conf/config.yaml", "w2v/conf/experiment/debug.yaml", "w2v/data/enwiki-gutenberg-2m.txt.gz",
                 "w2v/data/questions-words.txt", "w2v/data/wordsim353.tsv", "w2v/data/SOURCES.md", "w2v/csrc/sgns.c"):
        assert name in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert all(f"{name} = " in scripts for name in ("w2v-train", "w2v-query", "w2v-evaluate"))


@pytest.mark.slow
def test_the_installed_commands_train_query_and_evaluate_from_any_folder(installed):
    _, venv, work, env = installed
    bin_ = venv / "bin"
    where = run(bin_ / "python", "-c", "import w2v; print(w2v.__file__)", cwd=work, env=env).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel, not the checkout
    assert "w2v-train" in run(bin_ / "python", "-m", "w2v", cwd=work, env=env).stdout

    r = run(bin_ / "w2v-train", "+experiment=debug", "train.progress=false", "export.formats=[bin]",
            "export.checkpoint=false", "eval.projector_words=0", cwd=work, env=env)
    assert "nearest neighbours" in r.stdout and "analogy" in r.stdout
    (folder,) = (work / "outputs").glob("*/*")
    assert (folder / "vectors.bin").is_file() and "trained" in (folder / "train.log").read_text()

    vectors = folder / "vectors.bin"
    assert "Cosine similarity" in run(bin_ / "w2v-query", vectors, "--word", "king", cwd=work, env=env).stdout
    report = run(bin_ / "w2v-evaluate", vectors, cwd=work, env=env).stdout  # the bundled sets
    assert "questions-words.txt" in report and "wordsim353.tsv" in report and "restrict_vocab=30000" in report
