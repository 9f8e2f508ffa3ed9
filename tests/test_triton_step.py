"""The fused Triton step against SGNSStep: on CUDA, or on CPU tensors through Triton's interpreter."""

import math
import os

import pytest
import torch

if not torch.cuda.is_available():  # before triton is imported: kernels then run on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from w2v.batching import batches  # noqa: E402
from w2v.model import SGNSStep, SkipGramNS  # noqa: E402
from w2v.triton_step import TritonSGNS, unavailable  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_model(vocab, dim, num_shards=1, strategy="mod", scale=0.3, seed=0, device=DEVICE):
    """Both tables random (not word2vec's zero output table), so every gradient term and the damping act."""
    model = SkipGramNS(vocab, dim, num_shards=num_shards, partition_strategy=strategy, device=device)
    g = torch.Generator().manual_seed(seed)
    for layer in (model.input, model.output):
        layer.copy_table_((torch.randn(vocab, dim, generator=g) * scale).to(device))
    return model


def tables(model):
    return model.input.weight.detach().clone(), model.output.weight.detach().clone()


def assert_same_update(before, expected, got, rel):
    """``got`` equals ``expected`` within ``rel`` of the largest change the step made."""
    for b, e, x in zip(before, expected, got):
        change = (e - b).abs().max().item()
        assert change > 0
        err = (x - e).abs().max().item()
        assert err <= rel * change, f"max error {err:.3g} for a largest change of {change:.3g}"


def skewed_ids(n, vocab, g, device=DEVICE):
    """Ids drawn from a Zipf-like law, so that some rows recur many times in a batch."""
    weights = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=g).to(device)


