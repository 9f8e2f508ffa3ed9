"""What a run's settings will allocate, estimated before anything is allocated.

Legal values can ask for more memory than a machine has: ``train.negatives=100000`` draws
a ``(pairs / shared_negatives) x 100000`` table of negatives for every chunk and grew to
24 GB before the kernel killed it. :func:`check_run` adds up the run's large buffers from
the settings alone (the vocabulary size too, once it is known), compares them with the
memory there is, and refuses a run that cannot fit with one line naming the key to lower
and the largest value that fits.

The estimate is an upper bound on the big buffers (what the code sizes them for), not a
profile: it counts a chunk as ``2 * window * chunk_tokens`` pairs (every window at its
widest, nothing subsampled) and leaves out what does not grow with a setting.

>>> plan = Plan(dim=100, window=5, negatives=5, batch_size=4096, shared_negatives=32, chunk_tokens=65536)
>>> round(sum(b for b, _ in estimate(plan).values()) / 2**20)  # MiB, the vocabulary aside
33
>>> print(refusal(dataclasses.replace(plan, negatives=100000), {"host": 16 * 2**30}))  # doctest: +ELLIPSIS
train.negatives=100000 needs up to 75.7 GiB of memory (negatives 62.9 GiB, ...) but 16.0 GiB is available; at most train.negatives=21118 fits with the other settings
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .config import CPU_DEFAULTS, GPU_DEFAULTS

# The settings that size a buffer: the Plan field, the config key, its default (the
# setting that is furthest above its default is the one a refusal names).
KEYS = {
    "negatives": ("train.negatives", 5),
    "window": ("train.window", 5),
    "batch_size": ("train.batch_size", 4096),
    "sub_batch": ("train.sub_batch", 16384),
    "dim": ("model.dim", 100),
    "chunk_tokens": ("train.chunk_tokens", 65536),
}
PARTS = {
    "pairs": "window pairs",
    "negatives": "negatives",
    "step": "step buffers",
    "tables": "embedding tables",
    "merge": "the replicas' merge base",
    "corpus": "token stream",
    "export": "copies for evaluation and export",
}


@dataclass(frozen=True)
class Plan:
    """The numbers that size a run's buffers.

    Args:
        dim, window, negatives, batch_size, shared_negatives, chunk_tokens, sub_batch: the
            settings of the same names.
        hot_rows: a hot-row rule other than ``sum`` (two per-row load arrays per step).
        chunks: chunks whose pairs are in memory at once.
        steps: step buffers in memory at once (one per worker).
        vocab_size: rows of each table; 0 while the vocabulary is not built.
        corpus_tokens: tokens copied to the GPU (0 on the CPU, where they stay on disk).
        world: processes of the run.
        gpu: whether the tables and the step live on a GPU.
        replicas: every process holds both whole tables and a copy to merge from
            (``train.distributed=replicas``), else the rows are spread over the processes.
    """

    dim: int
    window: int
    negatives: int
    batch_size: int
    shared_negatives: int
    chunk_tokens: int
    sub_batch: Optional[int] = None
    hot_rows: bool = False
    chunks: int = 1
    steps: int = 1
    vocab_size: int = 0
    corpus_tokens: int = 0
    world: int = 1
    gpu: bool = False
    replicas: bool = False


def plan_for(cfg, device, world: int = 1, vocab_size: int = 0, corpus_tokens: int = 0, replicas: bool = False) -> Plan:
    """The :class:`Plan` of a run config on ``device`` (a ``torch.device``) over ``world`` processes.

    How many chunks and steps are in memory at once follows :class:`w2v.trainer.Trainer`:
    one of each on a GPU or with tables sharded over processes; with the CPU kernel (the
    plain sum) one step while three chunks are drawn, queued and applied; with the torch
    step one chunk and one step per worker. Replicas (``replicas``) run a single process's
    step on each rank.
    """
    t, gpu = cfg.train, device.type != "cpu"
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    per_process = (os.cpu_count() or 1) // (int(local) if local.isdigit() and int(local) > 0 else 1)
    workers = t.workers or max(per_process, 1)
    sharded = world > 1 and not replicas
    triton = not sharded and (t.kernel == "triton" or (gpu and t.kernel == "auto"))
    defaults = GPU_DEFAULTS if triton and gpu and not (replicas and world > 1) else CPU_DEFAULTS
    batch_size = t.batch_size or (GPU_DEFAULTS if triton else CPU_DEFAULTS)["batch_size"]
    chunk_tokens = t.chunk_tokens or defaults["chunk_tokens"]
    hot_rows = t.hot_rows if t.hot_rows != "auto" else (GPU_DEFAULTS if triton and not t.hogwild else CPU_DEFAULTS)["hot_rows"]
    kernel = t.kernel != "torch" and hot_rows == "sum" and t.sub_batch is None
    if triton:  # two sets of chunk buffers: one drawn while the other trains
        chunks, steps = 2, 1
    elif gpu or sharded:
        chunks, steps = 1, 1
    elif kernel:
        chunks, steps = 3, 1
    else:
        chunks, steps = workers, workers
    return Plan(
        dim=cfg.model.dim, window=t.window, negatives=t.negatives, batch_size=batch_size,
        shared_negatives=t.shared_negatives, chunk_tokens=chunk_tokens, sub_batch=t.sub_batch,
        hot_rows=hot_rows != "sum", chunks=chunks, steps=steps, vocab_size=vocab_size,
        corpus_tokens=corpus_tokens if gpu else 0, world=world, gpu=gpu, replicas=replicas and world > 1,
    )


def estimate(plan: Plan) -> Dict[str, Tuple[int, str]]:
    """Bytes of each large part of a run and where it lives: ``{part: (bytes, "host" | "device")}``.

    On the CPU, "device" memory is host memory too (:func:`check_run` adds them up).
    """
    d, k, g, c, v = plan.dim, plan.negatives, plan.shared_negatives, plan.chunk_tokens, plan.vocab_size
    pairs = 2 * min(plan.window, c - 1) * c  # the buffers' capacity (w2v.kernel.window_pairs)
    groups = pairs // g + 1  # rows of negatives drawn per chunk (w2v.trainer._chunk_pairs)
    # Ids, draws, masks and the kept tokens (~40 B a token); centers and contexts, int64,
    # twice while the torch path concatenates; each negative is an int64 kept and ~25 B
    # of draws while it is made (w2v.sampling.NoiseSampler.sample).
    chunk_pairs = 40 * c + 32 * pairs
    chunk_negatives = 33 * groups * k
    b = plan.sub_batch if plan.sub_batch and plan.sub_batch < plan.batch_size else plan.batch_size
    rows = b + b // g * k  # output rows of a step: targets and negatives
    # w2v.model.SGNSStep: x and dx (B, D), out_rows and out_grad (B + M K, D), their ids,
    # the scores (B, K); the C kernel's buffers are smaller (w2v/csrc/sgns.c).
    step = 4 * d * (2 * b + 2 * rows) + 8 * rows + 8 * b * k + (8 * v + 24 * rows if plan.hot_rows else 0)
    local_rows = v if plan.replicas else -(-v // plan.world)
    tables = 2 * 4 * local_rows * d + 64 * v  # both tables, the noise and subsampling arrays
    # Replicas: both tables at the last merge, and on one machine two shared-memory slots
    # and a sum of up to 256 MiB (w2v.replica_sync.SHARED_BYTES).
    merge = 2 * 4 * v * d + 3 * min(256 << 20, 2 * 4 * v * d) if plan.replicas else 0
    # The unit-normalised table for queries; a host copy of both tables from a GPU or
    # gathered from the ranks (w2v.run_eval: whole_tables, word_vectors).
    copies = 1 if not plan.gpu and (plan.world == 1 or plan.replicas) else 3
    return {
        "pairs": (plan.chunks * chunk_pairs, "device"),
        "negatives": (plan.chunks * chunk_negatives, "device"),
        "step": (plan.steps * step, "device"),
        "tables": (tables, "device"),
        "merge": (merge, "device"),
        "corpus": (4 * plan.corpus_tokens, "device"),
        "export": (4 * v * d * copies, "host"),
    }


def needs(plan: Plan) -> Dict[str, int]:
    """Bytes needed in each memory: ``{"host": ..., "device": ...}`` (all "host" on the CPU)."""
    total = {"host": 0, "device": 0}
    for size, place in estimate(plan).values():
        total["device" if plan.gpu and place == "device" else "host"] += size
    return total


def refusal(plan: Plan, available: Dict[str, int], device_name: str = "GPU") -> Optional[str]:
    """Why ``plan`` cannot fit in ``available`` bytes (``{"host": ..., "device": ...}``), or ``None``.

    The message names the setting furthest above its default that alone can make the run
    fit, with the largest value that fits.
    """
    for place, need in needs(plan).items():
        room = available.get(place)
        if room is None or need <= room:
            continue
        fits = lambda p: needs(p)[place] <= room  # noqa: E731
        where = "memory" if place == "host" else f"{device_name} memory"
        parts = sorted(((size, PARTS[name]) for name, (size, at) in estimate(plan).items()
                        if (at == place or not plan.gpu) and size), reverse=True)
        spent = ", ".join(f"{label} {_size(size)}" for size, label in parts[:3])
        head = f"needs up to {_size(need)} of {where} ({spent}) but {_size(room)} is available"
        fix = _culprit(plan, fits)
        if fix is None:
            if plan.vocab_size:
                return (f"the vocabulary of {plan.vocab_size:,} words with model.dim={plan.dim} {head}; raise "
                        "data.min_count or set data.max_vocab_size, or lower model.dim")
            return f"these settings {head}; lower model.dim, train.batch_size, train.window or train.negatives"
        key, value, best = fix
        tail = ""
        if plan.vocab_size and fits(dataclasses.replace(plan, vocab_size=0)):
            tail = ", or keep fewer words (data.min_count, data.max_vocab_size)"
        return f"{key}={value} {head}; at most {key}={best} fits with the other settings{tail}"
    return None


def _culprit(plan: Plan, fits) -> Optional[Tuple[str, int, int]]:
    """``(key, value, largest value that fits)`` for the setting furthest above its default that can fix it."""
    found = []
    for field, (key, default) in KEYS.items():
        value = getattr(plan, field)
        if value is None:
            continue
        step = plan.shared_negatives if field in ("batch_size", "sub_batch") else 1
        low = 2 if field == "chunk_tokens" else step
        try_value = lambda x: fits(dataclasses.replace(plan, **{field: x}))  # noqa: E731
        if value <= low or not try_value(low):
            continue
        lo, hi = low // step, value // step  # lo * step fits, hi * step does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if try_value(mid * step) else (lo, mid)
        found.append((value / default, key, value, lo * step))
    if not found:
        return None
    _, key, value, best = max(found)
    return key, value, best


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


# --- what there is -----------------------------------------------------------------------------


def host_available() -> int:
    """Bytes this process can still allocate: ``MemAvailable``, bounded by a cgroup and ``RLIMIT_AS``."""
    room = _meminfo_available()
    if room is None:  # not Linux
        try:
            room = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            room = 1 << 62
    for limit in (_cgroup_room(), _address_space_room()):
        if limit is not None:
            room = min(room, limit)
    return max(room, 0)


def device_available(device) -> Optional[int]:
    """Free bytes on a CUDA ``device`` (``None`` for the CPU)."""
    if device.type != "cuda":
        return None
    import torch

    return int(torch.cuda.mem_get_info(device)[0])


def available(device) -> Dict[str, int]:
    """Bytes this process may use: ``{"host": ...}``, and ``"device"`` on a GPU."""
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")  # torchrun's processes on this machine share its memory
    room = {"host": host_available() // (int(local) if local.isdigit() and int(local) > 0 else 1)}
    if device.type != "cpu":
        room["device"] = device_available(device)
    return room


def check_run(cfg, device, world: int = 1, vocab_size: int = 0, corpus_tokens: int = 0, replicas: bool = False) -> None:
    """Raise ``ValueError`` naming the key to lower when the run cannot fit in memory.

    Called twice by :func:`w2v.pipeline.train`: once the device is known (the chunks and the
    step), and once the vocabulary is (the tables too, whole on every rank with ``replicas``).
    """
    plan = plan_for(cfg, device, world, vocab_size, corpus_tokens, replicas)
    problem = refusal(plan, available(device), str(device))
    if problem and plan.replicas and plan.vocab_size:
        problem += "; or spread the tables over the processes with train.distributed=sharded"
    if problem:
        raise ValueError(problem)


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> Optional[int]:
    """What a container's memory limit leaves (cgroup v2, else v1); ``None`` without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit():
            return int(limit) - usage
        return None
    return None


def _address_space_room() -> Optional[int]:
    """What ``ulimit -v`` (``RLIMIT_AS``) leaves of this process's address space."""
    try:
        import resource
    except ImportError:  # not Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        size = 0
    return soft - size
