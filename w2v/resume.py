"""Resuming from a checkpoint: whether a run may continue from it, and its tables put back.

A checkpoint (:mod:`w2v.checkpoint`) carries the resolved config and the corpus record of
the run that wrote it. A new run continues from it only with the same vectors' size and
vocabulary settings (:func:`check_resumable` names the value to set) and on the same
corpus (:func:`check_corpus`); settings that change only the trajectory (the learning
rate, the window...) may differ, each one named, and the resumed run then differs from
an uninterrupted one. :func:`restore_tables` copies the tables into a model of any
sharding.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

# Settings a resumed run must share with the checkpoint's: they fix the vocabulary (which
# comes from the checkpoint) and what a position in the token stream means.
_MUST_MATCH = ("data.token_pattern", "data.lowercase", "data.min_count", "data.max_vocab_size", "train.chunk_tokens")
# Settings that may change on resume, at the price of a run that no longer equals an
# uninterrupted one; a resumed run names each one that changed.
_TRAJECTORY = (
    "train.epochs", "train.window", "train.negatives", "train.ns_exponent", "train.sample", "train.lr",
    "train.min_lr", "train.batch_size", "train.shared_negatives", "train.seed", "train.kernel",
)


def restore_tables(model, ckpt: Dict[str, Any]) -> None:
    """Copy the checkpoint's tables into ``model`` (any sharding), exactly.

    Raises:
        ValueError: the model's shape differs from the checkpoint's.
    """
    shard = ckpt.get("shard")
    world = getattr(model.input, "rank", 0), getattr(model.input, "world_size", 1)
    if shard is not None and (shard["rank"], shard["world_size"]) != world:
        raise ValueError(
            f"the checkpoint holds rank {shard['rank']} of {shard['world_size']}'s rows; load it with "
            "load_checkpoint(path, rank, world_size), which joins the ranks' files for another world size"
        )
    with torch.no_grad():
        for layer, table in ((model.input, ckpt["input"]), (model.output, ckpt["output"])):
            if table.shape[1] != layer.embedding_dim or (shard is None and len(table) != layer.num_embeddings):
                raise ValueError(
                    f"the checkpoint's tables are {tuple(table.shape)}, the model's "
                    f"{(layer.num_embeddings, layer.embedding_dim)}; set model.dim={table.shape[1]}"
                )
            if shard is not None:
                layer.shards[0].copy_(table)
            else:
                layer.copy_table_(table)


def check_corpus(ckpt: Dict[str, Any], tokens: int, fingerprint: str) -> Optional[str]:
    """Check that a resumed run reads the corpus ``ckpt`` was trained on.

    Args:
        ckpt: from :func:`~w2v.checkpoint.load_checkpoint`.
        tokens, fingerprint: the run's corpus (:class:`~w2v.token_cache.EncodedCorpus`).

    Returns:
        a warning line for a checkpoint written before corpus records were, else ``None``.
        Another token count is left to the trainer, whose message names both counts.

    Raises:
        ValueError: the same number of tokens, but another content (the lines shuffled...).
    """
    where = ckpt.get("path", "the checkpoint")
    record = ckpt.get("corpus")
    if not isinstance(record, dict) or not record.get("fingerprint"):
        return (
            f"{where} was written by an older w2v, without a corpus fingerprint or checksums to check; "
            "make sure data.corpus is the corpus it was trained on"
        )
    if record.get("tokens") == tokens and record["fingerprint"] != fingerprint:
        raise ValueError(
            f"train.resume: {where} was trained on another corpus of the same {tokens:,} tokens (its content "
            "differs); resume with the data.corpus of the checkpoint's run, or start without train.resume"
        )
    return None


def _get(config: Dict[str, Any], dotted: str):
    section, key = dotted.split(".")
    return (config.get(section) or {}).get(key)


def check_resumable(ckpt: Dict[str, Any], config: Dict[str, Any]) -> List[str]:
    """Check that a run with ``config`` can continue from ``ckpt``.

    Args:
        ckpt: from :func:`~w2v.checkpoint.load_checkpoint`.
        config: the new run's resolved config as a plain dict.

    Returns:
        one line per setting that changed but may (``train.lr=0.01, the checkpoint's run
        had 0.025``); the resumed run then differs from an uninterrupted one.

    Raises:
        ValueError: the vectors' size or the vocabulary settings differ; the message names
            the setting to use.
    """
    where = ckpt.get("path", "the checkpoint")
    dim = ckpt["input"].shape[1]
    if _get(config, "model.dim") != dim:
        raise ValueError(
            f"train.resume: {where} holds vectors of model.dim={dim} but this run asks for "
            f"model.dim={_get(config, 'model.dim')}; set model.dim={dim} or start without train.resume"
        )
    saved = ckpt["config"]
    for key in _MUST_MATCH:
        if _get(saved, key) != _get(config, key):
            raise ValueError(
                f"train.resume: {where} was trained with {key}={_get(saved, key)} but this run asks for "
                f"{key}={_get(config, key)}; set {key}={_get(saved, key)} (the vocabulary and positions "
                "come from the checkpoint) or start without train.resume"
            )
    return [
        f"{key}={_get(config, key)}, the checkpoint's run had {_get(saved, key)}"
        for key in _TRAJECTORY
        if _get(saved, key) != _get(config, key)
    ]
