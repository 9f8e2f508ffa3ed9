"""The best answers to many analogy questions at once, by 3CosAdd, from the question words' products.

3CosAdd (Mikolov et al., 2013; Levy and Goldberg, 2014) answers ``a : b :: c : ?`` with the
word ``v`` of the largest cosine with ``b - a + c`` (of unit vectors), which is

    (b·v - a·v + c·v) / |b - a + c|

three entries of ``G = W Uᵀ``, the products of the question words ``W`` with the table
``U``. A question set names few distinct words (``questions-words.txt``: about 900 words in
19,544 questions), so ``G`` costs a fraction of the questions' own products with the
table, and each question's scores are two additions per word. :func:`cosadd_top_k` works
through ``G`` a tile of words at a time, keeping each question's best ``k``; its scores
differ from a product with the query vector by rounding (~1e-6), which
:mod:`w2v.evaluate` re-scores with gensim's arithmetic where it could decide an answer.

On the CPU the scores are formed and ranked in C (``csrc/cosadd.c``, through
:func:`w2v.native.library`) without being stored: 12,481 questions over 30,000 words take
0.13 s instead of torch's 0.36 s, with the same scores bit for bit. Without a C compiler,
and on a GPU, torch's ops do it.
"""

from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import numpy as np
import torch

from . import native
from .topk import tile_topk

# Words per tile: at most this many, and G's tile (distinct words x tile) at most _G_TILE values.
_TILE = {"cpu": 8192, "cuda": 1 << 20}
_G_TILE = {"cpu": 1 << 23, "cuda": 1 << 28}
# Question scores per block (questions x tile): a few MB on the CPU, where caches are small.
_BLOCK = {"cpu": 1 << 21, "cuda": 1 << 27}
# Questions whose |b - a + c| is below this are scored from their query vector instead.
_SHORT = 0.25
_MAX_WORDS = 1 << 15  # beyond this many distinct question words, G's tiles would grow too thin


def worth_it(abc: np.ndarray, dim: int) -> bool:
    """Whether :func:`cosadd_top_k` beats products with the query vectors for these questions.

    It computes ``m x R x D`` products for ``m`` distinct words instead of the questions'
    ``Q x R x D``, plus a few passes over ``Q x R`` scores (counted as 8 products each).
    """
    q = len(abc)
    m = len(np.unique(abc))
    return 0 < m <= _MAX_WORDS and m * dim + 8 * q < q * dim


