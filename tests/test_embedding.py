import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from w2v.embedding import (
    STRATEGIES,
    ShardedEmbedding,
    embedding_lookup,
    join_shards,
    route,
    shard_sizes,
    split_table,
)
from w2v.embedding import functional, partition
from w2v.embedding.functional import flat_view

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# -- an independent reference: TensorFlow's documented assignment, one id at a time ----------


def tf_partition(num_rows, num_shards, strategy):
    """The ids each shard holds, written out as TensorFlow's docs describe them."""
    if strategy == "mod":
        return [[i for i in range(num_rows) if i % num_shards == s] for s in range(num_shards)]
    parts, start = [], 0
    for s in range(num_shards):  # contiguous; the first num_rows % num_shards get one more
        n = num_rows // num_shards + (1 if s < num_rows % num_shards else 0)
        parts.append(list(range(start, start + n)))
        start += n
    return parts


def tf_lookup(shards, ids, strategy):
    num_rows = sum(p.shape[0] for p in shards)
    where = {i: (s, r) for s, part in enumerate(tf_partition(num_rows, len(shards), strategy)) for r, i in enumerate(part)}
    rows = [shards[s][r] for s, r in (where[i] for i in ids.reshape(-1).tolist())]
    trailing = shards[0].shape[1:]
    return torch.stack(rows).reshape(*ids.shape, *trailing) if rows else torch.empty(*ids.shape, *trailing)


def dense(grad):
    return grad.to_dense() if grad.is_sparse else grad


def unpack(layer):
    """Give each shard its own storage, which forces the per-shard (multi-device) path."""
    for p in layer.shards:
        p.data = p.data.clone()
    assert layer.num_shards == 1 or flat_view(list(layer.shards)) is None


# -- partition --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_route_and_sizes_follow_tensorflow(strategy):
    for num_rows in range(0, 26):
        for num_shards in range(1, 9):
            parts = tf_partition(num_rows, num_shards, strategy)
            assert shard_sizes(num_rows, num_shards, strategy) == [len(p) for p in parts]
            ids = torch.arange(num_rows)
            shard, row = route(ids, num_rows, num_shards, strategy)
            assert [(s, r) for s, r in zip(shard.tolist(), row.tolist())] == [
                (s, part.index(i)) for i in range(num_rows) for s, part in enumerate(parts) if i in part
            ]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("shape", [(13,), (13, 3), (9, 4, 2), (3, 2)])
@pytest.mark.parametrize("num_shards", [1, 2, 5, 7])
def test_split_join_round_trip(strategy, shape, num_shards):
    table = torch.randn(shape)
    shards = split_table(table, num_shards, strategy)
    assert [p.shape[0] for p in shards] == shard_sizes(shape[0], num_shards, strategy)
    assert [p.tolist() for p in shards] == [table[part].tolist() for part in tf_partition(shape[0], num_shards, strategy)]
    assert torch.equal(join_shards(shards, strategy), table)


def test_join_rejects_shards_off_the_layout():
    with pytest.raises(ValueError, match=r"expected sizes \[3, 2\]"):
        join_shards([torch.zeros(2, 1), torch.zeros(3, 1)], "div")


# -- embedding_lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("num_shards", [1, 2, 3, 7])
@pytest.mark.parametrize("ids_shape", [(), (0,), (2, 0), (6,), (3, 4)])
def test_lookup_matches_reference(strategy, num_shards, ids_shape):
    table = torch.randn(11, 3)
    shards = [p.clone() for p in split_table(table, num_shards, strategy)]
    ids = torch.randint(0, 11, ids_shape)
    out = embedding_lookup(shards, ids, strategy)
    assert out.shape == (*ids_shape, 3)
    assert torch.equal(out, tf_lookup(shards, ids, strategy))
    assert torch.equal(out, table[ids])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lookup_high_rank_and_1d_params(strategy):
    table = torch.randn(10, 4, 2)
    ids = torch.tensor([[0, 9, 3], [3, 3, 5]])
    out = embedding_lookup(split_table(table, 3, strategy), ids, strategy)
    assert out.shape == (2, 3, 4, 2) and torch.equal(out, table[ids])
    vector = torch.arange(10.0)
    assert torch.equal(embedding_lookup(split_table(vector, 4, strategy), ids, strategy), vector[ids])
    assert embedding_lookup(vector, torch.tensor(7)).shape == ()


