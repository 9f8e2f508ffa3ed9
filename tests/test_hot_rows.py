"""SGNSStep's hot-row options: each row's summed update scaled by a factor of its in-batch
load (a count, or a bound on the curvature), and sequential sub-batches."""

import math
from collections import Counter

import pytest
import torch

from w2v.model import SGNSStep, SkipGramNS

V, D = 40, 6


def tables(seed=0, vocab=V, dim=D):
    model = SkipGramNS(vocab, dim)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # a non-zero output table so every gradient term is exercised
        model.output.shards[0].copy_(torch.randn(vocab, dim, generator=torch.Generator().manual_seed(seed + 1)) * 0.3)
    return model


def deltas(model, before):
    return model.input.weight - before.input.weight, model.output.weight - before.output.weight


def snapshot(model):
    copy = tables()
    with torch.no_grad():
        copy.input.shards[0].copy_(model.input.weight)
        copy.output.shards[0].copy_(model.output.weight)
    return copy


F = {
    "mean": lambda c: 1.0 / c,
    "sqrt": lambda c: 1.0 / math.sqrt(c),
    "cap": lambda c: min(1.0, 8.0 / c),
}


@pytest.mark.parametrize("hot_rows", ["mean", "sqrt", "cap"])
def test_rows_updated_once_get_the_plain_sum(hot_rows):
    # 8 pairs, no negative shared (G = 1): 8 inputs, 8 targets and 8 negatives all distinct.
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(0))
    inputs, targets, negatives = perm[:8], perm[8:16], perm[16:24].view(8, 1)
    plain, hot = tables(), tables()
    SGNSStep(plain, 8, 1, 1)(inputs, targets, negatives, 0.1)
    SGNSStep(hot, 8, 1, 1, hot_rows=hot_rows, cap=8)(inputs, targets, negatives, 0.1)
    assert torch.equal(hot.input.weight, plain.input.weight)
    assert torch.equal(hot.output.weight, plain.output.weight)


