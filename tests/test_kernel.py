"""The compiled CPU step: same maths as SGNSStep, bitwise the same for any thread count."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from w2v import kernel
from w2v.model import FusedSGNS, SGNSStep, SkipGramNS

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler: training uses the torch step"
)

V, D, G, K, B = 300, 20, 8, 5, 64


def tables(num_shards=1, strategy="mod", seed=0, dim=D):
    model = SkipGramNS(V, dim, num_shards, strategy)
    gen = torch.Generator().manual_seed(seed)
    model.reset_parameters(gen)
    with torch.no_grad():  # a trained-looking output table, so every term matters
        model.output.index_add_(torch.arange(V), torch.randn(V, dim, generator=gen) * 0.3)
    return model


def pairs(n_batches, seed=1, k=K):
    gen = torch.Generator().manual_seed(seed)
    p = n_batches * B - G  # the last batch is short
    zipf = torch.distributions.Categorical(probs=1.0 / torch.arange(1, V + 1)).sample
    torch.manual_seed(seed)
    return zipf((p,)), zipf((p,)), torch.randint(0, V, (p // G, k), generator=gen)


def run_fused(model, x, c, n, lrs, threads=1):
    return FusedSGNS(model, G, threads)(x, c, n, B, lrs, [True] * len(lrs))


def test_fused_step_equals_the_torch_step():
    x, c, n = pairs(4)
    lrs = [0.05, 0.04, 0.03, 0.02]
    ref, fused = tables(), tables()
    step = SGNSStep(ref, B, G, K)
    losses = []
    for j, lr in enumerate(lrs):
        s = slice(j * B, (j + 1) * B)
        losses.append(float(step(x[s], c[s], n[j * B // G : (j + 1) * B // G], float(np.float32(lr)), with_loss=True)))
    got = run_fused(fused, x, c, n, lrs)
    assert torch.allclose(fused.input.weight, ref.input.weight, atol=1e-6)
    assert torch.allclose(fused.output.weight, ref.output.weight, atol=1e-6)
    assert not torch.equal(fused.input.weight, tables().input.weight)  # it did train
    assert np.allclose(got, losses, rtol=1e-5)


def torch_steps(model, x, c, n, lrs, k=K):
    step = SGNSStep(model, B, G, k)
    for j, lr in enumerate(lrs):
        s = slice(j * B, (j + 1) * B)
        step(x[s], c[s], n[j * B // G : (j + 1) * B // G], float(np.float32(lr)))


@pytest.mark.parametrize("dim,k", [(37, 11), (3, 1)])
def test_any_row_width_and_negative_count(dim, k):
    # 37 = 2 x 16 + 4 + 1 and 3 floats walk every block size of a row; 11 negatives (12
    # scores) take two register passes.
    x, c, n = pairs(3, k=k)
    lrs = [0.05, 0.03, 0.01]
    ref, one, many = tables(dim=dim), tables(dim=dim), tables(dim=dim)
    torch_steps(ref, x, c, n, lrs, k)
    run_fused(one, x, c, n, lrs)
    run_fused(many, x, c, n, lrs, threads=3)
    assert torch.allclose(one.input.weight, ref.input.weight, atol=1e-6)
    assert torch.allclose(one.output.weight, ref.output.weight, atol=1e-6)
    assert torch.equal(one.input.weight, many.input.weight)
    assert torch.equal(one.output.weight, many.output.weight)


def test_saturated_scores_train_like_the_torch_step():
    # Scores in the hundreds: the kernel's sigmoid clamps where exp would overflow.
    x, c, n = pairs(2)
    lrs = [0.05, 0.03]
    ref, fused = tables(), tables()
    for model in (ref, fused):
        with torch.no_grad():
            model.input.weight.mul_(300)
            model.output.weight.mul_(10)
    torch_steps(ref, x, c, n, lrs)
    losses = run_fused(fused, x, c, n, lrs)
    assert np.isfinite(losses).all()
    assert torch.allclose(fused.input.weight, ref.input.weight, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fused.output.weight, ref.output.weight, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_any_thread_count_gives_bitwise_the_same_tables(threads):
    x, c, n = pairs(6)
    lrs = np.linspace(0.05, 0.01, 6)
    one, many = tables(), tables()
    run_fused(one, x, c, n, lrs, threads=1)
    run_fused(many, x, c, n, lrs, threads=threads)
    assert torch.equal(one.input.weight, many.input.weight)
    assert torch.equal(one.output.weight, many.output.weight)


@pytest.mark.parametrize("num_shards,strategy", [(4, "mod"), (3, "div")])
def test_sharded_tables_train_bitwise_like_one_shard(num_shards, strategy):
    x, c, n = pairs(3)
    lrs = [0.05, 0.03, 0.01]
    one, sharded = tables(), tables(num_shards, strategy)
    assert torch.equal(one.input.weight, sharded.input.weight)
    run_fused(one, x, c, n, lrs, threads=2)
    run_fused(sharded, x, c, n, lrs, threads=2)
    assert torch.equal(one.input.weight, sharded.input.weight)
    assert torch.equal(one.output.weight, sharded.output.weight)


def test_unmeasured_batches_report_nan_and_a_diverging_step_is_seen():
    x, c, n = pairs(2)
    model = tables()
    losses = FusedSGNS(model, G, 2)(x, c, n, B, [0.05, 0.05], [False, True])
    assert np.isnan(losses[0]) and np.isfinite(losses[1])
    losses = FusedSGNS(model, G, 2)(x, c, n, B, [1e38, 1e38], [True, True])
    assert not np.isfinite(losses).all()


def test_bad_arguments_are_refused():
    x, c, n = pairs(1)
    model = tables()
    win, wout = model.input.weight.detach().clone(), model.output.weight.detach().clone()
    with pytest.raises(ValueError, match="multiples of the group"):
        kernel.sgns_train(win, wout, x[:-1], c[:-1], n, G, B, [0.1], [True], 1)
    with pytest.raises(ValueError, match="float32"):
        kernel.sgns_train(win.double(), wout, x, c, n, G, B, [0.1], [True], 1)
    with pytest.raises(ValueError, match="int64"):
        kernel.sgns_train(win, wout, x.int(), c, n, G, B, [0.1], [True], 1)


def test_non_float32_tables_are_declined_with_a_reason():
    model = tables().double()
    assert "float32" in FusedSGNS.unsupported(model)
    with pytest.raises(RuntimeError, match="cannot run"):
        FusedSGNS(model, G, 1)


@pytest.mark.parametrize("env", [{"CC": "/nonexistent/cc"}, {"W2V_KERNEL": "off"}])
def test_without_a_compiler_the_kernel_says_why(tmp_path, env):
    code = "from w2v import kernel; print(kernel.load() is None); print(kernel.unavailable())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "W2V_KERNEL_DIR": str(tmp_path), **env},
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out[0] == "True"
    assert ("cc" in out[1]) if "CC" in env else ("W2V_KERNEL" in out[1])
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.parametrize("n,window", [(0, 5), (1, 5), (2, 5), (7, 3), (1000, 5), (333, 1), (50, 10)])
def test_window_pairs_in_c_equal_the_torch_ones(n, window):
    from w2v.batching import window_pairs as torch_pairs, window_reach

    g = torch.Generator().manual_seed(n + window)
    tokens = torch.randint(0, 40, (n,), generator=g)
    reach = window_reach(n, window, g)
    centers, contexts = kernel.window_pairs(tokens, reach, window)
    want_centers, want_contexts = torch_pairs(tokens, window, reach=reach)
    assert torch.equal(centers, want_centers) and torch.equal(contexts, want_contexts)
    assert centers.numel() > 0 or n < 2
