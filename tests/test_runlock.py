"""One run per run folder, and a killed run never leaves its folder locked."""

import os
import signal
import subprocess
import sys

import pytest

from w2v.runlock import RunLock

from conftest import ROOT

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")

HOLDER = r"""
import sys, time
from w2v.runlock import RunLock
lock = RunLock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def hold(folder):
    """A process that holds ``folder`` until it is killed; returns once it holds it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_folder_is_refused_until_released(tmp_path):
    with RunLock(tmp_path) as first:
        assert first.held
        with pytest.raises(ValueError, match=rf"hydra.run.dir={tmp_path} is in use by another run \(pid {os.getpid()}@"):
            RunLock(tmp_path)
    with RunLock(tmp_path, key="export.dir"):  # released: free again
        pass


def test_a_killed_holder_leaves_the_folder_free(tmp_path):
    proc = hold(tmp_path)
    try:
        with pytest.raises(ValueError, match=rf"in use by another run \(pid {proc.pid}@.*; wait for it to end"):
            RunLock(tmp_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with RunLock(tmp_path) as lock:  # the kernel dropped the dead holder's lock
        assert lock.held
