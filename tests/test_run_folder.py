"""Where a run's files go: the folders it claims, and spare folders when one is full."""

import errno
import os
from types import SimpleNamespace

import pytest

from w2v.run_folder import claim_folders, save_somewhere, spare_folders, writable


def test_save_somewhere_takes_the_first_folder_with_room_and_says_why_the_others_refused(tmp_path):
    full, spare = tmp_path / "full", tmp_path / "spare"

    def write(path):
        if path.parent == full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        path.write_text("tables")

    path, refused = save_somewhere("checkpoint.pt", write, [full, full, spare])
    assert path == spare / "checkpoint.pt" and path.read_text() == "tables"
    assert len(refused) == 1 and refused[0].startswith(f"{full} (")  # a folder named twice is tried once


def test_save_somewhere_returns_none_when_no_folder_takes_it(tmp_path):
    def write(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path, refused = save_somewhere("checkpoint.pt", write, spare_folders(tmp_path / "run", tmp_path / "export"))
    assert path is None and len(refused) == 2


def test_a_folder_that_is_a_file_is_not_writable_and_names_its_setting(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match=r"^export.dir=.*taken is not writable .*; choose a folder you can write to"):
        writable(tmp_path / "taken", "export.dir")


def test_a_claimed_run_folder_is_held_by_one_run(tmp_path):
    cfg = SimpleNamespace(export=SimpleNamespace(dir=str(tmp_path / "vectors")))
    out, export_dir, lock = claim_folders(cfg, tmp_path / "run", main=True, world=1)
    try:
        assert (out, export_dir) == (tmp_path / "run", tmp_path / "vectors") and export_dir.is_dir()
        with pytest.raises(ValueError):  # one run at a time
            claim_folders(cfg, tmp_path / "run", main=True, world=1)
    finally:
        lock.release()


def test_the_temp_folder_is_looked_up_only_when_the_run_folder_refuses(tmp_path, monkeypatch):
    import itertools
    import tempfile

    asked = []
    monkeypatch.setattr(tempfile, "gettempdir", lambda: asked.append(1) or str(tmp_path / "tmp"))
    run = tmp_path / "run"
    path, refused = save_somewhere("checkpoint.pt", lambda p: p.write_text("t"), itertools.chain([run], spare_folders(run, run)))
    assert path == run / "checkpoint.pt" and not refused and not asked

    def full(p):
        if p.parent.name != "tmp" and not p.parent.name.startswith("w2v-saved"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        p.write_text("t")

    path, refused = save_somewhere("checkpoint.pt", full, itertools.chain([run], spare_folders(run, run)))
    assert asked and path.parent.name.startswith("w2v-saved") and len(refused) == 1  # run and export_dir are one folder


def test_no_usable_temp_folder_leaves_one_spare_folder_fewer(tmp_path, monkeypatch):
    import tempfile

    def none():
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", none)
    assert list(spare_folders(tmp_path / "run", tmp_path / "export")) == [tmp_path / "export"]