def test_lookup_takes_lists_and_small_int_types():
    table = torch.randn(6, 2)
    assert torch.equal(embedding_lookup(table, [5, 0]), table[[5, 0]])
    for dtype in (torch.int32, torch.int16, torch.uint8):
        assert torch.equal(embedding_lookup([table[:3], table[3:]], torch.tensor([4, 1], dtype=dtype), "div"), table[[4, 1]])


def test_div_with_fewer_rows_than_shards():
    table = torch.randn(3, 2)
    shards = split_table(table, 5, "div")
    assert [p.shape[0] for p in shards] == [1, 1, 1, 0, 0]
    ids = torch.tensor([2, 0, 1, 2])
    assert torch.equal(embedding_lookup(shards, ids, "div"), table[ids])
    for strategy in STRATEGIES:
        layer = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=5, partition_strategy=strategy)
        layer(ids).sum().backward()
        assert torch.equal(layer.weight, table)
        assert torch.equal(join_shards([p.grad for p in layer.shards], strategy), torch.tensor([[1.0] * 2, [1.0] * 2, [2.0] * 2]))


def test_shards_off_the_layout_raise_naming_the_sizes():
    ids = torch.tensor([0])
    with pytest.raises(ValueError, match=r"expected sizes \[2, 2\]"):
        embedding_lookup([torch.zeros(1, 2), torch.zeros(3, 2)], ids, "mod")
    with pytest.raises(ValueError, match=r"expected sizes \[2, 1, 1\]"):
        embedding_lookup([torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(2, 2)], ids, "div")
    with pytest.raises(ValueError, match="agree"):
        embedding_lookup([torch.zeros(2, 2), torch.zeros(2, 3)], ids)
    with pytest.raises(ValueError, match="empty"):
        embedding_lookup([], ids)


@pytest.mark.parametrize("num_shards", [1, 3])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("bad", [10, 11, -1, -7])
def test_out_of_range_ids_raise_index_error(num_shards, strategy, bad):
    table = torch.randn(10, 2)
    ids = torch.tensor([[1, bad], [2, 3]])
    with pytest.raises(IndexError, match=rf"id {bad} .* 0 to 9"):
        embedding_lookup(split_table(table, num_shards, strategy), ids, strategy)
    layer = ShardedEmbedding(10, 2, num_shards, strategy)
    with pytest.raises(IndexError, match=rf"id {bad} .* 0 to 9"):
        layer(ids)
    if num_shards > 1:  # one shard is index_select itself, which raises its own IndexError
        with pytest.raises(IndexError, match=rf"id {bad}"):
            layer.gather(ids.reshape(-1))
        with pytest.raises(IndexError, match=rf"id {bad}"):
            layer.index_add_(ids.reshape(-1), torch.ones(4, 2))


def test_bad_ids_and_strategy_types():
    table = torch.randn(4, 2)
    with pytest.raises(TypeError, match="integer"):
        embedding_lookup(table, torch.tensor([1.0]))
    with pytest.raises(TypeError, match="integer"):
        embedding_lookup(table, torch.tensor([True]))
    with pytest.raises(TypeError, match="integer"):
        ShardedEmbedding(4, 2)(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="partition_strategy"):
        embedding_lookup(table, torch.tensor([1]), "range")  # checked even for one shard
    with pytest.raises(ValueError, match="partition_strategy"):
        route(torch.tensor([1]), 4, 2, "range")


def clip_reference(rows, c):
    """TensorFlow's _clip, one looked-up row at a time."""
    out = []
    for x in rows:
        norm = float(x.double().pow(2).sum().sqrt())
        out.append(x * c / max(norm, c))
    return torch.stack(out)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_max_norm_clips_the_copy_not_the_table(strategy):
    table = torch.randn(9, 3, 2) * 2
    shards = [p.clone() for p in split_table(table, 4, strategy)]
    before = [p.clone() for p in shards]
    ids = torch.tensor([0, 8, 8, 3, 5])
    out = embedding_lookup(shards, ids, strategy, max_norm=1.5)
    torch.testing.assert_close(out, clip_reference(table[ids], 1.5))
    assert out.flatten(1).norm(dim=1).max() <= 1.5 + 1e-5
    assert all(torch.equal(p, q) for p, q in zip(shards, before))
    vector = torch.tensor([-3.0, 0.5, 2.0])  # 1-D params: each value clipped by itself
    assert embedding_lookup(vector, torch.tensor([0, 1, 2]), max_norm=1.0).tolist() == [-1.0, 0.5, 1.0]


