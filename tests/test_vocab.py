import numpy as np
import pytest

from w2v.vocab import UNK, UNK_ID, Vocab


def test_frequency_order_unk_first_and_min_count():
    v = Vocab.from_counts([("b", 3), ("a", 7), ("c", 3), ("d", 1)], min_count=2)
    assert v.index_to_key == [UNK, "a", "b", "c"]  # ties keep first-seen order
    assert v.counts.tolist() == [1, 7, 3, 3]
    assert v.key_to_index["a"] == 1 and UNK_ID == 0
    assert v.total == 14


def test_max_size_sends_the_rarest_to_unk():
    v = Vocab.from_counts({"a": 9, "b": 8, "c": 7}, min_count=1, max_size=2)
    assert v.index_to_key == [UNK, "a", "b"] and v.counts[0] == 7


def test_a_literal_unk_token_merges_into_unk():
    v = Vocab.from_counts({"<unk>": 50, "a": 9, "b": 1}, min_count=2)
    assert v.index_to_key == [UNK, "a"] and v.counts[0] == 51


def test_encode_decode_round_trip():
    v = Vocab.from_counts({"x": 4, "y": 3}, min_count=1)
    ids = v.encode(["y", "nope", "x"])
    assert ids.tolist() == [2, 0, 1]
    assert v.decode(ids) == ["y", UNK, "x"]


def test_no_word_reaching_min_count_is_a_clear_error():
    with pytest.raises(ValueError, match="min_count=5"):
        Vocab.from_counts({"a": 1, "b": 2}, min_count=5)


def test_save_load_round_trip(tmp_path):
    v = Vocab.from_counts({"über": 4, "y": 3, "z z": 2}, min_count=1)
    v.save(tmp_path / "vocab.txt")
    w = Vocab.load(tmp_path / "vocab.txt")
    assert w.index_to_key == v.index_to_key and w.counts.tolist() == v.counts.tolist()
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()[1] == "über 4"


def test_load_without_unk_line_adds_it(tmp_path):
    (tmp_path / "v.txt").write_text("the 10\nof 5\n")
    v = Vocab.load(tmp_path / "v.txt")
    assert v.index_to_key == [UNK, "the", "of"] and v.counts.tolist() == [0, 10, 5]


def test_load_rejects_malformed_lines(tmp_path):
    (tmp_path / "v.txt").write_text("the 10\nbroken\n")
    with pytest.raises(ValueError, match="v.txt:2"):
        Vocab.load(tmp_path / "v.txt")


def _reference_from_counts(items, min_count, max_size):
    """The rule of Vocab.from_counts, one word at a time."""
    order = sorted(range(len(items)), key=lambda i: -items[i][1])
    words, kept, unk = ["<unk>"], [0], 0
    for i in order:
        word, count = items[i]
        if word == "<unk>":
            unk += count
        elif count >= min_count and (max_size is None or len(words) <= max_size):
            words.append(word)
            kept.append(count)
        else:
            unk += count
    kept[0] = unk
    return words, kept


def test_from_counts_keeps_the_frequent_words_in_order_ties_first_seen():
    import random

    rng = random.Random(0)
    for trial in range(200):
        items = [(f"w{i}", rng.choice([1, 2, 3, 5, 5, 8, 40])) for i in range(rng.randrange(1, 60))]
        if trial % 3 == 0:
            items.insert(rng.randrange(len(items) + 1), ("<unk>", rng.randrange(0, 50)))
        min_count, max_size = rng.choice([1, 2, 5]), rng.choice([None, 0, 1, 3, 10])
        words, kept = _reference_from_counts(items, min_count, max_size)
        if len(words) == 1:
            with pytest.raises(ValueError, match="min_count"):
                Vocab.from_counts(items, min_count, max_size)
            continue
        vocab = Vocab.from_counts(items, min_count, max_size)
        assert vocab.index_to_key == words and vocab.counts.tolist() == kept
        # from the corpus's types and an array of their counts: the same vocabulary, and each type's id
        same, ids = Vocab.from_types([w for w, _ in items], np.array([c for _, c in items]), min_count, max_size)
        assert same.index_to_key == words and same.counts.tolist() == kept
        assert ids.tolist() == vocab.encode(w for w, _ in items).tolist()
