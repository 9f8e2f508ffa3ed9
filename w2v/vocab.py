"""The vocabulary: words in frequency order behind a fixed ``<unk>`` id.

Id 0 is always ``<unk>``; it absorbs every token that did not make the cut and is
trained like any other word. Words follow from id 1 in decreasing count (ties keep
first-seen order). The text form is one ``word count`` line per id, the format of
word2vec's ``-save-vocab``.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .safefile import atomic_write

UNK = "<unk>"
UNK_ID = 0


class Vocab:
    """Words, their counts, and the id of each.

    Args:
        words: words in id order; ``words[0]`` must be ``<unk>``.
        counts: corpus count of each word (``counts[0]`` is what ``<unk>`` absorbed).

    >>> v = Vocab.from_counts({"a": 5, "b": 2, "c": 9, "d": 1}, min_count=2)
    >>> v.index_to_key, v.counts.tolist()
    (['<unk>', 'c', 'a', 'b'], [1, 9, 5, 2])
    >>> v.encode(["c", "zzz", "b"]).tolist(), v.decode([1, 0])
    ([1, 0, 3], ['c', '<unk>'])
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int]) -> None:
        if len(words) != len(counts):
            raise ValueError(f"{len(words)} words but {len(counts)} counts")
        if not words or words[0] != UNK:
            raise ValueError(f"the first word of a vocabulary must be {UNK!r}")
        self.index_to_key: List[str] = list(words)
        self.key_to_index: Dict[str, int] = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ValueError("a vocabulary may not hold the same word twice")
        self.counts = np.asarray(counts, dtype=np.int64)

    @classmethod
    def from_counts(
        cls,
        counts: Dict[str, int] | Iterable[tuple],
        min_count: int = 5,
        max_size: Optional[int] = None,
    ) -> "Vocab":
        """Keep words seen at least ``min_count`` times, at most ``max_size`` of them.

        Args:
            counts: word -> count, or ``(word, count)`` pairs in first-seen order.
            min_count: words rarer than this become ``<unk>``.
            max_size: the most words to keep (``<unk>`` not counted); the rarest go first.

        Raises:
            ValueError: when no word reaches ``min_count``.
        """
        items = list(counts.items() if isinstance(counts, dict) else counts)
        found = np.fromiter((c for _, c in items), dtype=np.int64, count=len(items))
        return cls.from_types([w for w, _ in items], found, min_count, max_size)[0]

    @classmethod
    def from_types(
        cls, words: Sequence[str], counts, min_count: int = 5, max_size: Optional[int] = None
    ) -> Tuple["Vocab", np.ndarray]:
        """:meth:`from_counts` of ``words`` and their ``counts``, and the id each of ``words`` gets.

        Python touches only the words kept: a corpus's 3M types (most of them rare) cost
        their counts' sort, where a loop over them took seconds.

        Args:
            words: the corpus's types, in first-seen order (or any order that breaks ties).
            counts: the count of each, ``(len(words),)``.

        Returns:
            ``(vocab, ids)``: ``ids[i]`` is the id of ``words[i]`` (:data:`UNK_ID` for a word not kept).

        >>> v, ids = Vocab.from_types(["a", "b", "c", "d"], np.array([5, 2, 9, 1]), min_count=2)
        >>> v.index_to_key, ids.tolist()
        (['<unk>', 'c', 'a', 'b'], [2, 3, 1, 0])
        """
        words = words if isinstance(words, list) else list(words)
        found = np.asarray(counts, dtype=np.int64)
        if len(found) != len(words):
            raise ValueError(f"{len(words)} words but {len(found)} counts")
        order = np.argsort(-found, kind="stable")  # ties keep first-seen order
        keep = found[order] >= min_count
        unknowns = list(_positions(words, UNK))  # a corpus that spells them <unk>
        if unknowns:
            keep &= ~np.isin(order, unknowns)
        chosen = order[keep][:max_size]  # the rarest go first past max_size
        if not len(chosen):
            raise ValueError(
                f"no word occurs at least data.min_count={min_count} times; "
                "lower data.min_count or use a larger corpus"
            )
        kept = found[chosen]
        ids = np.zeros(len(words), dtype=np.int64)
        ids[chosen] = np.arange(1, len(chosen) + 1)
        vocab = cls([UNK] + [words[i] for i in chosen.tolist()], [int(found.sum() - kept.sum())] + kept.tolist())
        return vocab, ids

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, tokens={int(self.counts.sum())})"

    @property
    def total(self) -> int:
        """Tokens in the corpus, ``<unk>`` included."""
        return int(self.counts.sum())

    def encode(self, words: Iterable[str]) -> np.ndarray:
        """Ids of ``words``; unknown words get ``UNK_ID``."""
        get = self.key_to_index.get
        return np.fromiter((get(w, UNK_ID) for w in words), dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.index_to_key[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """Write ``word count`` lines in id order (atomically: temp file, then rename)."""
        with atomic_write(path, "w") as f:
            for word, count in zip(self.index_to_key, self.counts.tolist()):
                f.write(f"{word} {count}\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Read a file written by :meth:`save` (or word2vec's ``-save-vocab``).

        A file whose first word is not ``<unk>`` gets ``<unk>`` with count 0 put in front.
        """
        words, counts = read_word_counts(path)
        if not words or words[0] != UNK:
            words.insert(0, UNK)
            counts.insert(0, 0)
        return cls(words, counts)


def read_word_counts(path: str | os.PathLike):
    """The ``(words, counts)`` of a file of ``word count`` lines, in file order.

    Raises:
        ValueError: a line is not ``word count``; the message names the file and line.
    """
    words, counts = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").rsplit(" ", 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{n}: expected 'word count', got {line.strip()[:60]!r}")
            words.append(parts[0])
            counts.append(int(parts[1]))
    return words, counts


def _positions(words: List[str], word: str) -> Iterator[int]:
    """Where ``word`` is in ``words`` (``list.index``: at C speed between the matches)."""
    at = -1
    while True:
        try:
            at = words.index(word, at + 1)
        except ValueError:
            return
        yield at
