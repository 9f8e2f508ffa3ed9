import pytest
import torch

from w2v.model import SGNSStep, SkipGramNS


def setup(num_shards=1, strategy="mod", seed=0):
    torch.manual_seed(seed)
    model = SkipGramNS(40, 6, num_shards=num_shards, partition_strategy=strategy)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    table = torch.randn(40, 6, generator=torch.Generator().manual_seed(seed + 1)) * 0.3
    with torch.no_grad():  # a non-zero output table so every gradient term is exercised
        for shard in model.output.shards:
            shard.zero_()
        model.output.index_add_(torch.arange(40), table)
    return model


def test_initialisation_is_word2vecs():
    model = SkipGramNS(1000, 50)
    w_in, w_out = model.input.weight, model.output.weight
    assert w_in.abs().max() <= 0.5 / 50 and w_in.std() > 0.1 * 0.5 / 50
    assert (w_out == 0).all()


@pytest.mark.parametrize("group", [1, 4, 16])
def test_hand_written_step_equals_sgd_on_the_autograd_loss(group):
    model = setup()
    reference = setup()
    g = torch.Generator().manual_seed(1)
    inputs, targets = torch.randint(0, 40, (32,), generator=g), torch.randint(0, 40, (32,), generator=g)
    negatives = torch.randint(0, 40, (32 // group, 3), generator=g)
    loss = SGNSStep(model, 32, group, 3)(inputs, targets, negatives, 0.2, with_loss=True)
    ref_loss = reference(inputs, targets, negatives) * 32
    ref_loss.backward()
    assert torch.allclose(loss, ref_loss.detach())
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.2 * p.grad
    assert torch.allclose(model.input.weight, reference.input.weight, atol=1e-6)
    assert torch.allclose(model.output.weight, reference.output.weight, atol=1e-6)


def test_step_lowers_the_loss_of_its_batch():
    model = setup()
    step = SGNSStep(model, 64, 8, 5)
    g = torch.Generator().manual_seed(2)
    batch = torch.randint(0, 40, (64,), generator=g), torch.randint(0, 40, (64,), generator=g), torch.randint(0, 40, (8, 5), generator=g)
    first = step(*batch, 0.05, with_loss=True)
    for _ in range(5):
        last = step(*batch, 0.05, with_loss=True)
    assert last < first


@pytest.mark.parametrize("num_shards, strategy", [(3, "mod"), (4, "div")])
def test_sharded_step_equals_one_shard(num_shards, strategy):
    one, many = setup(), setup(num_shards, strategy)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        batch = torch.randint(0, 40, (32,), generator=g), torch.randint(0, 40, (32,), generator=g), torch.randint(0, 40, (4, 2), generator=g)
        SGNSStep(one, 32, 8, 2)(*batch, 0.1)
        SGNSStep(many, 32, 8, 2)(*batch, 0.1)
    assert torch.allclose(one.input.weight, many.input.weight, atol=1e-6)
    assert torch.allclose(one.output.weight, many.output.weight, atol=1e-6)


def test_batch_size_must_be_a_group_multiple():
    with pytest.raises(ValueError, match="multiple"):
        SGNSStep(setup(), 30, 8, 2)


def test_seeded_initialisation_is_the_same_for_any_layout():
    tables = []
    for kw in ({}, {"num_shards": 3, "partition_strategy": "div"}, {"num_shards": 4}, {"distributed": True}):
        model = SkipGramNS(1000, 12, **kw)
        model.reset_parameters(torch.Generator().manual_seed(5))
        tables.append(model.input.weight.detach())
        assert not model.output.weight.any()
    assert all(torch.equal(tables[0], t) for t in tables[1:])
    assert tables[0].abs().max() <= 0.5 / 12 and tables[0].std() > 0.01
