"""Trained word vectors: lookups, similarity queries, files, and a downstream ``nn.Embedding``.

:class:`WordVectors` is gensim's ``KeyedVectors`` cut to what a word2vec user queries:
the same names (``index_to_key``, ``key_to_index``, ``vectors``, ``most_similar``,
``similarity``, ``save_word2vec_format``), plus batched queries that run as one matrix
product on CPU or GPU. It never imports the model or the trainer.

>>> wv = WordVectors(["<unk>", "a", "b", "c"], [[1, 0], [1, 0.1], [0, 1], [-1, 0]])
>>> [(w, round(s, 3)) for w, s in wv.most_similar("a", topn=2)]
[('<unk>', 0.995), ('b', 0.1)]
>>> round(wv.similarity("a", "c"), 3), "b" in wv, len(wv), wv["c"].tolist()
(-0.995, True, 4, [-1.0, 0.0])
"""

from __future__ import annotations

import logging
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from w2v import formats
from w2v.topk import top_k_rows

log = logging.getLogger(__name__)

Key = Union[str, np.ndarray, torch.Tensor]
Result = List[Tuple[str, float]]


class PretrainedEmbedding(NamedTuple):
    """What :meth:`WordVectors.to_embedding` returns: the layer and the words it had no vector for."""

    embedding: torch.nn.Embedding
    missing: List[str]

    @property
    def n_missing(self) -> int:
        return len(self.missing)


