"""The k best rows for many queries, tile by tile (w2v.topk)."""

import pytest
import torch

from w2v.topk import tile_topk


@pytest.mark.parametrize("shape", [(5, 4096), (3, 5000), (7, 300)])
def test_tile_topk_equals_topk(shape):
    gen = torch.Generator().manual_seed(shape[1])
    scores = torch.randn(shape, generator=gen)
    scores[0, :] = torch.round(scores[0, :])  # many ties
    scores[1, ::7] = -torch.inf
    got_v, got_i = tile_topk(scores, 6)
    want_v, _ = torch.topk(scores, 6, dim=1)
    assert torch.equal(got_v, want_v)
    assert torch.equal(torch.gather(scores, 1, got_i), got_v)  # the ids point at those values
    assert all(len(set(row)) == 6 for row in got_i.tolist())
