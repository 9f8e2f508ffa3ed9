"""DistributedEmbedding on 2 gloo processes equals the single-process sharded layer."""

import os
import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from w2v.embedding import ShardedEmbedding
from w2v.embedding.distributed import DistributedEmbedding, merge_shards

V, D = 23, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world, port, fn, folder, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = fn(rank, world, *args)
        torch.save(result, os.path.join(folder, f"result-{rank}.pt"))
    except BaseException:
        with open(os.path.join(folder, f"error-{rank}.txt"), "w") as f:
            f.write(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world, tmp_path, *args):
    """Run ``fn(rank, world, *args)`` in ``world`` gloo processes; return each rank's result."""
    mp.spawn(_entry, args=(world, free_port(), fn, str(tmp_path), args), nprocs=world, join=True)
    return [torch.load(tmp_path / f"result-{r}.pt") for r in range(world)]


def batches(world):
    """Each rank's ids (with duplicates, ids shared between ranks, and an empty batch) and upstream gradient."""
    g = torch.Generator().manual_seed(7)
    ids = [torch.randint(0, V, (3, 4), generator=g) for _ in range(world)]
    ids[-1][0, :2] = ids[0][1, 1]  # one id looked up by every rank, twice here
    grads = [torch.randn(3, 4, D, generator=g) for _ in range(world)]
    return ids, grads


def forward_and_grad(rank, world, strategy, sparse, padding_idx):
    table = torch.randn(V, D, generator=torch.Generator().manual_seed(3))
    layer = DistributedEmbedding(V, D, strategy, sparse=sparse, padding_idx=padding_idx)
    layer.copy_table_(table)
    ids, grads = batches(world)
    out = layer(ids[rank])
    out.backward(grads[rank])
    empty = layer(torch.empty(0, dtype=torch.long))  # a rank with nothing to look up still takes part
    empty.sum().backward()
    grad = layer.shards[0].grad
    return {
        "out": out.detach(),
        "grad": grad.to_dense() if grad.is_sparse else grad,
        "sparse": grad.is_sparse,
        "full": layer.full_table(dst=0),
        "weight": layer.weight,
        "state": layer.state_dict(),
        "sent": layer.sent_bytes,
    }


@pytest.mark.parametrize("strategy,sparse,padding_idx", [("mod", False, None), ("div", True, 4), ("mod", True, 3)])
def test_two_ranks_equal_one_sharded_layer(tmp_path, strategy, sparse, padding_idx):
    got = run_ranks(forward_and_grad, 2, tmp_path, strategy, sparse, padding_idx)
    table = torch.randn(V, D, generator=torch.Generator().manual_seed(3))
    ref = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=2, partition_strategy=strategy, padding_idx=padding_idx)
    ids, grads = batches(2)
    (ref(torch.cat(ids)) * torch.cat(grads)).sum().backward()
    for r in range(2):
        torch.testing.assert_close(got[r]["out"], ref(ids[r]).detach(), rtol=0, atol=0)
        assert got[r]["sparse"] == sparse
        torch.testing.assert_close(got[r]["grad"], ref.shards[r].grad, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got[r]["weight"], table, rtol=0, atol=0)
        assert got[r]["sent"] > 0
    torch.testing.assert_close(got[0]["full"], table, rtol=0, atol=0)
    assert got[1]["full"] is None
    # The ranks' states merge into a table that loads into any layout (resharding).
    merged = merge_shards([got[1]["state"], got[0]["state"]])
    other = ShardedEmbedding(V, D, num_shards=3, partition_strategy="div")
    other.load_state_dict(merged)
    torch.testing.assert_close(other.weight, table, rtol=0, atol=0)


