"""The compiled CPU kernels (``w2v/csrc``), built on first use: the training step
(``sgns.c``, :func:`load`) and the analogy search (``cosadd.c``, :func:`library`).

The kernels are plain C with no torch headers, so building one takes about a second with
the system's C compiler (``$CC``, else ``cc``). The shared libraries are cached under
``$W2V_KERNEL_DIR`` (default ``~/.cache/w2v/kernels``), keyed by the source, the flags,
the compiler and the CPU, and loaded with :mod:`ctypes`, which releases the GIL during
the call. When no compiler works (or ``W2V_KERNEL=off``), :func:`load` returns ``None`` and
:func:`unavailable` says why; callers fall back to torch.

Flags: ``-O3 -march=native``; the training step adds reassociation (so dot products
vectorise), but not ``-ffast-math``: NaN and infinities keep their meaning, so a diverging
run is still seen. The analogy search keeps every float operation as written
(:data:`EXACT`), so its scores are torch's bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

CSRC = Path(__file__).with_name("csrc")
SOURCE = CSRC / "sgns.c"
FLAGS = [
    "-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
    "-fno-trapping-math", "-fPIC", "-shared", "-pthread",
]
EXACT = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared", "-pthread"]

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_why: Optional[str] = None
_tried = False
_others: Dict[str, Tuple[Optional[ctypes.CDLL], Optional[str]]] = {}  # name -> (library, why not)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str:
    return os.environ.get("CC", "cc")


def _cache_dir() -> Path:
    return Path(os.environ.get("W2V_KERNEL_DIR", Path.home() / ".cache" / "w2v" / "kernels"))


def _build(source: Optional[Path] = None, flags: Optional[List[str]] = None) -> Path:
    source, flags = source or SOURCE, flags or FLAGS
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256(
        "\0".join([source.read_text(), " ".join(flags), cc, version, platform.machine(), _cpu_name()]).encode()
    ).hexdigest()[:16]
    out = _cache_dir() / f"{source.stem}-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        done = subprocess.run([cc, *flags, str(source), "-o", str(tmp), "-lm"], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"{cc} failed")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load() -> Optional[ctypes.CDLL]:
    """The kernel library, built if needed; ``None`` when it cannot be (see :func:`unavailable`)."""
    global _lib, _why, _tried
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("W2V_KERNEL", "").lower() in ("0", "off", "torch"):
            _why = "disabled by W2V_KERNEL"
            return None
        try:
            lib = ctypes.CDLL(str(_build()))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _why = f"could not build {SOURCE.name} with {_compiler()!r}: {e}"
            return None
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.w2v_sgns_train.argtypes = [p, p, ctypes.c_int, p, p, p, i64, ctypes.c_int, ctypes.c_int, ctypes.c_int, p, p, p, ctypes.c_int, p]
        lib.w2v_sgns_train.restype = ctypes.c_int
        lib.w2v_window_pairs.argtypes = [p, p, i64, ctypes.c_int, p, p]
        lib.w2v_window_pairs.restype = i64
        _lib = lib
        return lib


def unavailable() -> Optional[str]:
    """Why :func:`load` returned ``None``; ``None`` when the kernel is there."""
    load()
    return _why


def library(name: str) -> Optional[ctypes.CDLL]:
    """``csrc/NAME.c`` built with :data:`EXACT` and loaded; ``None`` when it cannot be (or ``W2V_KERNEL=off``)."""
    with _lock:
        if name not in _others:
            if os.environ.get("W2V_KERNEL", "").lower() in ("0", "off", "torch"):
                _others[name] = (None, "disabled by W2V_KERNEL")
            else:
                try:
                    _others[name] = (ctypes.CDLL(str(_build(CSRC / f"{name}.c", EXACT))), None)
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    _others[name] = (None, f"could not build {name}.c with {_compiler()!r}: {e}")
        return _others[name][0]


PHASES = ("gradients", "updates")


def sgns_train(
    win, wout, inputs, targets, negatives, group: int, batch_size: int, lrs, measure, threads: int,
    phase_seconds: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Run the fused step over consecutive batches of pairs (see ``csrc/sgns.c``).

    Args:
        win, wout: the input and output tables as contiguous float32 CPU tensors ``(R, D)``,
            updated in place.
        inputs, targets: flat row indices of each pair's input (context) and output (center)
            rows, int64 ``(P,)`` with ``P`` a multiple of ``group``.
        negatives: flat rows of each group's negatives, int64 ``(P // group, K)``.
        group: pairs sharing one negative set; batch_size: pairs per batch (a multiple of it).
        lrs: the learning rate of each batch, ``(ceil(P / batch_size),)``.
        measure: whether to compute each batch's loss, same length.
        threads: threads the kernel runs on (the result does not depend on it).
        phase_seconds: optional float64 ``(2,)`` array to which the wall time of each
            phase (:data:`PHASES`: reading rows, scores and gradients; writing the rows)
            is added, waits for the slowest thread included.

    Returns:
        the summed loss of each batch (``nan`` where not measured), float64.
    """
    lib = load()
    if lib is None:
        raise RuntimeError(f"the CPU kernel is unavailable: {_why}")
    n = inputs.numel()
    nb = -(-n // batch_size)
    lrs = np.ascontiguousarray(lrs, dtype=np.float32)
    measure = np.ascontiguousarray(measure, dtype=np.uint8)
    if n % group or batch_size % group or len(lrs) < nb or len(measure) < nb:
        raise ValueError("pairs and batch size must be multiples of the group, with one lr and flag per batch")
    for t in (win, wout):
        if t.dtype != torch.float32 or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError("the kernel needs contiguous float32 CPU tables")
    if win.shape[1] != wout.shape[1]:
        raise ValueError("input and output tables differ in width")
    for t in (inputs, targets, negatives):
        if t.dtype != torch.int64 or not t.is_contiguous():
            raise ValueError("row indices must be contiguous int64 tensors")
    losses = np.full(max(nb, 1), np.nan)
    if phase_seconds is not None and (phase_seconds.dtype != np.float64 or phase_seconds.shape != (len(PHASES),)):
        raise ValueError(f"phase_seconds must be a float64 array of shape ({len(PHASES)},)")
    rc = lib.w2v_sgns_train(
        win.data_ptr(), wout.data_ptr(), win.shape[1],
        inputs.data_ptr(), targets.data_ptr(), negatives.data_ptr(),
        n, group, negatives.shape[1] if negatives.dim() == 2 else 0, batch_size,
        lrs.ctypes.data, measure.ctypes.data, losses.ctypes.data, max(1, int(threads)),
        None if phase_seconds is None else phase_seconds.ctypes.data,
    )
    if rc != 0:
        raise MemoryError("the CPU kernel could not allocate its buffers")
    return losses[:nb]


def window_pairs(tokens: torch.Tensor, reach: torch.Tensor, window: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`w2v.batching.window_pairs` in C, for given window reaches: ``(centers, contexts)``.

    Args:
        tokens: int64 CPU ids ``(N,)``; reach: each position's window, int64 ``(N,)``
            (:func:`w2v.batching.window_reach`); window: the largest reach.
    """
    lib = load()
    if lib is None:
        raise RuntimeError(f"the CPU kernel is unavailable: {_why}")
    tokens, reach = tokens.contiguous(), reach.contiguous()
    if tokens.dtype != torch.int64 or reach.dtype != torch.int64 or tokens.device.type != "cpu":
        raise ValueError("tokens and reach must be int64 CPU tensors")
    n = tokens.numel()
    if reach.numel() != n:
        raise ValueError(f"reach has {reach.numel()} entries for {n} tokens")
    capacity = 2 * max(min(window, n - 1), 0) * n
    centers, contexts = torch.empty(capacity, dtype=torch.int64), torch.empty(capacity, dtype=torch.int64)
    count = lib.w2v_window_pairs(tokens.data_ptr(), reach.data_ptr(), n, window, centers.data_ptr(), contexts.data_ptr())
    return centers[:count], contexts[:count]
