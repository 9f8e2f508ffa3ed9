"""A run's vectors evaluated between epochs and at the end (w2v.run_eval)."""

from types import SimpleNamespace

import numpy as np
import torch

from w2v.run_eval import RunEvaluation, whole_tables, word_vectors
from w2v.vocab import Vocab


class _Writer:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def eval_config(**values):
    cfg = dict(restrict_vocab=0, probe_words=["cat", "nosuchword"], probe_vocab=0, topn=2, projector_words=3)
    return SimpleNamespace(**{**cfg, **values})


def small_vectors():
    vocab = Vocab(["<unk>", "cat", "dog", "car"], [0, 5, 4, 3])
    table = torch.tensor([[0.0, 1.0], [1.0, 0.1], [1.0, 0.0], [-1.0, 0.0]])
    return vocab, word_vectors(vocab, table)


def test_word_vectors_keep_the_vocabulary_and_its_counts():
    vocab, wv = small_vectors()
    assert wv.index_to_key == vocab.index_to_key and wv.counts.tolist() == [0, 5, 4, 3]
    assert wv.vectors.dtype == np.float32 and wv.vectors.shape == (4, 2)


def test_the_tables_of_one_process_are_its_own():
    model = SimpleNamespace(input=torch.nn.Embedding(4, 2), output=torch.nn.Embedding(4, 2))
    inputs, outputs = whole_tables(model, sharded=False)
    assert torch.equal(inputs, model.input.weight) and not inputs.requires_grad


def test_a_skipped_evaluation_is_said_once_and_the_scores_go_to_tensorboard(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("apple\tpear\t9.0\n")  # no word the vectors know
    said, writer = [], _Writer()
    evaluation = RunEvaluation(eval_config(), None, pairs, writer, lambda text, err=False: said.append((text, err)))
    _, wv = small_vectors()
    assert evaluation.evaluate(wv, 10) == {} and evaluation.evaluate(wv, 20) == {}
    assert len(said) == 1 and said[0][0].startswith("warning: evaluation skipped: ") and said[0][1]
    assert evaluation.report(({"analogy": 0.5}, None), 30) == {"analogy": 0.5}
    assert ("add_scalar", ("eval/analogy", 0.5, 30), {}) in writer.calls


def test_probes_and_projector_go_to_tensorboard(tmp_path):
    writer = _Writer()
    evaluation = RunEvaluation(eval_config(), None, None, writer, print, projector_dir=tmp_path)
    _, wv = small_vectors()
    text = evaluation.probes(wv, 7)
    assert text.startswith("cat: dog ") and "nosuchword" not in text
    evaluation.projector(wv, 7)
    assert [name for name, _, _ in writer.calls] == ["add_text"]
    folder = tmp_path / "00007" / "input"
    assert (folder / "metadata.tsv").read_text().split() == ["<unk>", "cat", "dog"]  # the first projector_words rows
    rows = np.loadtxt(folder / "tensors.tsv", delimiter="\t", dtype=np.float32)
    assert np.array_equal(rows, wv.vectors[:3])


def test_a_projector_folder_without_room_is_one_warning(tmp_path):
    said = []
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder should be: every write fails
    evaluation = RunEvaluation(eval_config(), None, None, _Writer(), lambda text, err=False: said.append((text, err)),
                               projector_dir=blocked)
    _, wv = small_vectors()
    evaluation.projector(wv, 1)
    evaluation.projector(wv, 2)
    assert len(said) == 1 and said[0][0].startswith("warning: no more projector files: cannot write into ") and said[0][1]


def test_between_epochs_says_the_loss_and_the_scores():
    said = []
    evaluation = RunEvaluation(eval_config(projector_words=0), None, None, _Writer(), lambda text, err=False: said.append(text))
    _, wv = small_vectors()
    evaluation.between_epochs(0, wv, SimpleNamespace(loss=1.23456, words_per_sec=12345.6), step=100)
    assert said == ["epoch 1: loss 1.2346, 12,346 words/s"]
