"""The last stage of a run (w2v.finish); end to end in tests/test_train.py."""

import threading

import pytest

from w2v.finish import Background


def test_background_work_runs_on_a_daemon_thread_and_hands_back_its_value():
    seen = {}

    def work(x):
        seen["thread"] = threading.current_thread()
        return 2 * x

    assert Background(work, 21).result() == 42
    assert seen["thread"] is not threading.main_thread() and seen["thread"].daemon
    assert seen["thread"].name == "w2v-evaluate"


def test_background_failure_is_raised_by_result():
    def fail():
        raise ValueError("no evaluation words")

    job = Background(fail)
    with pytest.raises(ValueError, match="no evaluation words"):
        job.result()