def test_functional_renorm_rescales_the_table_in_place():
    table = torch.randn(8, 4) * 3
    shards = [p.clone() for p in split_table(table, 3, "mod")]
    ids = torch.tensor([1, 6, 6])
    out = embedding_lookup(shards, ids, max_norm=1.0, max_norm_mode="renorm")
    joined = join_shards(shards, "mod")
    touched = torch.zeros(8, dtype=torch.bool)
    touched[ids] = True
    assert torch.allclose(joined[touched].norm(dim=1), torch.ones(2), atol=1e-4)
    assert torch.equal(joined[~touched], table[~touched])
    assert torch.equal(out, joined[ids])
    with pytest.raises(ValueError, match="max_norm_mode"):
        embedding_lookup(table, ids, max_norm=1.0, max_norm_mode="scale")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_functional_gradients_are_the_one_hot_view(strategy):
    table = torch.randn(7, 3, dtype=torch.float64)
    shards = [p.clone().requires_grad_() for p in split_table(table, 3, strategy)]
    ids = torch.tensor([[6, 0, 6], [2, 2, 2]])
    grad = torch.randn(2, 3, 3, dtype=torch.float64)
    out = embedding_lookup(shards, ids, strategy)
    out.backward(grad)
    one_hot = F.one_hot(ids.reshape(-1), 7).double()  # (n, V)
    torch.testing.assert_close(out.reshape(-1, 3), one_hot @ table)
    torch.testing.assert_close(join_shards([p.grad for p in shards], strategy), one_hot.T @ grad.reshape(-1, 3))


# -- ShardedEmbedding: equivalences -------------------------------------------------------------