def compare_steps(vocab, dim, batch, group, k, num_shards, strategy, hot_rows, steps, lr, rel):
    ref_model = make_model(vocab, dim, num_shards, strategy)
    model = make_model(vocab, dim, num_shards, strategy)
    sum_model = make_model(vocab, dim, num_shards, strategy)
    before = tables(model)
    ref = SGNSStep(ref_model, batch, group, k, hot_rows=hot_rows)
    plain = SGNSStep(sum_model, batch, group, k)
    step = TritonSGNS(model, batch, group, k, hot_rows=hot_rows)
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        b = batch - group if i == steps - 1 else batch  # a last, shorter batch
        pairs = skewed_ids(b, vocab, g), skewed_ids(b, vocab, g), skewed_ids(b // group * k, vocab, g).view(-1, k)
        a = torch.tensor(lr, device=DEVICE) if i == 1 else lr  # a float, or a 0-d tensor on the device
        expected = ref(*pairs, a, with_loss=True)
        got = step(*pairs, a, with_loss=True)
        plain(*pairs, a)
        assert got.shape == () and torch.allclose(got, expected, rtol=rel / 10)
        assert step(pairs[0][:0], pairs[1][:0], pairs[2][:0], lr) is None  # an empty batch changes nothing
    assert_same_update(before, tables(ref_model), tables(model), rel)
    if hot_rows == "trust":  # the damping did act, so the comparison above covers it
        damped, plain_sum = tables(ref_model)[1], tables(sum_model)[1]
        assert (plain_sum - damped).abs().max() > 100 * rel * (damped - before[1]).abs().max()


@pytest.mark.parametrize(
    "dim, group, num_shards, strategy, hot_rows",
    [
        (24, 8, 1, "mod", "sum"),
        (24, 8, 1, "mod", "trust"),
        (100, 32, 2, "mod", "trust"),
        (100, 8, 2, "div", "sum"),
        (24, 32, 2, "div", "trust"),
        (100, 32, 1, "mod", "sum"),
    ],
)
def test_step_equals_sgns_step(dim, group, num_shards, strategy, hot_rows):
    compare_steps(40, dim, 64, group, 5, num_shards, strategy, hot_rows, steps=3, lr=0.1, rel=1e-4)


def reference_chunk(step, inputs, targets, negatives, count, batch, group, lrs):
    """SGNSStep over the batches of a chunk as w2v.batching cuts them: each batch's loss."""
    losses = []
    for j, (centers, contexts) in enumerate(batches(targets[:count], inputs[:count], batch, group)):
        first = j * batch // group
        rows = negatives[first : first + centers.numel() // group]
        losses.append(step(contexts, centers, rows, lrs[j], with_loss=True))
    return torch.stack(losses)


@pytest.mark.parametrize("hot_rows, num_shards", [("sum", 1), ("trust", 2)])
def test_train_chunk_equals_batches(hot_rows, num_shards):
    vocab, dim, batch, group, k = 40, 12, 32, 8, 3
    capacity, count = 160, 90  # batches of 32, 32 and 24 pairs; the last 2 pairs, a partial group, dropped
    ref_model = make_model(vocab, dim, num_shards)
    model = make_model(vocab, dim, num_shards)
    before = tables(model)
    g = torch.Generator().manual_seed(2)
    used = count - count % group
    # Pairs and negatives past the usable pairs touch only rows 30..39, which must not change.
    inputs = torch.cat([torch.randint(0, 30, (used,), generator=g), torch.randint(30, 40, (capacity - used,), generator=g)])
    targets = torch.cat([torch.randint(0, 30, (used,), generator=g), torch.randint(30, 40, (capacity - used,), generator=g)])
    negatives = torch.cat([torch.randint(0, 30, (used // group, k), generator=g),
                           torch.randint(30, 40, (capacity // group + 1 - used // group, k), generator=g)])
    inputs, targets, negatives = inputs.to(DEVICE), targets.to(DEVICE), negatives.to(DEVICE)
    lrs = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.05], device=DEVICE)  # a fixed upper bound of 5 batches; 3 hold pairs
    losses = torch.arange(1.0, 6.0, device=DEVICE)

    ref = SGNSStep(ref_model, batch, group, k, hot_rows=hot_rows)
    expected = reference_chunk(ref, inputs, targets, negatives, count, batch, group, lrs)
    assert len(expected) == 3

    step = TritonSGNS(model, batch, group, k, hot_rows=hot_rows)
    got = losses.clone()
    step.train_chunk(inputs, targets, negatives, torch.tensor(count, device=DEVICE), lrs, got)
    assert torch.allclose(got[:3] - losses[:3], expected, rtol=1e-5)
    assert torch.equal(got[3:], losses[3:])
    assert_same_update(before, tables(ref_model), tables(model), 1e-4)
    for t, b in zip(tables(model), before):
        assert torch.equal(t[30:], b[30:])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter runs programs one after another, in order")
def test_hogwild_applies_groups_one_after_another_under_the_interpreter():
    # With a group's negatives distinct and apart from its centers, a group's updates do not
    # read each other, so groups applied in order are SGNSStep with one group per batch.
    vocab, dim, batch, group, k, capacity, count = 40, 10, 16, 4, 3, 40, 37
    g = torch.Generator().manual_seed(3)
    inputs, targets = torch.randint(0, 40, (capacity,), generator=g), torch.randint(0, 20, (capacity,), generator=g)
    negatives = torch.stack([20 + torch.randperm(20, generator=g)[:k] for _ in range(capacity // group + 1)])
    lrs = torch.tensor([0.5, 0.25, 0.125])
    ref_model, model = make_model(vocab, dim), make_model(vocab, dim)
    ref = SGNSStep(ref_model, group, group, k)
    expected = torch.zeros(3)
    for r in range(count // group):
        part = slice(r * group, (r + 1) * group)
        j = r * group // batch
        expected[j] += ref(inputs[part], targets[part], negatives[r : r + 1], lrs[j].item(), with_loss=True)
    losses = torch.zeros(3)
    step = TritonSGNS(model, batch, group, k, mode="hogwild")
    step.train_chunk(inputs, targets, negatives, torch.tensor(count), lrs, losses)
    assert torch.allclose(losses, expected, rtol=1e-5)
    for e, x in zip(tables(ref_model), tables(model)):
        assert torch.allclose(x, e, atol=1e-6)


def topic_pairs(n, topics, size, k, group, g, device=DEVICE):
    """Pairs whose center and context share a topic (ids ``t * size + i``); uniform negatives."""
    topic = torch.randint(0, topics, (n,), generator=g)
    centers = topic * size + torch.randint(0, size, (n,), generator=g)
    contexts = topic * size + torch.randint(0, size, (n,), generator=g)
    negatives = torch.randint(0, topics * size, (n // group + 1, k), generator=g)
    return contexts.to(device), centers.to(device), negatives.to(device)


def learn_topics(topics, size, dim, chunk, chunks, batch, group, k, lr):
    """Hogwild over chunks of planted pairs: the mean loss per pair of each chunk, and the model."""
    model = SkipGramNS(topics * size, dim, device=DEVICE)
    model.reset_parameters(torch.Generator().manual_seed(0))
    step = TritonSGNS(model, batch, group, k, mode="hogwild")
    g = torch.Generator().manual_seed(4)
    nb = -(-chunk // batch)
    means = []
    for _ in range(chunks):
        losses = torch.zeros(nb, device=DEVICE)
        count = torch.tensor(chunk, device=DEVICE)
        lrs = torch.full((nb,), lr, device=DEVICE)
        step.train_chunk(*topic_pairs(chunk, topics, size, k, group, g), count, lrs, losses)
        means.append(losses.sum().item() / chunk)
    return means, model


def assert_topics_learned(means, model, topics, size, k):
    w = model.input.weight.detach()
    assert torch.isfinite(w).all() and torch.isfinite(model.output.weight).all()
    untrained = (k + 1) * math.log(2)  # every score 0 while the output table is zero
    assert means[-1] < 0.7 * untrained and means[-1] < means[0], means
    w = torch.nn.functional.normalize(w, dim=1)
    topic = torch.arange(topics * size, device=w.device) // size
    same = topic[:, None] == topic[None, :]
    cos = w @ w.T
    assert cos[same].mean() > cos[~same].mean() + 0.3


def test_hogwild_learns_planted_topics():
    means, model = learn_topics(topics=4, size=6, dim=16, chunk=256, chunks=8, batch=128, group=8, k=4, lr=0.1)
    assert_topics_learned(means, model, 4, 6, k=4)


def test_bad_arguments_name_the_fix():
    model = make_model(40, 8)
    with pytest.raises(ValueError, match="use one of"):
        TritonSGNS(model, 32, 8, 3, hot_rows="mean")
    with pytest.raises(ValueError, match="use one of"):
        TritonSGNS(model, 32, 8, 3, mode="async")
    with pytest.raises(ValueError, match="use hot_rows='sum'"):
        TritonSGNS(model, 32, 8, 3, hot_rows="trust", mode="hogwild")
    with pytest.raises(ValueError, match="multiple of the group"):
        TritonSGNS(model, 30, 8, 3)
    with pytest.raises(ValueError, match="positive"):
        TritonSGNS(model, 32, 8, 3, hot_rows="trust", trust=0)
    step = TritonSGNS(model, 32, 8, 3)
    ids = torch.zeros(32, dtype=torch.int64, device=DEVICE)
    with pytest.raises(ValueError, match="at most batch_size"):
        longer = torch.zeros(40, dtype=torch.int64, device=DEVICE)
        step(longer, longer, longer[:15].view(5, 3), 0.1)
    with pytest.raises(ValueError, match=r"give \(4, 3\)"):
        step(ids, ids, ids.view(4, 8), 0.1)
    with pytest.raises(ValueError, match="move them"):
        step(ids, ids.to("meta"), ids[:12].view(4, 3), 0.1)
    count, lrs, losses = torch.tensor(32, device=DEVICE), torch.ones(1, device=DEVICE), torch.zeros(1, device=DEVICE)
    neg = ids[:15].view(5, 3)
    with pytest.raises(ValueError, match="int64"):
        step.train_chunk(ids.int(), ids.int(), neg, count, lrs, losses)
    with pytest.raises(ValueError, match="at least"):
        step.train_chunk(ids, ids, neg[:3], count, lrs, losses)
    with pytest.raises(ValueError, match="0-d"):
        step.train_chunk(ids, ids, neg, count.view(1), lrs, losses)
    with pytest.raises(ValueError, match="float32"):
        step.train_chunk(ids, ids, neg, count, lrs.double(), losses)
    with pytest.raises(ValueError, match="one per batch"):
        step.train_chunk(ids, ids, neg, count, lrs, torch.zeros(2, device=DEVICE))


def test_unavailable_says_why():
    assert unavailable(make_model(10, 4)) is None
    assert unavailable(DEVICE) is None
    assert "float32" in unavailable(SkipGramNS(10, 4, device=DEVICE).double())
    split = SkipGramNS(10, 4, num_shards=2, device=DEVICE)
    split.output.shards[1].data = split.output.shards[1].data.clone()  # the shards no longer share a buffer
    assert "share one buffer" in unavailable(split)
    with pytest.raises(RuntimeError, match="share one buffer"):
        TritonSGNS(split, 8, 8, 2)
    assert "CUDA" in unavailable("meta")


# -- on a GPU: the same comparisons at the sizes training uses -----------------------------------


@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("hot_rows, num_shards", [("sum", 1), ("trust", 1), ("trust", 2)])
def test_step_equals_sgns_step_on_cuda(hot_rows, num_shards):
    compare_steps(20000, 300, 16384, 32, 5, num_shards, "mod", hot_rows, steps=3, lr=0.025, rel=1e-3)


@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("graphs", [True, False])
def test_train_chunk_on_cuda(graphs):
    vocab, dim, batch, group, k, capacity, count = 20000, 300, 16384, 32, 5, 100_000, 90_001
    ref_model, model = make_model(vocab, dim, 2, scale=0.1), make_model(vocab, dim, 2, scale=0.1)
    before = tables(model)
    g = torch.Generator().manual_seed(5)
    inputs, targets = skewed_ids(capacity, vocab, g), skewed_ids(capacity, vocab, g)
    negatives = skewed_ids((capacity // group + 1) * k, vocab, g).view(-1, k)
    nb = 8  # an upper bound: 6 batches hold pairs
    lrs = torch.linspace(0.025, 0.02, nb, device=DEVICE)
    ref = SGNSStep(ref_model, batch, group, k, hot_rows="trust")
    expected = torch.zeros(nb, device=DEVICE)
    for _ in range(2):
        chunk = reference_chunk(ref, inputs, targets, negatives, count, batch, group, lrs)
        expected[: len(chunk)] += chunk
    step = TritonSGNS(model, batch, group, k, hot_rows="trust", graphs=graphs)
    losses = torch.zeros(nb, device=DEVICE)
    count_t = torch.tensor(count, device=DEVICE)
    step.train_chunk(inputs, targets, negatives, count_t, lrs, losses)
    assert len(step._graph_cache) == graphs  # captured, not fallen back to launches
    torch.cuda.set_sync_debug_mode("error")  # the second chunk (kernels built, graph captured) never waits on the device
    try:
        step.train_chunk(inputs, targets, negatives, count_t, lrs, losses)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.allclose(losses, expected, rtol=1e-4)
    assert_same_update(before, tables(ref_model), tables(model), 1e-3)


@pytest.mark.gpu
@cuda_only
def test_hogwild_learns_planted_topics_on_cuda():
    means, model = learn_topics(topics=500, size=20, dim=300, chunk=1 << 20, chunks=6, batch=1 << 16, group=32, k=5, lr=0.025)
    assert_topics_learned(means, model, 500, 20, k=5)
