"""The first stage of a run (w2v.prepare); end to end in tests/test_train.py."""

import pytest
import torch

from w2v.config import DataConfig
from w2v.prepare import _read_corpus, data_file, resolve_device


def test_the_cpu_is_the_cpu_and_auto_picks_what_there_is():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_no_evaluation_file_is_none_and_a_missing_one_names_the_fix(tmp_path):
    assert data_file(None) is None and data_file("") is None
    with pytest.raises(FileNotFoundError, match="evaluation file not found: .*; fix the eval.* path or set it to null"):
        data_file(str(tmp_path / "missing.txt"))


def test_a_corpus_the_package_does_not_ship_says_where_it_comes_from(tmp_path):
    data = DataConfig(corpus=str(tmp_path / "text8"))
    with pytest.raises(FileNotFoundError, match="corpus not found: .*text8; fetch it with scripts/download_text8.sh"):
        _read_corpus(data, world=1, main=True, say=print)