@pytest.mark.parametrize("hot_rows", ["mean", "sqrt", "cap"])
def test_each_rows_summed_update_is_scaled_by_f_of_its_count(hot_rows):
    g = torch.Generator().manual_seed(1)
    b, group, k = 64, 4, 3
    # A small id range so rows repeat: counts from 1 to well past the cap of 8.
    inputs, targets = torch.randint(0, 12, (b,), generator=g), torch.randint(0, 12, (b,), generator=g)
    negatives = torch.randint(0, 12, (b // group, k), generator=g)
    hot = tables()
    step = SGNSStep(hot, b, group, k, hot_rows=hot_rows, cap=8)
    # A shorter batch first, so the test batch runs on buffers a previous step has used
    # differently (its negatives' slots are the test batch's targets').
    step(torch.randint(0, V, (b // 2,), generator=g), torch.randint(0, V, (b // 2,), generator=g),
         torch.randint(0, V, (b // 2 // group, k), generator=g), 0.05)
    start = snapshot(hot)
    plain = snapshot(start)
    SGNSStep(plain, b, group, k)(inputs, targets, negatives, 0.05)
    step(inputs, targets, negatives, 0.05)
    # Counts by hand: a context once per pair, a target once per pair, a negative G times per draw.
    c_in = Counter(inputs.tolist())
    c_out = Counter(targets.tolist())
    for n in negatives.flatten().tolist():
        c_out[n] += group
    assert max(c_in.values()) > 8 and max(c_out.values()) > 8
    (din, dout), (hin, hout) = deltas(plain, start), deltas(hot, start)
    f = F[hot_rows]
    for row in range(V):
        want_in = din[row] * (f(c_in[row]) if c_in[row] else 1.0)
        want_out = dout[row] * (f(c_out[row]) if c_out[row] else 1.0)
        assert torch.allclose(hin[row], want_in, atol=1e-6), (row, c_in[row])
        assert torch.allclose(hout[row], want_out, atol=1e-6), (row, c_out[row])


def test_trust_scales_each_row_by_its_curvature_bound():
    g = torch.Generator().manual_seed(6)
    b, group, k, lr, trust = 64, 4, 3, 0.05, 0.5
    inputs, targets = torch.randint(0, 12, (b,), generator=g), torch.randint(0, 12, (b,), generator=g)
    negatives = torch.randint(0, 12, (b // group, k), generator=g)
    start = tables()
    with torch.no_grad():  # longer rows, so that some loads pass the threshold and some do not
        start.input.shards[0].mul_(300)
    plain, hot = snapshot(start), snapshot(start)
    SGNSStep(plain, b, group, k)(inputs, targets, negatives, lr)
    SGNSStep(hot, b, group, k, hot_rows="trust", trust=trust)(inputs, targets, negatives, lr)
    # Loads by hand: lr / 4 times the summed squared norms of each row's partners.
    x2 = (start.input.weight ** 2).sum(1).tolist()
    y2 = (start.output.weight ** 2).sum(1).tolist()
    load_in, load_out = Counter(), Counter()
    for i in range(b):
        negs = negatives[i // group].tolist()
        load_in[int(inputs[i])] += lr / 4 * (y2[int(targets[i])] + sum(y2[n] for n in negs))
        load_out[int(targets[i])] += lr / 4 * x2[int(inputs[i])]
        for n in negs:
            load_out[n] += lr / 4 * x2[int(inputs[i])]
    (din, dout), (hin, hout) = deltas(plain, start), deltas(hot, start)
    factors = []
    for row in range(V):
        f_in = min(1.0, trust / load_in[row]) if load_in[row] else 1.0
        f_out = min(1.0, trust / load_out[row]) if load_out[row] else 1.0
        factors += [f_in, f_out]
        assert torch.allclose(hin[row], din[row] * f_in, atol=1e-6), (row, load_in[row])
        assert torch.allclose(hout[row], dout[row] * f_out, atol=1e-6), (row, load_out[row])
    assert min(factors) < 0.5 and sum(f == 1.0 for f in factors) > V  # both cases happen


def test_trust_is_the_plain_sum_while_rows_are_short():
    # word2vec's initialisation: input rows of norm ~0.03, output rows zero; no load nears 1.
    g = torch.Generator().manual_seed(7)
    batch = torch.randint(0, 10, (256,), generator=g), torch.randint(0, 10, (256,), generator=g), torch.randint(0, 10, (8, 5), generator=g)
    plain, hot = SkipGramNS(10, 16), SkipGramNS(10, 16)
    plain.reset_parameters(torch.Generator().manual_seed(0))
    hot.reset_parameters(torch.Generator().manual_seed(0))
    SGNSStep(plain, 256, 32, 5)(*batch, 0.025)
    SGNSStep(hot, 256, 32, 5, hot_rows="trust")(*batch, 0.025)
    assert torch.equal(hot.input.weight, plain.input.weight)
    assert torch.equal(hot.output.weight, plain.output.weight)


def test_one_hot_row_by_hand():
    # Input row 0 (zero) is the context of 3 pairs with targets 1, 2, 3 and a zero negative
    # row 4: scores are 0, so each pair adds a (1 - s(0)) y = a/2 y to it, and nothing else.
    model = tables()
    with torch.no_grad():
        model.input.shards[0][0] = 0
        model.output.shards[0].zero_()
        model.output.shards[0][1:4] = torch.tensor([[1.0] * D, [2.0] * D, [3.0] * D])
    step = SGNSStep(model, 3, 3, 1, hot_rows="cap", cap=2)
    step(torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]), torch.tensor([[4]]), 0.1)
    summed = 0.1 * 0.5 * (1 + 2 + 3)  # the plain sum: 0.3 per coordinate
    assert torch.allclose(model.input.weight[0], torch.full((D,), summed * 2 / 3))  # min(1, 2/3)


def test_sub_batches_equal_consecutive_smaller_batches():
    g = torch.Generator().manual_seed(2)
    inputs, targets = torch.randint(0, V, (96,), generator=g), torch.randint(0, V, (96,), generator=g)
    negatives = torch.randint(0, V, (12, 2), generator=g)
    whole, parts = tables(), tables()
    loss = SGNSStep(whole, 96, 8, 2, sub_batch=32)(inputs, targets, negatives, 0.1, with_loss=True)
    small = SGNSStep(parts, 32, 8, 2)
    want = sum(small(inputs[a : a + 32], targets[a : a + 32], negatives[a // 8 : a // 8 + 4], 0.1, with_loss=True)
               for a in range(0, 96, 32))
    assert torch.allclose(loss, want)
    assert torch.allclose(whole.input.weight, parts.input.weight, atol=1e-7)
    assert torch.allclose(whole.output.weight, parts.output.weight, atol=1e-7)


def test_counts_do_not_leak_into_the_next_step():
    g = torch.Generator().manual_seed(3)
    batch = torch.randint(0, 10, (64,), generator=g), torch.randint(0, 10, (64,), generator=g), torch.randint(0, 10, (8, 3), generator=g)
    step = SGNSStep(tables(), 64, 8, 3, hot_rows="cap", cap=16)
    step(*batch, 0.05)
    assert not step.load_in.any() and not step.load_out.any()
    # A shorter last batch reuses the buffers.
    step(batch[0][:16], batch[1][:16], batch[2][:2], 0.05)
    assert not step.load_in.any() and not step.load_out.any()


def planted_batch(g, batch, topics=4, size=5, negatives=5, group=32):
    """Pairs whose context and target share a topic of ``size`` words."""
    topic = torch.randint(0, topics, (batch,), generator=g)
    inputs = topic * size + torch.randint(0, size, (batch,), generator=g)
    targets = topic * size + torch.randint(0, size, (batch,), generator=g)
    return inputs, targets, torch.randint(0, topics * size, (batch // group, negatives), generator=g)


def train(hot_rows, steps=20, batch=4096, **options):
    """Large batches on a 20-word vocabulary at word2vec's learning rate; the mean loss after."""
    model = tables(vocab=20, dim=16)
    with torch.no_grad():
        model.output.shards[0].zero_()
    step = SGNSStep(model, batch, 32, 5, hot_rows=hot_rows, **options)
    g = torch.Generator().manual_seed(4)
    for _ in range(steps):
        step(*planted_batch(g, batch), 0.025)
    held_out = planted_batch(torch.Generator().manual_seed(5), batch)
    with torch.no_grad():
        return model, float(model(*held_out))


def test_large_batches_on_a_tiny_vocabulary_diverge_with_the_plain_sum():
    model, loss = train("sum")
    assert not (loss < 6 * math.log(2)), loss  # NaN or worse than untrained tables


@pytest.mark.parametrize("options", [dict(hot_rows="trust"), dict(hot_rows="sum", sub_batch=256)])
def test_large_batches_on_a_tiny_vocabulary_learn_with_trust_or_sub_batches(options):
    model, loss = train(**options)
    assert torch.isfinite(model.input.weight).all() and torch.isfinite(model.output.weight).all()
    untrained = 6 * math.log(2)  # 4.16; a perfect model of 4 topics of 5 words: ~1.7
    assert loss < 0.6 * untrained, loss
    # And it learned the topics: each word's nearest neighbour (by input vector) shares its topic.
    w = torch.nn.functional.normalize(model.input.weight, dim=1)
    sim = w @ w.T - 2 * torch.eye(20)
    assert (sim.argmax(1) // 5 == torch.arange(20) // 5).all()


def test_bad_options_raise():
    with pytest.raises(ValueError, match="hot_rows"):
        SGNSStep(tables(), 32, 8, 2, hot_rows="clip")
    with pytest.raises(ValueError, match="multiple"):
        SGNSStep(tables(), 32, 8, 2, sub_batch=12)
    with pytest.raises(ValueError, match="positive"):
        SGNSStep(tables(), 32, 8, 2, hot_rows="cap", cap=0)


@pytest.mark.parametrize("hot_rows", ["cap", "trust"])
def test_sharded_tables_get_the_same_update(hot_rows):
    g = torch.Generator().manual_seed(8)
    batch = torch.randint(0, V, (64,), generator=g), torch.randint(0, V, (64,), generator=g), torch.randint(0, V, (8, 3), generator=g)
    one, many = tables(), SkipGramNS(V, D, num_shards=3)
    with torch.no_grad():
        many.input.index_add_(torch.arange(V), one.input.weight - many.input.weight)
        many.output.index_add_(torch.arange(V), one.output.weight - many.output.weight)
    for model in (one, many):
        step = SGNSStep(model, 64, 8, 3, hot_rows=hot_rows, cap=8, trust=0.05)
        for _ in range(3):
            step(*batch, 0.1)
    assert torch.allclose(one.input.weight, many.input.weight, atol=1e-6)
    assert torch.allclose(one.output.weight, many.output.weight, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("options", [dict(hot_rows="cap"), dict(hot_rows="trust"), dict(hot_rows="trust", sub_batch=64)])
def test_the_step_does_not_synchronise_with_the_host(options):
    model = SkipGramNS(V, D, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(9)
    batch = [torch.randint(0, V, shape, generator=g, device="cuda") for shape in ((256,), (256,), (8, 5))]
    step = SGNSStep(model, 256, 32, 5, **options)
    lr = torch.tensor(0.025, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = step(*batch, lr, with_loss=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss) and torch.isfinite(model.input.weight).all()
