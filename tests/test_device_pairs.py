import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sync_guard import HostSyncCounter
from w2v.batching import subsample, window_pairs, window_reach
from w2v.device_pairs import DevicePairSampler, batch_learning_rates, pair_capacity, subsample_into, window_pairs_into
from w2v.sampling import NoiseSampler
from w2v.chunks import ChunkPlan

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")])]


def generator(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


def sampler_for(counts, keep_prob, device, window=3, negatives=4, group=4, max_tokens=500, buffers=2):
    noise = NoiseSampler(np.asarray(counts), 0.75, device=device)
    keep = torch.as_tensor(keep_prob, dtype=torch.float32)
    return DevicePairSampler(keep, noise, window, negatives, group, max_tokens, device, buffers)


def test_pair_capacity_is_the_most_pairs():
    for n in range(8):
        for window in range(1, 5):
            full = torch.full((n,), window)
            centers, _ = window_pairs(torch.arange(n), window, reach=full)
            assert pair_capacity(n, window) == centers.numel() <= 2 * min(window, max(n - 1, 0)) * n


@pytest.mark.parametrize("device", DEVICES)
def test_subsample_into_equals_subsample(device):
    keep_prob = torch.rand(50, generator=generator("cpu", 0)).to(device)
    for seed, n in [(0, 1000), (1, 1), (2, 0), (3, 37)]:
        ids = torch.randint(0, 50, (n,), generator=generator("cpu", seed)).to(device)
        g, h = generator(device, seed), generator(device, seed)
        expected = subsample(ids, keep_prob, g)
        out = torch.full((n + 7,), -1, device=device)
        kept = subsample_into(ids, keep_prob, h, out)
        assert kept.shape == () and kept.dtype == torch.int64 and kept.device == ids.device
        k = int(kept)
        assert torch.equal(out[:k], expected)
        # the dropped ids follow the kept ones; past len(ids), out is untouched
        assert torch.equal(out[:n].sort().values, ids.sort().values)
        assert (out[n:] == -1).all()
        # one draw each, of the same size
        assert torch.equal(torch.rand(3, generator=g, device=device), torch.rand(3, generator=h, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_window_pairs_into_equals_window_pairs(device):
    rng = generator("cpu", 5)
    for length in (0, 1, 2, 3, 5, 17, 60):
        for window in (1, 2, 3, 7):
            for count in sorted({0, 1, length // 2, max(length - 1, 0), length}):
                count = min(count, length)
                tokens = torch.randint(0, 1000, (length,), generator=rng).to(device)
                reach = torch.randint(1, window + 1, (length + 3,), generator=rng).to(device)
                capacity = pair_capacity(length, window)
                centers = torch.full((capacity + 5,), -1, device=device)
                contexts = torch.full((capacity + 5,), -1, device=device)
                counted = torch.tensor(count, device=device)
                pairs = window_pairs_into(tokens, counted, reach, window, centers, contexts)
                want_c, want_x = window_pairs(tokens[:count], window, reach=reach[:count])
                p = int(pairs)
                assert p == want_c.numel(), (length, window, count)
                assert torch.equal(centers[:p], want_c) and torch.equal(contexts[:p], want_x)
                # every slot of the capacity holds one of the tokens, the rest is untouched
                assert torch.isin(centers[:capacity], tokens).all() and torch.isin(contexts[:capacity], tokens).all()
                assert (centers[capacity:] == -1).all() and (contexts[capacity:] == -1).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [300, 400])
def test_draw_is_the_host_path_in_the_documented_order(device, n):
    counts = np.arange(1, 31) ** 2
    keep_prob = torch.linspace(0.2, 1.0, 30)
    sampler = sampler_for(counts, keep_prob, device, max_tokens=400)
    ids = torch.randint(0, 30, (n,), generator=generator("cpu", n)).to(device)
    got = sampler.draw(ids, generator(device, 11))
    g = generator(device, 11)
    kept = subsample(ids, keep_prob.to(device), g)
    reach = window_reach(400, 3, g, device)
    centers, contexts = window_pairs(kept, 3, reach=reach[: kept.numel()])
    negatives = sampler.noise.sample((sampler.capacity // 4 + 1, 4), g)
    assert int(got.kept) == kept.numel() and int(got.count) == centers.numel()
    assert torch.equal(got.centers[: centers.numel()], centers) and torch.equal(got.contexts[: centers.numel()], contexts)
    assert torch.equal(got.negatives, negatives)
    assert got.centers.shape == (pair_capacity(400, 3),) and got.negatives.shape == (pair_capacity(400, 3) // 4 + 1, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_every_pair_is_two_kept_tokens_within_the_center_window(device):
    n, window = 2000, 4
    keep_prob = torch.rand(n, generator=generator("cpu", 1)) * 0.8 + 0.2
    # ids are positions: a kept id says where it stood
    sampler = sampler_for(np.ones(n), keep_prob, device, window=window, max_tokens=n)
    pairs = sampler.draw(torch.arange(n, device=device), generator(device, 2))
    kept = sampler.slots[0].tokens[: int(pairs.kept)].tolist()
    assert kept == sorted(kept) and 0.2 * n < len(kept) < n  # subsampling keeps the order
    rank = {token: r for r, token in enumerate(kept)}
    count = int(pairs.count)
    offsets = {}
    for c, x in zip(pairs.centers[:count].tolist(), pairs.contexts[:count].tolist()):
        assert c in rank and x in rank
        offsets.setdefault(c, []).append(rank[x] - rank[c])
    for c, seen in offsets.items():
        # each center pairs with every kept token within its window b on both sides, once
        b = max(abs(d) for d in seen)
        inside = [d for d in range(-b, b + 1) if d and 0 <= rank[c] + d < len(kept)]
        assert 1 <= b <= window and sorted(seen) == inside


@pytest.mark.parametrize("device", DEVICES)
def test_offsets_follow_the_dynamic_window(device):
    n, window = 6000, 5
    sampler = sampler_for(np.ones(n), torch.ones(n), device, window=window, max_tokens=n)
    pairs = sampler.draw(torch.arange(n, device=device), generator(device, 3))
    count = int(pairs.count)
    offsets = Counter((pairs.contexts[:count] - pairs.centers[:count]).tolist())
    assert set(offsets) == {d for d in range(-window, window + 1) if d}
    for d in range(1, window + 1):
        p = (window - d + 1) / window  # a window b ~ U{1..W} reaches d when b >= d
        mean, sd = (n - d) * p, math.sqrt((n - d) * p * (1 - p)) + 1e-9
        for side in (d, -d):
            assert abs(offsets[side] - mean) <= 5 * sd + 1e-9, (side, offsets[side], mean)


@pytest.mark.parametrize("device", DEVICES)
def test_subsampling_keeps_each_id_at_its_rate(device):
    keep_prob = torch.tensor([0.1, 0.5, 0.9, 1.0])
    n = 20_000
    ids = torch.randint(0, 4, (n,), generator=generator("cpu", 4)).to(device)
    sampler = sampler_for(np.ones(4), keep_prob, device, window=2, max_tokens=n)
    pairs = sampler.draw(ids, generator(device, 5))
    kept = sampler.slots[0].tokens[: int(pairs.kept)]
    seen = torch.bincount(ids, minlength=4).cpu().double()
    left = torch.bincount(kept, minlength=4).cpu().double()
    sd = (seen * keep_prob * (1 - keep_prob)).sqrt()
    assert ((left - seen * keep_prob).abs() <= 5 * sd + 1e-9).all(), (left / seen, keep_prob)


@pytest.mark.parametrize("device", DEVICES)
def test_negatives_follow_unigram_to_the_three_quarters(device):
    counts = np.array([1, 16, 81, 0, 256])
    sampler = sampler_for(counts, torch.ones(5), device, window=5, negatives=5, group=2, max_tokens=4000)
    pairs = sampler.draw(torch.randint(0, 5, (4000,), device=device), generator(device, 6))
    draws = pairs.negatives.flatten().cpu()
    assert draws.numel() > 90_000
    freq = torch.bincount(draws, minlength=5).double() / draws.numel()
    expected = torch.tensor([1, 8, 27, 0, 64], dtype=torch.float64) / 100
    sd = (expected * (1 - expected) / draws.numel()).sqrt()
    assert freq[3] == 0 and ((freq - expected).abs() <= 5 * sd).all(), freq


def buffers(sampler, pairs):
    return [pairs.centers, pairs.contexts, pairs.negatives, pairs.count, pairs.kept, sampler.slots[0].tokens]


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_gives_the_same_buffers_whatever_came_before(device):
    counts = np.arange(1, 41)
    keep_prob = torch.linspace(0.3, 1.0, 40)
    long_ids = torch.randint(0, 40, (500,), generator=generator("cpu", 7)).to(device)
    short_ids = long_ids[:350]
    used = sampler_for(counts, keep_prob, device)
    used.draw(long_ids, generator(device, 1))
    used.draw(long_ids, generator(device, 2))
    again = used.draw(short_ids, generator(device, 3))  # slot 0 again, after a longer chunk
    fresh = sampler_for(counts, keep_prob, device)
    first = fresh.draw(short_ids, generator(device, 3))
    for a, b in zip(buffers(used, again), buffers(fresh, first)):
        assert torch.equal(a, b)
    other = sampler_for(counts, keep_prob, device).draw(short_ids, generator(device, 4))
    assert not torch.equal(other.centers, first.centers) and not torch.equal(other.negatives, first.negatives)


@pytest.mark.parametrize("device", DEVICES)
def test_a_draw_leaves_the_other_buffers_alone(device):
    sampler = sampler_for(np.arange(1, 41), torch.full((40,), 0.7), device, buffers=2)
    ids = torch.randint(0, 40, (500,), generator=generator("cpu", 8)).to(device)
    first = sampler.draw(ids, generator(device, 1))
    saved = [t.clone() for t in (first.centers, first.contexts, first.negatives, first.count, first.kept)]
    second = sampler.draw(ids, generator(device, 2))
    assert second.centers.data_ptr() != first.centers.data_ptr()
    for a, b in zip(saved, (first.centers, first.contexts, first.negatives, first.count, first.kept)):
        assert torch.equal(a, b)
    third = sampler.draw(ids, generator(device, 3), slot=1)
    assert third.centers.data_ptr() == second.centers.data_ptr()


def run_chunk_draw(sampler, ids, seed, device, guard=None):
    g = generator(device, seed)
    pairs = sampler.draw(ids, g)
    if guard is not None:
        assert guard.allocating == [], guard.allocating  # the draw only writes into its buffers
    rates = batch_learning_rates(pairs.count, -(-sampler.capacity // 64), 64, 1, 500, 1000, 5000, 10_000, 0.025, 1e-4)
    return pairs, rates


def test_the_guard_sees_what_syncs():
    t = torch.arange(6)
    cases = {
        "aten._local_scalar_dense": lambda: t.sum().item(),
        "aten.nonzero": lambda: (t > 2).nonzero(),
        "aten.index.Tensor(bool)": lambda: t[t > 2],
        "aten.masked_select": lambda: t.masked_select(t > 2),
        "aten._unique2": lambda: torch.unique(t),
        "aten.repeat_interleave(no output_size)": lambda: torch.repeat_interleave(t),
        "aten._to_copy(device to host)": lambda: torch.empty(2, device="meta").to("cpu"),
    }
    for name, run in cases.items():
        with HostSyncCounter() as guard:
            try:
                run()
            except NotImplementedError:  # a meta tensor has no data to copy; the copy was still seen
                pass
        assert guard.syncs == [name]
    with HostSyncCounter() as guard:
        torch.repeat_interleave(t, t, output_size=15)
    assert guard.syncs == []
    ranks = torch.empty(6, dtype=torch.int64)
    with HostSyncCounter() as guard:
        torch.cumsum(t > 2, 0, out=ranks).add_(1)[1:]
    assert guard.syncs == [] and guard.names == ["aten.gt", "aten.cumsum", "aten.add_", "aten.slice"]
    assert guard.allocating == ["aten.gt"]  # out=, in place and views reuse memory


@pytest.mark.parametrize("device", DEVICES)
def test_a_draw_never_waits_for_the_device(device):
    sampler = sampler_for(np.arange(1, 41), torch.linspace(0.2, 1.0, 40), device, max_tokens=500)
    ids = torch.randint(0, 40, (450,), generator=generator("cpu", 9)).to(device)
    run_chunk_draw(sampler, ids, 0, device)  # first calls may set things up
    traces = []
    for seed in (1, 2):
        with HostSyncCounter() as guard:
            pairs, _ = run_chunk_draw(sampler, ids, seed, device, guard)
        assert guard.syncs == [], guard.syncs
        assert {"aten.cumsum", "aten.scatter_", "aten.uniform_"} <= set(guard.names)
        traces.append((guard.shapes, int(pairs.kept), int(pairs.count)))
    (shapes_1, kept_1, count_1), (shapes_2, kept_2, count_2) = traces
    assert (kept_1, count_1) != (kept_2, count_2)
    assert shapes_1 == shapes_2  # no size depends on the data
    if device == "cuda":  # the driver's own check: any synchronizing call raises
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            run_chunk_draw(sampler, ids, 3, device)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("device", DEVICES)
def test_batch_learning_rates_are_the_trainers(device):
    chunks = [(0, 700), (700, 1400), (1400, 1500)]
    num_tokens, epochs, batch_size = 1500, 3, 64
    host = SimpleNamespace(
        bounds=chunks,
        num_tokens=num_tokens,
        total_words=num_tokens * epochs,
        cfg=SimpleNamespace(batch_size=batch_size, lr=0.025, min_lr=0.0001),
    )
    for epoch in range(epochs):
        for index, (a, b) in enumerate(chunks):
            for count in (0, 1, 63, 64, 1000, 4097):
                num_batches = -(-max(count, 1) // batch_size) + 2  # bounds past the last batch are harmless
                out = torch.empty(num_batches, device=device)
                rates = batch_learning_rates(
                    torch.tensor(count, device=device), num_batches, batch_size, epoch, a, b,
                    num_tokens, num_tokens * epochs, 0.025, 0.0001, out=out,
                )
                assert rates is out and rates.dtype == torch.float32
                expected = [ChunkPlan.batch_lr(host, epoch, index, j, count) for j in range(num_batches)]
                torch.testing.assert_close(rates.cpu(), torch.tensor(expected, dtype=torch.float32), rtol=1.2e-7, atol=0)


def test_mistakes_name_the_fix():
    sampler = sampler_for(np.ones(4), torch.ones(4), "cpu", max_tokens=10)
    with pytest.raises(ValueError, match="max_tokens=10"):
        sampler.draw(torch.zeros(11, dtype=torch.int64), None)
    with pytest.raises(ValueError, match="slot 2"):
        sampler.draw(torch.zeros(3, dtype=torch.int64), None, slot=2)
    with pytest.raises(ValueError, match="window must be at least 1"):
        sampler_for(np.ones(4), torch.ones(4), "cpu", window=0)
    with pytest.raises(ValueError, match="output buffers of 4 pairs"):
        window_pairs_into(torch.arange(3), 3, torch.ones(3, dtype=torch.int64), 1, torch.empty(3, dtype=torch.int64), torch.empty(4, dtype=torch.int64))