@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("max_norm", [None, 1.5])
@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_one_shard_matches_nn_embedding(padding_idx, max_norm, scale_grad_by_freq, sparse):
    torch.manual_seed(0)
    # nn.Embedding refuses sparse gradients scaled by frequency; its dense ones are the reference.
    ref = nn.Embedding(12, 4, padding_idx, max_norm, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse and not scale_grad_by_freq)
    with torch.no_grad():
        ref.weight.mul_(2)
    layer = ShardedEmbedding.from_pretrained(
        ref.weight.detach().clone(), freeze=False, padding_idx=padding_idx, max_norm=max_norm,
        scale_grad_by_freq=scale_grad_by_freq, sparse=sparse,
    )
    ids = torch.tensor([[2, 5, 5, 11], [0, 2, 5, 7]])
    grad = torch.randn(2, 4, 4)
    out_ref, out = ref(ids), layer(ids)
    assert torch.equal(out, out_ref)
    assert torch.equal(layer.weight, ref.weight)  # the same in-place renorm, if any
    out_ref.backward(grad)
    out.backward(grad)
    assert layer.shards[0].grad.is_sparse == sparse
    torch.testing.assert_close(dense(layer.shards[0].grad), dense(ref.weight.grad))


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("max_norm_mode", ["renorm", "clip"])
def test_any_sharding_matches_one_shard(num_shards, strategy, sparse, packed, max_norm_mode):
    torch.manual_seed(1)
    table = torch.randn(23, 5) * 1.5
    opts = dict(padding_idx=4, max_norm=2.0, max_norm_mode=max_norm_mode, scale_grad_by_freq=True, sparse=sparse)
    one = ShardedEmbedding.from_pretrained(table, freeze=False, **opts)
    many = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=num_shards, partition_strategy=strategy, **opts)
    if not packed:
        unpack(many)
    ids = torch.randint(0, 23, (3, 10))
    ids[0, :3] = torch.tensor([4, 22, 22])
    grad = torch.randn(3, 10, 5)
    out_one, out_many = one(ids), many(ids)
    torch.testing.assert_close(out_many, out_one, rtol=0, atol=0)
    torch.testing.assert_close(many.weight, one.weight, rtol=0, atol=0)
    out_one.backward(grad)
    out_many.backward(grad)
    grads = [p.grad for p in many.shards]
    assert all(g.is_sparse == sparse and g.shape == p.shape for g, p in zip(grads, many.shards))
    torch.testing.assert_close(join_shards([dense(g) for g in grads], strategy), dense(one.shards[0].grad))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lookup_is_one_hot_times_table(strategy):
    layer = ShardedEmbedding(17, 3, num_shards=4, partition_strategy=strategy, dtype=torch.float64)
    ids = torch.randint(0, 17, (5, 6))
    grad = torch.randn(5, 6, 3, dtype=torch.float64)
    out = layer(ids)
    out.backward(grad)
    one_hot = F.one_hot(ids, 17).double()  # (5, 6, V): Keras' view of a lookup
    torch.testing.assert_close(out, one_hot @ layer.weight)
    expected = one_hot.reshape(-1, 17).T @ grad.reshape(-1, 3)
    torch.testing.assert_close(join_shards([p.grad for p in layer.shards], strategy), expected)


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: torch.optim.SGD(params, lr=0.1),
        lambda params: torch.optim.SparseAdam(params, lr=0.05),
        lambda params: torch.optim.Adagrad(params, lr=0.1),
    ],
    ids=["SGD", "SparseAdam", "Adagrad"],
)
@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")  # raised inside torch's Adagrad
def test_optimizers_step_on_sparse_shard_gradients(make_optimizer):
    torch.manual_seed(2)
    table = torch.randn(20, 4)
    ref = nn.Embedding.from_pretrained(table.clone(), freeze=False, sparse=True)
    layer = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=3, sparse=True)
    pairs = [(ref, make_optimizer(ref.parameters())), (layer, make_optimizer(layer.parameters()))]
    seen = torch.zeros(20, dtype=torch.bool)
    for _ in range(3):
        ids = torch.randint(0, 15, (12,))  # rows 15.. are never looked up
        seen[ids] = True
        grad = torch.randn(12, 4)
        for module, optimizer in pairs:
            optimizer.zero_grad()
            module(ids).backward(grad)
            optimizer.step()
    torch.testing.assert_close(layer.weight, ref.weight)
    assert not torch.equal(layer.weight[seen], table[seen])
    assert torch.equal(layer.weight[~seen], table[~seen])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sparse_gradient_buffer_is_reused_only_once_released(strategy):
    torch.manual_seed(3)
    table = torch.randn(40, 4)
    ref = nn.Embedding.from_pretrained(table, freeze=False, sparse=True)
    layer = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=3, partition_strategy=strategy, sparse=True)

    def step(n):
        ids, grad = torch.randint(0, 40, (n,)), torch.randn(n, 4)
        for module in (ref, layer):
            module(ids).backward(grad)
        torch.testing.assert_close(join_shards([dense(p.grad) for p in layer.shards], strategy), dense(ref.weight.grad))
        return layer.shards[0].grad._values().data_ptr()  # shard 0's values open the buffer

    first = step(30)
    held = [p.grad for p in layer.shards]  # kept past zero_grad: the buffer is theirs
    snapshot = [dense(g).clone() for g in held]
    ref.zero_grad(), layer.zero_grad()
    second = step(30)
    assert all(torch.equal(dense(g), s) for g, s in zip(held, snapshot))
    assert second != first
    del held
    ref.zero_grad(), layer.zero_grad()
    third = step(20)  # a smaller batch fits in the released buffer
    if functional._storage_use_count is not None:
        assert third == second
    step(25)  # no zero_grad: the new gradients add to the ones that hold the buffer
    layer.zero_grad()
    clone = copy.deepcopy(layer)  # the buffer (and its lock) stay behind
    clone(torch.tensor([1, 2])).sum().backward()
    assert clone._grad_buffer is not layer._grad_buffer


@pytest.mark.parametrize("num_shards", [1, 3, 8, 300])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_order_by_shard_is_a_stable_sort(num_shards, dtype):
    for n in (0, 1, 1000):
        shard = torch.randint(0, num_shards, (n,), dtype=dtype)
        expected = sorted(range(n), key=lambda i: shard[i].item())  # Python's sort is stable
        counts = torch.bincount(shard.long(), minlength=num_shards).tolist()
        for order_of in (partition._order_by_shard_numpy, partition._order_by_shard_torch):
            order, got = order_of(shard, num_shards)
            assert order.tolist() == expected and got == counts


