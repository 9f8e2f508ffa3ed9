"""The ways of running the training step, one module each, behind :class:`Strategy`.

=============== ========================================================================
``cpu-kernel``  the compiled C kernel on ``workers`` threads (CPU default; bitwise reproducible;
                with ``train.deterministic=false`` each thread trains its own chunks, Hogwild!)
``threads``     the torch step on ``workers`` Hogwild! threads (CPU without a compiler, hot-row
                modes other than ``sum``; one thread on a GPU without Triton)
``ranks``       several processes with row-sharded tables (``torchrun``, ``train.distributed=sharded``)
``replicas``    several processes, each with whole tables and the step a single process would
                run, merged every ``train.merge_every_words`` (``torchrun``, the default)
``triton``      the fused Triton step with pairs drawn on the device (GPU default)
=============== ========================================================================

:func:`choose` picks one from the config and the device, :func:`resolve` fills in the
settings left to ``auto`` for it (a GPU trains larger batches, with the ``trust`` damping,
over larger chunks), and :func:`build` makes it. Over several processes with local tables,
:func:`choose` picks the step each rank runs and :func:`build` wraps it in
:class:`~w2v.strategies.replicas.Replicas`; :func:`sharded_tables` decides which of the two
layouts a run over several processes uses.
"""

from __future__ import annotations

from dataclasses import fields

import torch

from w2v.chunks import ChunkPlan
from w2v.config import CPU_DEFAULTS, GPU_DEFAULTS, TrainConfig
from w2v.embedding import DistributedEmbedding
from w2v.model import FusedSGNS, SkipGramNS
from w2v.strategies.base import Loop, Progress, Strategy, check_loss
from w2v.strategies.cpu_kernel import CpuKernel
from w2v.strategies.ranks import Ranks
from w2v.strategies.replicas import Replicas, cores_per_process, sharded_tables
from w2v.strategies.threads import Threads

__all__ = [
    "Loop", "Progress", "Strategy", "check_loss", "choose", "resolve", "build", "sharded_tables", "GPU_DEFAULTS",
    "CPU_DEFAULTS",
]


def _triton_unavailable(model: SkipGramNS):
    try:
        from w2v import triton_step
    except ImportError as e:  # pragma: no cover - the module itself imports without triton
        return str(e)
    return triton_step.unavailable(model)


def choose(cfg, model: SkipGramNS, device, world_size: int = 1) -> str:
    """The strategy for this run: ``"cpu-kernel"``, ``"threads"``, ``"ranks"`` or ``"triton"``.

    Over several processes, ``"ranks"`` when the tables are spread over them
    (:class:`~w2v.embedding.DistributedEmbedding`), else the step each replica runs.

    Raises:
        ValueError: ``train.kernel`` asks for a step that cannot run here (the message names the fix).
    """
    device = torch.device(device)
    kernel = cfg.kernel
    if world_size > 1 and isinstance(model.input, DistributedEmbedding):
        if kernel in ("fused", "triton"):
            raise ValueError(
                f"train.kernel={kernel} runs on whole tables; with tables sharded over the processes "
                "(train.distributed=sharded) use train.kernel=auto or torch"
            )
        return "ranks"
    if device.type == "cuda":
        if kernel == "fused":
            raise ValueError("train.kernel=fused is the CPU kernel; use train.kernel=auto or triton on a GPU")
        if kernel == "torch":
            return "threads"
        why = _triton_unavailable(model)
        if why is None:
            return "triton"
        if kernel == "triton":
            raise ValueError(f"train.kernel=triton, but {why}; use train.kernel=auto or torch")
        return "threads"
    if kernel == "triton":  # CPU tensors: Triton's interpreter, for tests
        why = _triton_unavailable(model)
        if why is not None:
            raise ValueError(f"train.kernel=triton, but {why}; use train.kernel=auto on the CPU")
        return "triton"
    plain = cfg.hot_rows in ("sum", "auto") and cfg.sub_batch is None
    if kernel == "torch" or not plain:  # the kernel applies the plain sum only
        return "threads"
    why = FusedSGNS.unsupported(model)
    if why and kernel == "fused":
        raise ValueError(f"train.kernel=fused, but {why}; use train.kernel=auto or torch")
    return "threads" if why else "cpu-kernel"


def resolve(cfg, kind: str, device, replicas: bool = False) -> TrainConfig:
    """A copy of ``cfg`` (a :class:`TrainConfig` or a ``DictConfig``) with ``auto`` settings filled in for ``kind``.

    Replicas (``replicas``) take the CPU's chunks on a GPU too: a round is one chunk per
    rank, and the most frequent words' rows merge once a round (docs/benchmarks.md).
    """
    values = {f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}
    defaults = GPU_DEFAULTS if kind == "triton" else CPU_DEFAULTS
    if values["batch_size"] is None:
        values["batch_size"] = defaults["batch_size"]
    if values["hot_rows"] == "auto":
        values["hot_rows"] = "sum" if values["hogwild"] else defaults["hot_rows"]
    on_gpu = kind == "triton" and torch.device(device).type == "cuda"
    if values["chunk_tokens"] is None:
        values["chunk_tokens"] = defaults["chunk_tokens"] if on_gpu and not replicas else CPU_DEFAULTS["chunk_tokens"]
    if values["merge_every_words"] is None:
        values["merge_every_words"] = defaults["merge_every_words"] if on_gpu else CPU_DEFAULTS["merge_every_words"]
    if values["batch_size"] % values["shared_negatives"]:
        raise ValueError(
            f"train.batch_size={values['batch_size']} must be a multiple of "
            f"train.shared_negatives={values['shared_negatives']}"
        )
    return TrainConfig(**values)


def build(kind: str, model: SkipGramNS, plan: ChunkPlan, rank: int = 0, world_size: int = 1) -> Strategy:
    """Make the strategy ``kind`` for ``model`` over ``plan`` (whose config is resolved).

    Over several processes, any ``kind`` but ``"ranks"`` runs on each replica.
    """
    if kind == "ranks":
        return Ranks(model, plan, rank, world_size)
    local = _local(kind, model, plan)
    return Replicas(model, plan, local, rank, world_size) if world_size > 1 else local


def _local(kind: str, model: SkipGramNS, plan: ChunkPlan) -> Strategy:
    cfg = plan.cfg
    if kind == "triton":
        from w2v.strategies.device import Triton  # imports Triton's runtime

        return Triton(model, plan, mode="hogwild" if cfg.hogwild else "sync")
    workers = cfg.workers or cores_per_process()  # 0: this process's share of the cores
    if kind == "cpu-kernel":
        if not cfg.deterministic:  # no barriers: each thread trains its own chunks
            return Threads(model, plan, workers, kernel=True)
        return CpuKernel(model, plan, workers)
    return Threads(model, plan, workers if plan.device.type == "cpu" else 1)
