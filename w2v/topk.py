"""The ``k`` best rows of a table for many queries at once, tile by tile, on the CPU or a GPU.

The engine behind :meth:`w2v.vectors.WordVectors.top_k` (and so every similarity query):
a block of queries is scored against a tile of the table at a time, into one reused
buffer, and each tile keeps its best ``k`` (:func:`tile_topk`), so memory stays bounded
whatever the number of queries and words.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

# (queries x words) tiles of this many scores: 32 MB, about the L3 cache, on CPU
_TILE = {"cpu": 1 << 23, "cuda": 1 << 28}
_QUERY_BLOCK = 1024
# a tile's columns are ranked in groups of this many (see tile_topk)
_GROUP = 64


def top_k_rows(
    table: torch.Tensor, queries: np.ndarray, k: int, exclude: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``table`` with the largest dot product with each query.

    Args:
        table: ``(R, D)`` the rows searched, on the device to compute on.
        queries: ``(B, D)`` query vectors.
        k: results per query.
        exclude: ``(B, m)`` row ids to leave out per query; ``-1`` pads.

    Returns:
        ``(scores, ids)``, both ``(B, min(k, R))``, best first; scores are ``-inf`` and ids
        ``-1`` where fewer than ``k`` rows qualify.
    """
    dev = table.device
    queries = np.ascontiguousarray(queries, dtype=np.float32)  # (B, D)
    n = table.shape[0]
    k = min(k, n)
    out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    if k == 0 or len(queries) == 0:
        return out_s, out_i
    ex_rows, ex_cols = _excluded(exclude, n, dev)
    q = torch.from_numpy(queries).to(dev)
    # Score a block of queries against a tile of the table at a time, into one reused
    # buffer (fresh 100 MB results cost page faults), keeping each tile's top k.
    bq = min(len(q), _QUERY_BLOCK)
    vt = max(k, _TILE.get(dev.type, _TILE["cuda"]) // bq)
    buf = torch.empty(0 if dev.type == "cpu" and len(q) == 1 else bq * min(vt, n), device=dev)
    for qs in range(0, len(q), bq):
        block = q[qs : qs + bq]
        vals, ids = [], []
        for vs in range(0, n, vt):
            part = table[vs : vs + vt]
            if dev.type == "cpu" and len(q) == 1:  # numpy's gemv is about twice torch.mv's speed
                scores = torch.from_numpy(part.numpy() @ queries[0])[None]
            else:
                scores = buf[: len(block) * len(part)].view(len(block), len(part))  # (b, t)
                torch.matmul(block, part.T, out=scores)
            hit = (ex_rows >= qs) & (ex_rows < qs + len(block)) & (ex_cols >= vs) & (ex_cols < vs + len(part))
            scores[ex_rows[hit] - qs, ex_cols[hit] - vs] = -torch.inf
            v, i = tile_topk(scores, min(k, len(part)))
            vals.append(v)
            ids.append(i + vs)
        v, j = torch.topk(torch.cat(vals, 1), k, dim=1)  # (b, k), best first
        out_s[qs : qs + len(block), :k] = v.cpu().numpy()
        out_i[qs : qs + len(block), :k] = torch.gather(torch.cat(ids, 1), 1, j).cpu().numpy()
    out_i[np.isneginf(out_s)] = -1
    return out_s, out_i


def tile_topk(scores: torch.Tensor, k: int, group: int = _GROUP) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(scores, k, dim=1)``, reading most scores once: a tile's best ``k`` lie in its best ``k`` groups.

    Each row's columns form groups of ``group``; the ``k`` groups with the largest maxima
    hold the row's ``k`` largest scores (a score in the top ``k`` has at most ``k - 1``
    larger ones, so at most ``k - 1`` groups beat its own), and only their columns are
    ranked. Equal scores may come back in another order than ``torch.topk``'s.

    Shape:
        scores: ``(b, t)``; returns values and column ids, both ``(b, k)``, best first.
    """
    b, t = scores.shape
    whole = t - t % group  # the ragged end joins the candidates as it is
    if whole < 4 * k * group:
        return torch.topk(scores, k, dim=1)
    maxima = scores[:, :whole].reshape(b, whole // group, group).amax(2)  # (b, t / group)
    best = torch.topk(maxima, k, dim=1).indices  # (b, k)
    cols = (best[:, :, None] * group + torch.arange(group, device=scores.device)).reshape(b, k * group)
    if whole < t:
        cols = torch.cat([cols, torch.arange(whole, t, device=scores.device).expand(b, t - whole)], 1)
    v, j = torch.topk(torch.gather(scores, 1, cols), k, dim=1)
    return v, torch.gather(cols, 1, j)


def _excluded(exclude, n: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(row, col) of each valid id in a ``(B, m)`` exclusion array (``-1`` pads)."""
    if exclude is None:
        return torch.empty(0, dtype=torch.long, device=device), torch.empty(0, dtype=torch.long, device=device)
    ex = torch.as_tensor(np.asarray(exclude, dtype=np.int64).reshape(len(exclude), -1), device=device)
    rows = torch.arange(ex.shape[0], device=device)[:, None].expand_as(ex)
    keep = (ex >= 0) & (ex < n)
    return rows[keep], ex[keep]