@pytest.mark.parametrize("num_shards", [2, 3, 7])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("packed", [True, False])
def test_gather_and_index_add_route_like_one_shard(num_shards, strategy, packed):
    table = torch.randn(30, 6)
    one = ShardedEmbedding.from_pretrained(table, freeze=False)
    many = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=num_shards, partition_strategy=strategy)
    ids = torch.tensor([29, 0, 7, 7, 7, 13, 29, 1])
    assert torch.equal(many.gather(ids), table[ids])  # before the shards move apart
    if not packed:
        unpack(many)
    out = torch.full((8, 6), float("nan"))
    assert many.gather(ids, out=out) is out
    assert torch.equal(out, table[ids]) and torch.equal(many.gather(ids), table[ids])
    values = torch.randn(8, 6)
    one.index_add_(ids, values)
    many.index_add_(ids, values, alpha=1)
    expected = table.clone().index_add_(0, ids, values)
    assert torch.equal(one.shards[0].detach(), expected)  # one shard is index_add_ itself
    torch.testing.assert_close(many.weight, expected)
    many.index_add_(ids, values, alpha=-1)
    torch.testing.assert_close(many.weight, table)


def test_weight_is_the_parameter_for_one_shard_and_a_copy_otherwise():
    one = ShardedEmbedding(5, 2)
    assert one.weight is one.shards[0]
    many = ShardedEmbedding(5, 2, num_shards=2)
    w = many.weight
    w.zero_()
    assert not torch.equal(many.weight, w) and not w.requires_grad


def test_output_shapes_and_frozen_layers():
    layer = ShardedEmbedding.from_pretrained(torch.randn(9, 3), num_shards=2)
    assert layer(torch.tensor(4)).shape == (3,)
    assert layer(torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, 3)
    assert not layer(torch.tensor([1, 2])).requires_grad  # freeze=True by default
    assert not any(p.requires_grad for p in layer.parameters())


# -- ShardedEmbedding: construction, init, state ------------------------------------------------


def test_reset_parameters_gives_the_same_table_for_any_layout():
    for init in ("normal", "word2vec_input"):
        tables = []
        for num_shards, strategy in [(1, "mod"), (3, "mod"), (4, "div"), (8, "mod")]:
            layer = ShardedEmbedding(41, 5, num_shards, strategy)
            torch.manual_seed(3)
            layer.reset_parameters(init)
            tables.append(layer.weight.detach())
        assert all(torch.equal(t, tables[0]) for t in tables)


def test_initialisations():
    layer = ShardedEmbedding(4000, 25, num_shards=3, padding_idx=7)
    w = layer.weight
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02 and not w[7].any()
    layer.reset_parameters("word2vec_input")
    w, bound = layer.weight, 0.5 / 25
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound and abs(w.mean()) < 0.01 * bound
    assert not w[7].any()
    layer.reset_parameters("zeros")
    assert not layer.weight.any()
    with pytest.raises(ValueError, match="init"):
        layer.reset_parameters("xavier")


def test_from_pretrained_keeps_the_table():
    table = torch.randn(6, 3)
    layer = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=4, partition_strategy="div", padding_idx=1)
    assert torch.equal(layer.weight, table)  # the padding row is kept, as nn.Embedding does
    assert all(p.requires_grad for p in layer.shards)
    with pytest.raises(ValueError, match="2-D"):
        ShardedEmbedding.from_pretrained(torch.zeros(3))


def test_extra_repr():
    layer = ShardedEmbedding(10, 3, 2, "div", padding_idx=-1, max_norm=1.0, max_norm_mode="clip", sparse=True)
    text = repr(layer)
    for part in ("10, 3, num_shards=2", "partition_strategy='div'", "padding_idx=9", "max_norm=1.0", "'clip'", "sparse=True"):
        assert part in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_shards=0), "num_shards"),
        (dict(partition_strategy="hash"), "partition_strategy"),
        (dict(padding_idx=10), "padding_idx"),
        (dict(max_norm=0.0), "max_norm"),
        (dict(max_norm=1.0, max_norm_mode="tf"), "max_norm_mode"),
        (dict(device="cpu", devices=["cpu"]), "not both"),
        (dict(num_shards=2, devices=["cpu"]), "one per shard"),
        (dict(init="uniform"), "init"),
    ],
)
def test_constructor_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShardedEmbedding(10, 3, **kwargs)


