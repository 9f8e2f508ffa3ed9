import numpy as np
import torch

from w2v.config import TrainConfig
from w2v.corpus import Tokenizer
from w2v.model import SkipGramNS
from w2v.strategies.threads import torch_step
from w2v.token_cache import load_corpus
from w2v.trainer import Trainer, learning_rate
from w2v.vocab import Vocab


def fit(path, workers=1, num_shards=1, strategy="mod", seed=0, **overrides):
    enc = load_corpus(str(path), Tokenizer(r"\w+"), cache=False)
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), min_count=1)
    cfg = TrainConfig(epochs=3, batch_size=256, shared_negatives=8, workers=workers, seed=seed, lr=0.05, chunk_tokens=8192, **overrides)
    model = SkipGramNS(len(vocab), 24, num_shards, strategy)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    result = Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, "cpu").fit()
    return model, vocab, result


def topic_precision(model, vocab, groups, k=3):
    w = torch.nn.functional.normalize(model.input.weight.detach(), dim=1)
    sims = w @ w.T
    sims.fill_diagonal_(-2)
    hits = total = 0
    for group in groups:
        for word in group:
            near = sims[vocab.key_to_index[word]].topk(k).indices.tolist()
            hits += sum(vocab.index_to_key[i] in group for i in near)
            total += k
    return hits / total


def test_planted_topics_become_nearest_neighbours(planted):
    path, groups = planted
    model, vocab, result = fit(path, workers=2)
    assert result.words == 3 * 60_000
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert topic_precision(model, vocab, groups) >= 0.9  # chance is 5 / 71


def test_one_worker_is_bitwise_deterministic(planted):
    path, _ = planted
    a, _, _ = fit(path, seed=5)
    b, _, _ = fit(path, seed=5)
    c, _, _ = fit(path, seed=6)
    assert torch.equal(a.input.weight, b.input.weight)
    assert not torch.equal(a.input.weight, c.input.weight)


def test_sharded_training_equals_one_shard(planted):
    path, _ = planted
    one, _, _ = fit(path, seed=2)
    four, _, _ = fit(path, num_shards=4, strategy="div", seed=2)
    assert torch.allclose(one.input.weight, four.input.weight, atol=1e-5)


def test_learning_rate_decays_linearly_to_the_floor():
    lrs = [learning_rate(p, 1000, 0.025, 0.0001) for p in (0, 250, 500, 1000, 2000)]
    assert np.allclose(lrs, [0.025, 0.025 - 0.0249 / 4, 0.025 - 0.0249 / 2, 0.0001, 0.0001])


# --- checkpoints and resuming ----------------------------------------------------------

import pytest  # noqa: E402

from w2v.trainer import TrainingDiverged, TrainingInterrupted, TrainState  # noqa: E402


def make_trainer(path, seed=3, **overrides):
    enc = load_corpus(str(path), Tokenizer(r"\w+"), cache=False)
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), min_count=1)
    options = dict(epochs=2, batch_size=256, shared_negatives=8, workers=1, seed=seed, lr=0.05, chunk_tokens=8192)
    cfg = TrainConfig(**{**options, **overrides})
    model = SkipGramNS(len(vocab), 24)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, "cpu"), model


def tables(model):
    return model.input.weight.detach().clone(), model.output.weight.detach().clone()


