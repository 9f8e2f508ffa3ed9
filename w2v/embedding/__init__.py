"""Sharded embedding tables with TensorFlow's partition strategies, on PyTorch.

A table of ``V`` rows is split into ``N`` row shards by ``"mod"`` (id ``i`` in shard
``i % N``) or ``"div"`` (contiguous ranges), as in ``tf.compat.v1.nn.embedding_lookup``.
A lookup takes TorchRec's three steps: route ids to the shards that own them, gather rows
in each shard, return them in id order.

- :mod:`~w2v.embedding.partition`: the layout (:func:`shard_sizes`, :func:`route`,
  :func:`split_table`, :func:`join_shards`);
- :mod:`~w2v.embedding.functional`: :func:`embedding_lookup`, TensorFlow's function with
  its gaps closed (layout and range checks, ``div`` with fewer rows than shards);
- :mod:`~w2v.embedding.module`: :class:`ShardedEmbedding`, ``nn.Embedding`` with shards,
  sparse per-shard gradients and a ``state_dict`` that reshards on load;
- :mod:`~w2v.embedding.distributed`: :class:`DistributedEmbedding`, one shard per rank of a
  ``torch.distributed`` group, ids routed to their owners with ``all_to_all``.

Nothing here knows about word2vec.
"""

from w2v.embedding.distributed import DistributedEmbedding, gather_all, index_add_all, merge_shards
from w2v.embedding.functional import MAX_NORM_MODES, embedding_lookup
from w2v.embedding.module import INITS, ShardedEmbedding
from w2v.embedding.partition import STRATEGIES, join_shards, route, shard_sizes, split_table

__all__ = [
    "DistributedEmbedding",
    "INITS",
    "MAX_NORM_MODES",
    "STRATEGIES",
    "ShardedEmbedding",
    "embedding_lookup",
    "gather_all",
    "index_add_all",
    "join_shards",
    "merge_shards",
    "route",
    "shard_sizes",
    "split_table",
]
