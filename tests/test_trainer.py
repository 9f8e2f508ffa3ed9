import numpy as np
import torch

from w2v.config import TrainConfig
from w2v.corpus import Tokenizer, load_corpus
from w2v.model import SkipGramNS
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