@pytest.mark.parametrize("kernel, workers", [("auto", 1), ("auto", 2), ("torch", 1)])
def test_interrupted_then_resumed_equals_uninterrupted(planted, kernel, workers):
    path, _ = planted
    if workers > 1 and not make_trainer(path)[0].fused:
        pytest.skip("several torch workers are hogwild, not bitwise reproducible")
    whole, whole_model = make_trainer(path, kernel=kernel, workers=workers)
    expected = whole.fit()

    first, model = make_trainer(path, kernel=kernel, workers=workers, checkpoint_every_words=50_000)
    saved = []

    def checkpoint(state):  # what a checkpoint file holds: the state and both tables
        saved.append((state.to_dict(), tables(model)))
        if len(saved) == 2:
            first.request_stop()

    with pytest.raises(TrainingInterrupted):
        first.fit(checkpoint=checkpoint)
    state, (input_table, output_table) = saved[-1]
    assert state["epoch"] == 1 and 0 < state["chunks_done"] < len(first.chunks)  # mid-epoch, one epoch done

    second, resumed = make_trainer(path, kernel=kernel, workers=workers)
    with torch.no_grad():  # a fresh model: the tables come from the checkpoint
        resumed.input.weight.copy_(input_table)
        resumed.output.weight.copy_(output_table)
    result = second.fit(start=TrainState.from_dict(state))
    assert torch.equal(resumed.input.weight, whole_model.input.weight)
    assert torch.equal(resumed.output.weight, whole_model.output.weight)
    assert result.epoch_losses == expected.epoch_losses
    assert result.words == whole.num_tokens * 2 - state["words"]


def test_words_checkpoints_fall_on_the_same_boundaries_for_any_worker_count(planted):
    path, _ = planted
    positions = []
    for workers in (1, 2):
        trainer, _ = make_trainer(path, kernel="torch", workers=workers, checkpoint_every_words=25_000)
        found = []
        trainer.fit(checkpoint=lambda state: found.append((state.epoch, state.chunks_done, state.words)))
        positions.append(found)
    assert positions[0] == positions[1]
    words = [w for _, _, w in positions[0]]
    # the first chunk boundary past each multiple of 25,000 words (60,000 a epoch, chunks of 8,192)
    assert words == [32768, 57344, 60000 + 2 * 8192, 60000 + 5 * 8192] and positions[0][2][:2] == (1, 2)


def test_minutes_checkpoints_and_none_when_off(planted):
    path, _ = planted
    trainer, _ = make_trainer(path, epochs=1, checkpoint_every_minutes=1e-9)
    found = []
    trainer.fit(checkpoint=lambda state: found.append(state.chunks_done))
    assert found == list(range(1, len(trainer.chunks)))  # every boundary but the end
    trainer, _ = make_trainer(path, epochs=1, checkpoint_every_minutes=0, checkpoint_every_words=None)
    trainer.fit(checkpoint=lambda state: found.append("unexpected"))
    assert "unexpected" not in found


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_nan_stops_training_and_never_reaches_a_checkpoint(planted, kernel):
    path, _ = planted
    trainer, model = make_trainer(path, kernel=kernel, checkpoint_every_words=20_000)
    saved = []

    def checkpoint(state):
        saved.append(tables(model))
        with torch.no_grad():  # the run goes bad right after its first checkpoint
            model.input.weight[1:5] = float("nan")

    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        trainer.fit(checkpoint=checkpoint)
    assert len(saved) == 1 and all(torch.isfinite(t).all() for t in saved[0])


def test_default_cpu_training_is_bitwise_deterministic_for_any_thread_count(planted):
    path, groups = planted
    a, vocab, result = fit(path, workers=0, seed=5)  # the defaults: the kernel, one thread per core
    if not result.profile.get("gradients"):
        pytest.skip("the compiled kernel is unavailable here")
    b, _, _ = fit(path, workers=0, seed=5)
    three, _, _ = fit(path, workers=3, seed=5)
    assert torch.equal(a.input.weight, b.input.weight) and torch.equal(a.output.weight, b.output.weight)
    assert torch.equal(a.input.weight, three.input.weight)
    assert topic_precision(a, vocab, groups) >= 0.9