def test_shards_stay_one_buffer_after_to_and_copy():
    layer = ShardedEmbedding(13, 4, num_shards=3, devices=["cpu"] * 3)
    assert flat_view(list(layer.shards)) is not None
    table = layer.weight.double()
    layer.double()
    assert flat_view(list(layer.shards)) is not None and torch.equal(layer.weight, table)
    clone = copy.deepcopy(layer)
    assert flat_view(list(clone.shards)) is not None and torch.equal(clone.weight, table)
    deferred = ShardedEmbedding(13, 4, num_shards=3, device="meta").to_empty(device="cpu")
    torch.manual_seed(5)
    deferred.reset_parameters()
    torch.manual_seed(5)
    assert flat_view(list(deferred.shards)) is not None and torch.equal(deferred.weight, ShardedEmbedding(13, 4).weight)


LAYOUTS = [(1, "mod"), (2, "div"), (3, "mod"), (4, "mod"), (7, "div")]


@pytest.mark.parametrize("source", LAYOUTS)
@pytest.mark.parametrize("target", LAYOUTS)
def test_state_dict_reshards_on_load(source, target):
    saved = ShardedEmbedding(20, 3, *source)
    layer = ShardedEmbedding(20, 3, *target)
    layer.load_state_dict(saved.state_dict())
    assert torch.equal(layer.weight, saved.weight)
    assert layer.sharding.tolist() == [20, 3, target[0], STRATEGIES.index(target[1])]
    assert flat_view(list(layer.shards)) is not None


def test_state_dict_through_a_file_in_a_parent_module():
    saved = nn.Sequential(ShardedEmbedding(9, 2, 4, "div"), nn.Linear(2, 1))
    buffer = io.BytesIO()
    torch.save(saved.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    for target in [(4, "div"), (2, "mod"), (11, "mod")]:  # 11 shards of 9 rows: two empty
        model = nn.Sequential(ShardedEmbedding(9, 2, *target), nn.Linear(2, 1))
        model.load_state_dict(state)
        assert torch.equal(model[0].weight, saved[0].weight)


def test_state_dict_from_nn_embedding_and_older_layouts():
    ref = nn.Embedding(8, 3)
    layer = ShardedEmbedding(8, 3, 3, "div")
    layer.load_state_dict(ref.state_dict())
    assert torch.equal(layer.weight, ref.weight)
    state = ShardedEmbedding(8, 3, 2, "div").state_dict()
    del state["sharding"]  # no record of the layout: this layer's strategy is assumed
    layer.load_state_dict(state)
    assert torch.equal(layer.weight, join_shards([state["shards.0"], state["shards.1"]], "div"))
    fresh = ShardedEmbedding(8, 3, 3, "div")
    fresh.load_state_dict(layer.state_dict(), assign=True)
    assert torch.equal(fresh.weight, layer.weight) and flat_view(list(fresh.shards)) is not None


def test_state_dict_of_another_table_fails_loudly():
    with pytest.raises(RuntimeError, match="size mismatch"):
        ShardedEmbedding(9, 3, 2).load_state_dict(ShardedEmbedding(8, 3, 3).state_dict())
    state = ShardedEmbedding(8, 3, 2).state_dict()
    state["shards.1"] = torch.zeros(1, 3)
    with pytest.raises(RuntimeError, match="expected sizes"):
        ShardedEmbedding(8, 3, 4).load_state_dict(state)


def test_max_norm_modes_differ_as_documented():
    torch.manual_seed(4)
    table = torch.randn(10, 4) * 3
    ids = torch.tensor([3, 3, 8])
    grad = torch.randn(3, 4)
    renorm = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=3, max_norm=1.0)
    clip = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=3, max_norm=1.0, max_norm_mode="clip")
    out_renorm, out_clip = renorm(ids), clip(ids)
    torch.testing.assert_close(out_clip, out_renorm, atol=1e-5, rtol=0)  # same rows up to torch's 1e-7
    assert torch.equal(clip.weight, table)  # TensorFlow: the table is untouched
    assert torch.allclose(renorm.weight[[3, 8]].norm(dim=1), torch.ones(2))  # PyTorch: rows rescaled
    assert torch.equal(renorm.weight[[0, 1, 2]], table[[0, 1, 2]])
    out_renorm.backward(grad)
    out_clip.backward(grad)
    rows = table[ids].requires_grad_()
    (rows * (1.0 / rows.norm(dim=1, keepdim=True).clamp(min=1.0))).backward(grad)
    clip_grad = join_shards([p.grad for p in clip.shards], "mod")
    torch.testing.assert_close(clip_grad[[3, 8]], torch.stack([rows.grad[0] + rows.grad[1], rows.grad[2]]))
    renorm_grad = join_shards([p.grad for p in renorm.shards], "mod")
    torch.testing.assert_close(renorm_grad[[3, 8]], torch.stack([grad[0] + grad[1], grad[2]]))


