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


@pytest.mark.parametrize("changes", [0, 2])
def test_the_summary_says_when_chunks_ran_on_fewer_kernel_threads(capsys, tmp_path, changes):
    from types import SimpleNamespace

    from w2v.config import Config
    from w2v.finish import _summary

    result = SimpleNamespace(words=1000, seconds=1.0, words_per_sec=1000.0, loss=2.5)
    metrics = {"run_seconds": 2.0, "kernel_threads": {"2": 50, "1": 27}, "kernel_threads_changes": changes}
    _summary(Config(), [0] * 10, result, metrics, {}, "", None, tmp_path)
    out = capsys.readouterr().out
    assert ("50 on 2, 27 on 1" in out and "train.adapt_workers" in out) == bool(changes)
    assert "trained 1,000 words" in out