def updates(rank, world, strategy):
    """gather + index_add_ (the training step's path) on each rank's batch."""
    layer = DistributedEmbedding(V, D, strategy, init="normal", generator=torch.Generator().manual_seed(1))
    ids, grads = batches(world)
    flat, values = ids[rank].reshape(-1), grads[rank].reshape(-1, D)
    rows = layer.gather(flat)
    layer.index_add_(flat, values, alpha=-0.5)  # the route of the gather is reused
    return {"rows": rows, "after": layer.weight}


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_gather_and_index_add_equal_the_local_layer(tmp_path, strategy):
    got = run_ranks(updates, 2, tmp_path, strategy)
    ref = ShardedEmbedding(V, D, num_shards=1)
    torch.manual_seed(0)
    layer = DistributedEmbedding(V, D, strategy, generator=torch.Generator().manual_seed(1))  # world 1: local
    ref.load_state_dict({"weight": layer.weight})
    ids, grads = batches(2)
    for r in range(2):
        torch.testing.assert_close(got[r]["rows"], ref.gather(ids[r].reshape(-1)), rtol=0, atol=0)
    ref.index_add_(torch.cat(ids).reshape(-1), torch.cat(grads).reshape(-1, D), alpha=-0.5)
    for r in range(2):
        torch.testing.assert_close(got[r]["after"], ref.weight, rtol=1e-6, atol=1e-6)


def test_a_world_of_one_is_a_local_table():
    layer = DistributedEmbedding(V, D, "div", generator=torch.Generator().manual_seed(2))
    assert (layer.rank, layer.world_size) == (0, 1)
    assert layer.flat_table().data_ptr() == layer.shards[0].data_ptr()
    ids = torch.tensor([3, 3, 9])
    torch.testing.assert_close(layer(ids), layer.weight[ids])
    # Same draw as a sharded layer of any layout from the same generator.
    same = DistributedEmbedding(V, D, "mod", generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(same.weight, layer.weight, rtol=0, atol=0)


def test_loading_another_ranks_state_names_the_fix():
    layer = DistributedEmbedding(V, D)
    state = layer.state_dict()
    state["sharding"] = torch.tensor([V, D, 2, 0, 1])
    with pytest.raises(RuntimeError, match="merge_shards"):
        layer.load_state_dict(state)


def both_tables(rank, world, strategy):
    """gather_all + index_add_all over two tables: 4 collectives per step for both."""
    from w2v.embedding import gather_all, index_add_all

    a = DistributedEmbedding(V, D, strategy, generator=torch.Generator().manual_seed(1))
    b = DistributedEmbedding(V, D, strategy, generator=torch.Generator().manual_seed(2))
    ids, grads = batches(world)
    ia, ib = ids[rank].reshape(-1), ids[1 - rank].reshape(-1)[:5]
    va, vb = grads[rank].reshape(-1, D), grads[1 - rank].reshape(-1, D)[:5]
    rows = gather_all([(a, ia, None), (b, ib, torch.empty(5, D))])
    index_add_all([(a, ia, va), (b, ib, vb)], alpha=0.25)
    return {"rows": rows, "a": a.weight, "b": b.weight}


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_several_tables_share_their_exchanges(tmp_path, strategy):
    got = run_ranks(both_tables, 2, tmp_path, strategy)
    ref_a = DistributedEmbedding(V, D, strategy, generator=torch.Generator().manual_seed(1))
    ref_b = DistributedEmbedding(V, D, strategy, generator=torch.Generator().manual_seed(2))
    start_a, start_b = ref_a.weight.clone(), ref_b.weight.clone()
    ids, grads = batches(2)
    for r in range(2):
        ia, ib = ids[r].reshape(-1), ids[1 - r].reshape(-1)[:5]
        torch.testing.assert_close(got[r]["rows"][0], start_a[ia], rtol=0, atol=0)
        torch.testing.assert_close(got[r]["rows"][1], start_b[ib], rtol=0, atol=0)
        ref_a.index_add_(ia, grads[r].reshape(-1, D), alpha=0.25)
        ref_b.index_add_(ib, grads[1 - r].reshape(-1, D)[:5], alpha=0.25)
    for r in range(2):
        torch.testing.assert_close(got[r]["a"], ref_a.weight, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got[r]["b"], ref_b.weight, rtol=1e-6, atol=1e-6)
