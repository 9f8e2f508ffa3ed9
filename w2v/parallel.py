"""The processes of one run: ``torch.distributed`` set-up, agreement, and failed peers.

``torchrun --nproc_per_node=N -m w2v.train`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their environment;
:func:`init_from_env` joins them into one process group (gloo on CPU, NCCL on GPU) with a
timeout, so a rank that hangs makes the others fail within that time instead of waiting
forever. A rank that dies closes its connections, which the others see at their next
collective; :func:`peer_failures` turns what torch raises then into :class:`PeerFailure`,
whose message says what happened and what to do.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Iterator, Optional, Tuple

import torch
import torch.distributed as dist

ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class PeerFailure(RuntimeError):
    """Another rank of the run died or stopped answering."""


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or with its environment variables)."""
    return all(k in os.environ for k in ENV_KEYS)


def rank_and_size() -> Tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Rank 0, or a single process: the one that logs and writes files."""
    return rank_and_size()[0] == 0


def local_device(device: torch.device) -> torch.device:
    """A CUDA device picks this process's GPU (``LOCAL_RANK``) when several processes share a node."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def init_from_env(device: torch.device, timeout_seconds: float) -> Optional[str]:
    """Join the process group ``torchrun`` set up; return the backend, or ``None`` when not launched.

    Raises:
        ValueError: the environment asks for a backend this machine lacks.
    """
    if not launched() or dist.is_initialized():
        return dist.get_backend() if dist.is_initialized() else None
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed; run without torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if not dist.is_nccl_available():
            raise ValueError("train.device is a GPU but this torch has no NCCL; use train.device=cpu (gloo)")
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds))
    return backend


def shutdown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def peer_failures(what: str) -> Iterator[None]:
    """Raise :class:`PeerFailure` when a collective inside fails because another rank is gone."""
    try:
        yield
    except PeerFailure:
        raise
    except (RuntimeError, ConnectionError) as e:
        if not dist.is_initialized() or not _is_peer_error(e):
            raise
        rank, size = rank_and_size()
        first = " ".join(str(e).split())[:200]
        raise PeerFailure(
            f"rank {rank} of {size}: another rank stopped answering while {what} ({first}); "
            "see the first failing rank's log for the cause, then continue from the last checkpoint "
            "with train.resume"
        ) from None


def _is_peer_error(e: BaseException) -> bool:
    text = str(e).lower()
    markers = ("connection", "closed", "timed out", "timeout", "reset by peer", "broken pipe", "nccl", "gloo")
    return isinstance(e, (ConnectionError, getattr(dist, "DistBackendError", ConnectionError))) or any(m in text for m in markers)


def all_reduce(values, op: str = "max", device=None) -> list:
    """Reduce a list of numbers over the ranks (``"max"`` or ``"sum"``): one small collective."""
    if rank_and_size()[1] == 1:
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()