@pytest.mark.slow
def test_a_word2vec_sized_table():
    rows, dim = 3_000_000, 300  # 3.6 GB of float32: offsets past 2**31 bytes
    layer = ShardedEmbedding(rows, dim, num_shards=8, init="zeros", sparse=True)
    ids = torch.tensor([0, rows - 1, 1_234_567, rows - 1])
    layer.index_add_(ids, torch.ones(4, dim))
    assert layer.gather(ids)[:, 0].tolist() == [1.0, 2.0, 1.0, 2.0]
    layer(ids).sum().backward()
    assert sum(p.grad._nnz() for p in layer.shards) == 4


# -- several devices ----------------------------------------------------------------------------


@cuda
def test_cuda_out_of_range_ids_raise_index_error():
    table = torch.randn(10, 2, device="cuda")
    with pytest.raises(IndexError, match="id 10"):
        embedding_lookup(split_table(table, 3, "mod"), torch.tensor([1, 10], device="cuda"))
    with pytest.raises(IndexError, match="id -1"):
        ShardedEmbedding(10, 2, 3, device="cuda")(torch.tensor([-1], device="cuda"))


@cuda
@pytest.mark.parametrize("sparse", [False, True])
def test_shards_on_two_devices_match_one_shard(sparse):
    table = torch.randn(11, 3)
    one = ShardedEmbedding.from_pretrained(table, freeze=False, sparse=sparse)
    two = ShardedEmbedding.from_pretrained(table, freeze=False, num_shards=2, sparse=sparse, devices=["cpu", "cuda"])
    assert [p.device.type for p in two.shards] == ["cpu", "cuda"]
    ids = torch.tensor([[0, 1, 10], [3, 3, 4]])
    grad = torch.randn(2, 3, 3)
    out_one = one(ids)
    out_two = two(ids.cuda())
    assert out_two.device.type == "cuda"
    torch.testing.assert_close(out_two.cpu(), out_one)
    out_one.backward(grad)
    out_two.backward(grad.cuda())
    joined = join_shards([dense(p.grad).cpu() for p in two.shards], "mod")
    torch.testing.assert_close(joined, dense(one.shards[0].grad))
    torch.testing.assert_close(two.gather(ids.reshape(-1).cuda()).cpu(), table[ids.reshape(-1)])


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_flat_table_rows_are_the_ids_rows(strategy):
    layer = ShardedEmbedding(11, 3, num_shards=4, partition_strategy=strategy)
    ids = torch.tensor([0, 5, 10, 3, 7])
    flat = layer.flat_table()
    assert flat.shape == (11, 3)
    assert torch.equal(flat[layer.flat_index(ids)], layer.weight[ids])
    with torch.no_grad():
        flat[layer.flat_index(torch.tensor([7]))] = 9.0  # writes go to the shards
    assert torch.equal(layer.weight[7], torch.full((3,), 9.0))


@pytest.mark.parametrize("num_shards", [1, 3])
def test_an_nn_embedding_state_loads_into_any_shard_count(num_shards):
    source = torch.nn.Embedding(7, 3)
    layer = ShardedEmbedding(7, 3, num_shards=num_shards)
    layer.load_state_dict(source.state_dict())
    assert torch.equal(layer.weight, source.weight.detach())


def test_ids_on_an_accelerator_are_checked_where_they_live_without_a_host_read():
    from sync_guard import HostSyncCounter

    ids = torch.tensor([0, 3, 9])
    with HostSyncCounter() as guard:
        partition.check_ids_on_device(ids, 10)
    assert guard.syncs == [] and "aten._assert_async" in guard.names
    with pytest.raises(RuntimeError, match=r"an id is out of range for a table of 9 rows; valid ids are 0 to 8"):
        partition.check_ids_on_device(ids, 9)  # on the CPU the device's check fails at once
    with pytest.raises(RuntimeError, match="out of range"):
        partition.check_ids_on_device(torch.tensor([-1]), 9)
    with pytest.raises(IndexError, match=r"id 9 is out of range for a table of 9 rows"):
        partition.check_ids(ids, 9)  # CPU ids: the exact id, read back
