"""Atomic writes that leave nothing behind, and the sweep of what killed writers left."""

import errno
import os
import subprocess
import sys
import time

import pytest

from w2v import safefile
from w2v.safefile import atomic_write, is_stale, sweep, temp_path


def dead_pid() -> int:
    """The pid of a process that has ended."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)


def owned_by(pid: int, path, host=None) -> str:
    """``temp_path(path)``'s name, as if process ``pid`` (on ``host``) had made it."""
    name = temp_path(path).name
    return name.replace(safefile.owner(), f"{pid}@{host or safefile._HOST}")


class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written (the first ones land)."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


def test_a_write_into_a_full_disk_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "vectors.txt"
    path.write_text("old\n")
    monkeypatch.setattr(safefile, "open", lambda *a, **k: FullDisk(open(*a, **k), room=100), raising=False)
    with pytest.raises(OSError) as err:
        with atomic_write(path, "w") as f:
            for _ in range(100):
                f.write("0.123456 " * 10)
    assert err.value.errno == errno.ENOSPC and safefile.no_room(err.value)
    assert os.listdir(tmp_path) == ["vectors.txt"] and path.read_text() == "old\n"


def test_temp_names_say_who_writes_them(tmp_path):
    with atomic_write(tmp_path / "v.bin") as f:
        (name,) = [p.name for p in tmp_path.iterdir()]
        assert name.startswith(".v.bin.") and name.endswith(f".{os.getpid()}@{safefile._HOST}.tmp")
        f.write(b"x")
    assert os.listdir(tmp_path) == ["v.bin"]


def test_sweep_removes_what_dead_writers_left_and_nothing_else(tmp_path):
    dead, now = dead_pid(), time.time()
    day_old = now - safefile.STALE_SECONDS - 60
    entries = {
        owned_by(dead, tmp_path / "vectors.txt"): True,  # killed export
        owned_by(dead, tmp_path / "checkpoint.pt"): True,  # killed final save
        owned_by(os.getpid(), tmp_path / "vectors.bin"): False,  # a live writer (this process)
        owned_by(dead, tmp_path / "vectors.npy", host="other-node"): False,  # another host: only by age
        owned_by(dead, tmp_path / "metrics.json", host="other-node") + "|old": True,
        ".vectors.txt.1a2b3c4d.tmp": False,  # an earlier version's name, fresh
        ".vectors.txt.5e6f7a8b.tmp|old": True,  # ... and a day old
        f".checkpoint.pt.tmp-{dead}": True,  # an earlier version's checkpoint temp: by pid
        ".tmp-k3j2h1g0|old": True,  # an earlier version's cache folder
        ".bashrc|old": False,  # not ours
        "vectors.txt": False,
    }
    for name, _ in entries.items():
        path = tmp_path / name.split("|")[0]
        path.write_bytes(b"partial")
        if name.endswith("|old"):
            os.utime(path, (day_old, day_old))
    folder = tmp_path / safefile.temp_dir(tmp_path).name.replace(safefile.owner(), f"{dead}@{safefile._HOST}")
    os.rename(next(p for p in tmp_path.iterdir() if p.is_dir()), folder)  # a killed tokenization
    (folder / "provisional.u32").write_bytes(b"\0" * 64)
    assert is_stale(folder) and not is_stale(tmp_path / "vectors.txt")

    assert sweep(tmp_path) == sum(entries.values()) + 1
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(name.split("|")[0] for name, swept in entries.items() if not swept)


def test_a_shared_folder_is_swept_of_owned_names_only(tmp_path):
    old = time.time() - safefile.STALE_SECONDS - 60
    (tmp_path / ".tmp-k3j2h1g0").mkdir()
    os.utime(tmp_path / ".tmp-k3j2h1g0", (old, old))
    (tmp_path / owned_by(dead_pid(), tmp_path / "x")).write_bytes(b"")
    assert sweep(tmp_path, legacy=False) == 1 and os.listdir(tmp_path) == [".tmp-k3j2h1g0"]
    assert sweep(tmp_path / "missing") == 0