class WordVectors:
    """Words and their vectors, in id order (most frequent first when they come from training).

    Args:
        index_to_key: the words; ``index_to_key[i]`` owns row ``i``.
        vectors: ``(V, D)`` array or tensor, stored as numpy float32.
        counts: optional corpus count per word, kept by the ``.npy`` and ``.pt`` formats.

    The unit-normalised table behind every query is computed on first use and cached
    (like gensim's ``fill_norms``); assigning ``wv.vectors`` drops it. After changing
    ``wv.vectors`` in place, call ``wv.fill_norms(force=True)``.
    """

    def __init__(self, index_to_key: Sequence[str], vectors, counts=None) -> None:
        self.index_to_key: List[str] = list(index_to_key)
        self.key_to_index: Dict[str, int] = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            dup = next(w for i, w in enumerate(self.index_to_key) if self.key_to_index[w] != i)
            raise ValueError(f"the word {dup!r} occurs twice in index_to_key; each word needs one row")
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)

    # --- the table -------------------------------------------------------------------------

    @property
    def vectors(self) -> np.ndarray:
        """The ``(V, D)`` float32 table; assigning a new one drops the cached norms."""
        return self._vectors

    @vectors.setter
    def vectors(self, value) -> None:
        if torch.is_tensor(value):
            value = value.detach().cpu().numpy()
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.ndim != 2 or len(value) != len(self.index_to_key):
            raise ValueError(f"{len(self.index_to_key)} words need vectors of shape ({len(self.index_to_key)}, D), "
                             f"got {value.shape}")
        self._vectors = value
        self.norms: Optional[np.ndarray] = None
        self._unit: Optional[np.ndarray] = None
        self._on_device: Dict[str, torch.Tensor] = {}

    @property
    def vector_size(self) -> int:
        return self._vectors.shape[1]

    def fill_norms(self, force: bool = False) -> None:
        """Compute ``norms`` (V,) and the unit-normalised table, unless cached (or ``force``)."""
        if self._unit is None or force:
            self.norms = np.linalg.norm(self._vectors, axis=1)  # as gensim does, so cosines agree
            safe = np.where(self.norms > 0, self.norms, 1).astype(np.float32)  # a zero vector stays zero
            self._unit = self._vectors / safe[:, None]
            self._on_device = {}

    def get_normed_vectors(self) -> np.ndarray:
        """The unit-normalised ``(V, D)`` table (cached)."""
        self.fill_norms()
        return self._unit

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word) -> bool:
        return word in self.key_to_index

    def __repr__(self) -> str:
        return f"WordVectors(words={len(self)}, dim={self.vector_size})"

    def get_index(self, word: str) -> int:
        """The row of ``word``; ``KeyError`` naming the word when it is unknown."""
        try:
            return self.key_to_index[word]
        except KeyError:
            hint = f"; did you mean {word.lower()!r}?" if isinstance(word, str) and word.lower() in self else ""
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} words){hint}") from None

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        """The vector of ``word`` (unit length with ``norm=True``)."""
        i = self.get_index(word)
        return self.get_normed_vectors()[i] if norm else self._vectors[i]

    def __getitem__(self, words):
        """``wv["king"]`` is a (D,) vector; ``wv[["king", "queen"]]`` a (2, D) array."""
        if isinstance(words, str):
            return self.get_vector(words)
        return self._vectors[[self.get_index(w) for w in words]]

    # --- queries ---------------------------------------------------------------------------

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        unit = self.get_normed_vectors()
        return float(unit[self.get_index(w1)] @ unit[self.get_index(w2)])

    def most_similar(
        self,
        positive: Union[Key, Sequence, None] = None,
        negative: Union[Key, Sequence, None] = None,
        topn: Optional[int] = 10,
        restrict_vocab: Optional[int] = None,
    ):
        """The ``topn`` words nearest the mean of ``positive`` minus ``negative``, as in gensim.

        Words count as unit vectors, raw vectors as given; ``(key, weight)`` pairs set a
        weight (default 1 for positive, -1 for negative). The query is the normalised
        weighted mean; words given as input are left out of the result.

        Args:
            positive: words, vectors or ``(key, weight)`` pairs (one word or vector alone is fine).
            negative: the same, subtracted.
            topn: how many neighbours; ``None`` returns the cosine with every word (an array).
            restrict_vocab: search only the first this-many words (the most frequent).

        Returns:
            ``[(word, cosine), ...]`` best first.

        Raises:
            KeyError: a word is not in the vocabulary.
            ValueError: neither positive nor negative holds anything.
        """
        if isinstance(topn, int) and topn < 1:
            return []
        check_count(restrict_vocab, "restrict_vocab")
        query, exclude = self._mean(_as_list(positive), _as_list(negative))
        if topn is None:
            return self.get_normed_vectors()[:restrict_vocab] @ query
        scores, ids = self.top_k(query[None], topn, exclude=np.array([exclude], dtype=np.int64).reshape(1, -1),
                                 restrict_vocab=restrict_vocab)
        return self._pairs(scores[0], ids[0])

    def similar_by_vector(self, vector, topn: int = 10, restrict_vocab: Optional[int] = None) -> Result:
        """The ``topn`` words nearest a raw vector (nothing excluded)."""
        vector = np.asarray(vector, dtype=np.float32)
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def analogy(self, a: str, b: str, c: str, topn: int = 10, restrict_vocab: Optional[int] = None) -> Result:
        """``a`` is to ``b`` as ``c`` is to ?: the words nearest ``b - a + c`` (3CosAdd).

        The same as gensim's ``most_similar(positive=[b, c], negative=[a])``.
        """
        return self.most_similar(positive=[b, c], negative=[a], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_batch(
        self,
        words: Sequence[str],
        topn: int = 10,
        restrict_vocab: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
    ) -> List[Result]:
        """The neighbours of many words at once: one matrix product per block of queries.

        Args:
            words: the query words; each is left out of its own result.
            topn: neighbours per word.
            restrict_vocab: search only the first this-many words.
            device: where the product runs (``"cuda"``, ``"cpu"``); None is the CPU. The
                table is copied to a device once and cached there.

        Returns:
            one ``[(word, cosine), ...]`` list per query word, like :meth:`most_similar`.
        """
        ids = np.array([self.get_index(w) for w in words], dtype=np.int64)
        queries = self.get_normed_vectors()[ids]  # (B, D)
        scores, top = self.top_k(queries, topn, exclude=ids[:, None], restrict_vocab=restrict_vocab, device=device)
        return [self._pairs(s, i) for s, i in zip(scores, top)]

    def top_k(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Optional[np.ndarray] = None,
        restrict_vocab: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of the unit table with the largest dot product with each query.

        Pass unit-length queries to rank by cosine. This is the engine behind the other
        queries; scores are ``-inf`` and ids ``-1`` where fewer than ``k`` words qualify.

        Args:
            queries: ``(B, D)`` query vectors.
            k: results per query.
            exclude: ``(B, m)`` word ids to leave out per query; ``-1`` pads.
            restrict_vocab: search only the first this-many words.
            device: where to compute; None is the CPU.

        Returns:
            ``(scores, ids)``, both ``(B, min(k, R))`` for the ``R`` words searched, best first:
            a ``k`` past the vocabulary allocates nothing more.
        """
        dev = torch_device(device)
        check_count(k, "k")
        check_count(restrict_vocab, "restrict_vocab")
        return top_k_rows(self.unit_table(dev)[:restrict_vocab], queries, k, exclude)

    def unit_table(self, device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """The unit-normalised ``(V, D)`` table as a tensor on ``device`` (the CPU's shares memory; others are cached)."""
        device = torch_device(device)
        if device.type == "cpu":
            return torch.from_numpy(self.get_normed_vectors())  # shares memory
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = torch.from_numpy(self.get_normed_vectors()).to(device)
        return self._on_device[key]

    def _mean(self, positive: list, negative: list) -> Tuple[np.ndarray, List[int]]:
        """gensim's ``get_mean_vector(pre_normalize=True, post_normalize=True)`` and the input word ids."""
        items = [(k, 1.0) for k in positive] + [(k, -1.0) for k in negative]
        if not items:
            raise ValueError("most_similar needs at least one word or vector in positive or negative")
        total = np.zeros(self.vector_size, dtype=np.float64)
        ids = []
        for key, weight in items:
            if isinstance(key, tuple):
                key, weight = key
            if isinstance(key, str):
                ids.append(self.get_index(key))
                vec = self.get_normed_vectors()[ids[-1]]
            else:
                vec = key.detach().cpu().numpy() if torch.is_tensor(key) else np.asarray(key)
                if vec.shape != (self.vector_size,):
                    raise ValueError(f"a query vector must have shape ({self.vector_size},), got {vec.shape}")
            total += weight * vec  # gensim then divides by the weights' sum: no change of direction
        norm = np.linalg.norm(total)
        mean = total / norm if norm > 0 else total
        return mean.astype(np.float32), ids

    def _pairs(self, scores: np.ndarray, ids: np.ndarray) -> Result:
        return [(self.index_to_key[i], float(s)) for s, i in zip(scores.tolist(), ids.tolist()) if i >= 0]

    # --- files -----------------------------------------------------------------------------

    def save_word2vec_format(self, path, binary: bool = False) -> None:
        """Write the C tool's format (``binary=True``: ``-binary 1``), which gensim reads too."""
        formats.write_word2vec(path, self.index_to_key, self._vectors, binary=binary)

    @classmethod
    def load_word2vec_format(
        cls, path, binary: bool = False, limit: Optional[int] = None, unicode_errors: str = "strict"
    ) -> "WordVectors":
        """Read the C tool's or gensim's word2vec format (see :func:`w2v.formats.read_word2vec`)."""
        words, vectors = formats.read_word2vec(path, binary=binary, limit=limit, unicode_errors=unicode_errors)
        return cls(words, vectors)

    def save(self, path, format: Optional[str] = None) -> None:
        """Write in the format named by the suffix (``.bin``, ``.txt``, ``.glove.txt``, ``.npy``, ``.pt``)
        or by ``format`` (one of :data:`w2v.formats.FORMATS`). ``.npy`` also writes ``<name>.vocab.txt``."""
        formats.write_vectors(path, self.index_to_key, self._vectors, format=format, counts=self.counts)

    @classmethod
    def load(
        cls, path, format: Optional[str] = None, limit: Optional[int] = None, unicode_errors: str = "strict"
    ) -> "WordVectors":
        """Read any format :meth:`save` writes, chosen by suffix or ``format``."""
        words, vectors, counts = formats.read_vectors(path, format=format, limit=limit, unicode_errors=unicode_errors)
        return cls(words, vectors, counts=counts)

    # --- downstream ------------------------------------------------------------------------

    def to_embedding(
        self,
        words_or_vocab,
        freeze: bool = True,
        unk: Optional[str] = "<unk>",
        seed: int = 0,
        padding_idx: Optional[int] = None,
        lowercase_fallback: bool = True,
    ) -> PretrainedEmbedding:
        """An ``nn.Embedding`` whose rows follow another model's vocabulary.

        Each downstream word gets our vector; failing that, the vector of its lowercase
        form (``lowercase_fallback``); failing that, our ``unk`` vector when we have one,
        else a seeded random row with the spread of our table. ``padding_idx``'s row is zero.

        Args:
            words_or_vocab: the downstream words: a list (id = position), a dict word -> id
                with ids ``0..n-1``, or anything with ``index_to_key`` (a :class:`w2v.vocab.Vocab`).
            freeze: keep the rows fixed in training (as ``nn.Embedding.from_pretrained``).
            unk: our word whose vector stands in for missing words; None always draws random rows.
            seed: seeds the random rows.
            padding_idx: passed to ``nn.Embedding``; that row is zero and never counted missing.
            lowercase_fallback: try ``word.lower()`` before giving up on a word.

        Returns:
            ``(embedding, missing)``: the layer and the downstream words we had no vector for
            (``.n_missing`` counts them).

        >>> wv = WordVectors(["<unk>", "cat", "dog"], np.eye(3, dtype=np.float32))
        >>> emb, missing = wv.to_embedding(["dog", "Cat", "emu"])
        >>> emb.weight.tolist(), missing
        ([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], ['emu'])
        """
        words = _downstream_words(words_or_vocab)
        weight = np.empty((len(words), self.vector_size), dtype=np.float32)
        missing_rows, missing = [], []
        for row, word in enumerate(words):
            i = self.key_to_index.get(word)
            if i is None and lowercase_fallback:
                i = self.key_to_index.get(word.lower())
            if i is not None:
                weight[row] = self._vectors[i]
            elif row != padding_idx:
                missing_rows.append(row)
                missing.append(word)
        if missing_rows:
            if unk is not None and unk in self:
                weight[missing_rows] = self[unk]
            else:
                rng = np.random.default_rng(seed)
                spread = float(self._vectors.std()) if self._vectors.size else 1.0
                weight[missing_rows] = rng.normal(0.0, spread, (len(missing_rows), self.vector_size))
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        if missing:
            log.info("to_embedding: %d of %d words have no vector (e.g. %s)", len(missing), len(words), missing[:5])
        emb = torch.nn.Embedding.from_pretrained(torch.from_numpy(weight), freeze=freeze, padding_idx=padding_idx)
        return PretrainedEmbedding(emb, missing)


def torch_device(spec, name: str = "device") -> torch.device:
    """``spec`` (``None``: the CPU) as a ``torch.device``, or ``ValueError`` naming ``name`` and the fix.

    >>> torch_device(None), torch_device("cpu")
    (device(type='cpu'), device(type='cpu'))
    """
    if spec is None:
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} {spec!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {spec!r} but torch sees no CUDA device; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise ValueError(f"{name} {spec!r} but there are {n} GPU(s); use cuda:0" + (f" to cuda:{n - 1}" if n > 1 else ""))
    return device


def check_count(value, name: str) -> None:
    """``value`` is ``None`` or a whole number >= 0 (a negative slice bound would drop words silently)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
        raise ValueError(f"{name} must be a whole number >= 0 or None, got {value!r}")


def _as_list(keys) -> list:
    """gensim's ``_ensure_list``: one word or one vector stands for a list of one."""
    if keys is None:
        return []
    if isinstance(keys, (str, np.ndarray, torch.Tensor)) and not (hasattr(keys, "ndim") and keys.ndim > 1):
        return [keys]
    return list(keys)


def _downstream_words(words_or_vocab) -> List[str]:
    if hasattr(words_or_vocab, "index_to_key"):
        return list(words_or_vocab.index_to_key)
    if isinstance(words_or_vocab, dict):
        ids = sorted(words_or_vocab.values())
        if ids != list(range(len(ids))):
            raise ValueError("a word -> id dict must use the ids 0..n-1, each once; renumber it or pass a list")
        words = [""] * len(ids)
        for w, i in words_or_vocab.items():
            words[i] = w
        return words
    if isinstance(words_or_vocab, str):
        raise ValueError("to_embedding needs a list of words, a word -> id dict or a Vocab, not one string")
    return list(words_or_vocab)