def test_hot_row_settings_select_the_torch_step_and_reach_it(planted, cache_dir):
    corpus_path, _ = planted
    corpus = load_corpus(str(corpus_path), Tokenizer(), cache_dir=cache_dir)
    vocab = Vocab.from_counts(zip(corpus.types, corpus.counts.tolist()), 1)
    cfg = TrainConfig(epochs=1, batch_size=4096, shared_negatives=8, lr=0.05, workers=1, hot_rows="trust", sub_batch=1024)
    model = SkipGramNS(len(vocab), 16)
    trainer = Trainer(model, corpus.tokens, vocab.encode(corpus.types), vocab.counts, cfg, "cpu")
    assert not trainer.fused  # the kernel applies the plain sum only
    assert trainer.strategy.name == "threads"
    step = torch_step(model, trainer.cfg)
    assert (step.hot_rows, step.sub_batch, step.trust) == ("trust", 1024, 2.0)
    result = trainer.fit()
    assert np.isfinite(result.loss) and torch.isfinite(model.input.weight).all()


def test_all_finite_checks_every_block():
    from w2v.trainer import all_finite

    table = torch.zeros(1000, 7)
    assert all_finite(table, block_bytes=64) and all_finite(torch.zeros(0, 7))
    for row in (0, 517, 999):
        bad = table.clone()
        bad[row, 3] = float("nan") if row % 2 else float("inf")
        assert not all_finite(bad, block_bytes=64)


def test_hogwild_kernel_threads_learn_and_one_thread_equals_the_deterministic_kernel(planted):
    path, groups = planted
    if make_trainer(path)[0].strategy.name != "cpu-kernel":
        pytest.skip("the CPU kernel does not build here")
    det, _, det_result = fit(path, workers=1, seed=4)
    one, _, one_result = fit(path, workers=1, seed=4, deterministic=False)
    assert torch.equal(det.input.weight, one.input.weight)  # the same chunks, the same maths, in order
    assert det_result.epoch_losses == one_result.epoch_losses
    two, vocab, result = fit(path, workers=2, seed=4, deterministic=False)
    assert result.words == 3 * 60_000 and result.epoch_losses[-1] < result.epoch_losses[0]
    assert topic_precision(two, vocab, groups) >= 0.9


def test_chunks_on_changing_thread_counts_give_bitwise_the_tables_of_one_count(planted, monkeypatch):
    """The kernel's thread count may change between chunks (w2v.strategies.team) without changing a bit."""
    from w2v.strategies import cpu_kernel
    from w2v.strategies.team import TeamSize

    path, _ = planted
    fixed, _, result = fit(path, workers=2, seed=6, adapt_workers=False)
    if not result.profile.get("gradients"):
        pytest.skip("the compiled kernel is unavailable here")

    class Cycling(TeamSize):
        def next(self):
            return [1, 3, 2][sum(self.chunks.values()) % 3]

    monkeypatch.setattr(cpu_kernel, "TeamSize", Cycling)
    varied, _, _ = fit(path, workers=3, seed=6)
    assert torch.equal(fixed.input.weight, varied.input.weight) and torch.equal(fixed.output.weight, varied.output.weight)


def test_the_kernel_reports_the_chunks_of_each_thread_count(planted):
    path, _ = planted
    enc = load_corpus(str(path), Tokenizer(r"\w+"), cache=False)
    vocab = Vocab.from_counts(zip(enc.types, enc.counts.tolist()), min_count=1)
    for adapt in (True, False):
        cfg = TrainConfig(epochs=1, batch_size=256, shared_negatives=8, workers=2, chunk_tokens=2048, adapt_workers=adapt)
        model = SkipGramNS(len(vocab), 16)
        trainer = Trainer(model, enc.tokens, vocab.encode(enc.types), vocab.counts, cfg, "cpu")
        if not trainer.fused:
            pytest.skip("the compiled kernel is unavailable here")
        trainer.fit()
        counts = trainer.strategy.measures()["kernel_threads"]
        assert sum(counts.values()) == len(trainer.chunks)
        assert ("1" in counts) == adapt  # adapting compares with one thread early on; fixed never does