def cosadd_top_k(
    unit: torch.Tensor, abc: np.ndarray, k: int, restrict_vocab: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Each question's ``k`` best words by 3CosAdd, its own three words left out.

    Args:
        unit: ``(V, D)`` the unit-normalised table, on the device to compute on.
        abc: ``(Q, 3)`` the ids of each question's ``a``, ``b``, ``c``, all below ``restrict_vocab``.
        k: answers per question.
        restrict_vocab: answer from the first this-many words only.

    Returns:
        ``(scores, ids)``, both ``(Q, min(k, R))`` for the ``R`` words searched, best first:
        cosines with ``b - a + c``, ``-inf`` and ``-1`` where fewer words qualify (as
        :meth:`~w2v.vectors.WordVectors.top_k` returns them).
    """
    dev = unit.device
    table = unit[:restrict_vocab]  # (R, D)
    n = table.shape[0]
    k = min(k, n)
    q = len(abc)
    out_s = np.full((q, k), -np.inf, dtype=np.float32)
    out_i = np.full((q, k), -1, dtype=np.int64)
    if k == 0 or q == 0:
        return out_s, out_i
    ids = torch.as_tensor(np.asarray(abc, dtype=np.int64), device=dev)  # (Q, 3)
    words, where = torch.unique(ids, return_inverse=True)  # W (m,), each question's rows of G (Q, 3)
    row_a, row_b, row_c = where.T.contiguous()  # (Q,) each
    length = torch.linalg.vector_norm(  # |b - a + c|, in float64 as gensim's mean is formed
        table[ids[:, 1]].double() - table[ids[:, 0]].double() + table[ids[:, 2]].double(), dim=1
    )
    scale = (1.0 / length.clamp_min(_SHORT)).float()  # (Q,)
    kind = "cpu" if dev.type == "cpu" else "cuda"
    w_rows = table[words]  # (m, D)
    lib = _native() if dev.type == "cpu" else None
    if lib is not None:
        vals, found = _native_tiles(lib, table, w_rows, ids, (row_a, row_b, row_c), k)
    else:
        vals, found = _torch_tiles(table, w_rows, ids, (row_a, row_b, row_c), k, kind)
    out_s[:] = vals * scale.cpu().numpy()[:, None]
    out_i[:] = found
    short = torch.nonzero(length < _SHORT).flatten()
    per = max(1, _BLOCK[kind] // n)  # questions a (questions x words) product of _BLOCK values holds
    for s in range(0, len(short), per):  # where |b - a + c| is small, dividing by it would magnify G's rounding
        rows = short[s : s + per]
        out_s[rows.cpu().numpy()], out_i[rows.cpu().numpy()] = _direct(table, ids[rows], k)
    out_i[np.isneginf(out_s)] = -1
    return out_s, out_i


def _torch_tiles(table, w_rows, ids, rows, k: int, kind: str) -> Tuple[np.ndarray, np.ndarray]:
    """Each question's ``k`` best unscaled scores ``(gb - ga) + gc`` and their words, with torch ops."""
    n, m, q = table.shape[0], w_rows.shape[0], ids.shape[0]
    dev = table.device
    row_a, row_b, row_c = rows
    tile = max(256, min(n, _TILE[kind], _G_TILE[kind] // m))
    bq = max(1, min(q, _BLOCK[kind] // tile))
    blocks = [(s, min(q, s + bq)) for s in range(0, q, bq)]
    found = [([], []) for _ in blocks]
    first, second = torch.empty(bq * tile, device=dev), torch.empty(bq * tile, device=dev)
    for vs in range(0, n, tile):
        g = w_rows @ table[vs : vs + tile].T  # (m, t)
        t = g.shape[1]
        for (start, end), (vals, cols) in zip(blocks, found):
            b = end - start
            scores, other = first[: b * t].view(b, t), second[: b * t].view(b, t)
            torch.index_select(g, 0, row_b[start:end], out=scores)
            scores.sub_(torch.index_select(g, 0, row_a[start:end], out=other))
            scores.add_(torch.index_select(g, 0, row_c[start:end], out=other))  # (b, t), unscaled: same order
            own = ids[start:end]
            hit = (own >= vs) & (own < vs + t)
            if bool(hit.any()):
                at = torch.arange(b, device=dev)[:, None].expand_as(own)
                scores[at[hit], own[hit] - vs] = -torch.inf
            v, i = tile_topk(scores, min(k, t))
            vals.append(v)
            cols.append(i + vs)
    out_v, out_i = np.empty((q, k), dtype=np.float32), np.empty((q, k), dtype=np.int64)
    for (start, end), (vals, cols) in zip(blocks, found):
        v, j = torch.topk(torch.cat(vals, 1), k, dim=1)  # (b, k), best first
        out_v[start:end] = v.cpu().numpy()
        out_i[start:end] = torch.gather(torch.cat(cols, 1), 1, j).cpu().numpy()
    return out_v, out_i


def _native():
    """The compiled search (``csrc/cosadd.c``) with its argument types; ``None`` without a C compiler."""
    lib = native.library("cosadd")
    if lib is not None and lib.w2v_cosadd_tile.argtypes is None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.w2v_cosadd_tile.argtypes = [p, i64, p, p, p, p, i64, i64, ctypes.c_int, p, p, ctypes.c_int]
        lib.w2v_cosadd_tile.restype = None
    return lib


def _native_tiles(lib, table, w_rows, ids, rows, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`_torch_tiles` in C on the CPU: the same scores, bit for bit, none of them stored."""
    n, m, q = table.shape[0], w_rows.shape[0], ids.shape[0]
    ra, rb, rc = (np.ascontiguousarray(r.numpy(), dtype=np.int64) for r in rows)
    own = np.ascontiguousarray(ids.numpy(), dtype=np.int64)
    vals = np.full((q, k), -np.inf, dtype=np.float32)
    found = np.full((q, k), -1, dtype=np.int64)
    tile = max(256, min(n, _TILE["cpu"], _G_TILE["cpu"] // m))
    threads = torch.get_num_threads()
    for vs in range(0, n, tile):
        g = (w_rows @ table[vs : vs + tile].T).contiguous()  # (m, t)
        lib.w2v_cosadd_tile(
            g.data_ptr(), g.shape[1], ra.ctypes.data, rb.ctypes.data, rc.ctypes.data, own.ctypes.data, vs, q, k,
            vals.ctypes.data, found.ctypes.data, threads,
        )
    return vals, found


def _direct(table: torch.Tensor, ids: torch.Tensor, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The best ``k`` words of a few questions (ids ``(q, 3)``), from products with their unit query vectors."""
    query = table[ids[:, 1]].double() - table[ids[:, 0]].double() + table[ids[:, 2]].double()
    query = (query / torch.linalg.vector_norm(query, dim=1, keepdim=True).clamp_min(1e-30)).float()  # (q, D)
    scores = query @ table.T  # (q, R)
    scores.scatter_(1, ids, -torch.inf)
    v, i = torch.topk(scores, k, dim=1)
    return v.cpu().numpy(), i.cpu().numpy()
