"""Merging replicas over 2 gloo processes equals the rule's definition and leaves every rank the same tables."""

import pytest
import torch

from test_distributed_embedding import run_ranks

from w2v.replica_sync import ReplicaSync

SHAPES = [(11, 4), (11, 4)]  # the input and output tables of a model


def start_tables():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(shape, generator=g) for shape in SHAPES]


def changes(rank):
    """What rank ``rank`` does to each table: rows only it changes, rows both change, rows nobody changes."""
    g = torch.Generator().manual_seed(10 + rank)
    rows = [[0, 3, 5] if rank == 0 else [3, 5, 8], [1, 6] if rank == 0 else [2, 9]]
    return [(r, torch.randn(len(r), shape[1], generator=g)) for r, shape in zip(rows, SHAPES)]


def expected(rule, rows=None, world=2):
    """The merge's definition, written out: each rank's own tables, then base + combined deltas on the merged rows."""
    out = []
    for t, base in enumerate(start_tables()):
        total = torch.zeros_like(base)
        own = [base.clone() for _ in range(world)]
        for rank in range(world):
            r, delta = changes(rank)[t]
            total[r] += delta
            own[rank][r] += delta
        if rule == "mean":
            total /= world
        merged = base + total
        out.append([torch.cat([merged[:rows], own[rank][rows:]]) if rows else merged for rank in range(world)])
    return out  # [table][rank]


def merge(rank, world, rule, rows, shared_bytes):
    tables = start_tables()
    sync = ReplicaSync(tables, rule, shared_bytes=shared_bytes)
    sync.snapshot()
    for table, (r, delta) in zip(tables, changes(rank)):
        table[r] += delta
    first = sync.merge(rows)
    merged = [t.clone() for t in tables]
    bases_follow = all(torch.equal(t[:rows], b[:rows]) for t, b in zip(tables, sync.base))
    sync.merge()  # all rows: a row left out above merges now, one merged above does not move
    return {"merged": merged, "again": [t.clone() for t in tables], "bases_follow": bases_follow,
            "rows": first.rows, "bytes": first.bytes, "transport": sync.transport}


# Every merge through gloo; the first 4 rows through shared memory, all rows through gloo; all through shared memory.
TRANSPORTS = {"gloo": 0, "both": 4 * 4 * 2 * 4, "shared-memory": 1 << 20}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("rows", [None, 4], ids=["all-rows", "first-rows"])
@pytest.mark.parametrize("rule", ["sum", "mean"])
def test_a_merge_equals_its_definition_on_every_rank(rule, rows, transport, tmp_path):
    results = run_ranks(merge, 2, tmp_path, rule, rows, TRANSPORTS[transport])
    assert results[0]["transport"] == ("gloo" if transport == "gloo" else "shared memory")
    want, whole = expected(rule, rows), expected(rule)
    for rank, r in enumerate(results):
        for t in range(len(SHAPES)):
            torch.testing.assert_close(r["merged"][t], want[t][rank], rtol=0, atol=1e-6)
            torch.testing.assert_close(r["again"][t], whole[t][rank], rtol=0, atol=1e-6)
        assert r["bases_follow"]
    for t in range(len(SHAPES)):  # the replicas are bitwise the same after the merge of all rows
        assert torch.equal(results[0]["again"][t], results[1]["again"][t])
        if rows is None:
            assert torch.equal(results[0]["merged"][t], results[1]["merged"][t])
    merged_rows = rows or 11
    assert results[0]["rows"] == 2 * merged_rows and results[0]["bytes"] == 2 * merged_rows * 4 * 4


def test_one_process_keeps_its_own_tables():
    tables = start_tables()
    sync = ReplicaSync(tables, "mean")
    sync.snapshot()
    r, delta = changes(0)[0]
    tables[0][r] += delta
    want = tables[0].clone()
    sync.merge()
    assert torch.equal(tables[0], want) and torch.equal(sync.base[0], want)
    with pytest.raises(ValueError, match="unknown merge rule"):
        ReplicaSync(tables, "max")
