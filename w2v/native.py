"""The C sources of ``w2v/csrc``, compiled on first use and loaded with :mod:`ctypes`.

They are plain C with no torch headers, so building one takes about a second with the
system's C compiler (``$CC``, else ``cc``). The shared libraries are cached under
``$W2V_KERNEL_DIR`` (default ``~/.cache/w2v/kernels``), keyed by the source, the flags, the
compiler and the CPU; :mod:`ctypes` releases the GIL during a call. Where no compiler works,
or with ``W2V_KERNEL=off``, :func:`library` returns ``None`` (and :func:`why_not` says why)
and callers keep their numpy or torch path.

Two sets of flags: :data:`FAST` (``-O3 -march=native`` with reassociation, so dot products
vectorise, but not ``-ffast-math``: NaN and infinities keep their meaning) for the training
step, :data:`EXACT` (every float operation as written, no contraction into FMAs) for code
whose results must be numpy's or torch's bit for bit.
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

CSRC = Path(__file__).with_name("csrc")
FAST = [
    "-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
    "-fno-trapping-math", "-fPIC", "-shared", "-pthread",
]
EXACT = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared", "-pthread"]

_lock = threading.Lock()
_loaded: Dict[str, Tuple[Optional[ctypes.CDLL], Optional[str]]] = {}  # name -> (library, why not)


def disabled() -> bool:
    """Whether ``W2V_KERNEL`` turns the compiled code off (``0``, ``off`` or ``torch``)."""
    return os.environ.get("W2V_KERNEL", "").lower() in ("0", "off", "torch")


def library(name: str, flags: Optional[List[str]] = None) -> Optional[ctypes.CDLL]:
    """``csrc/NAME.c`` built (with :data:`EXACT` unless ``flags`` are given) and loaded, once per process."""
    with _lock:
        if name not in _loaded:
            if disabled():
                _loaded[name] = (None, "disabled by W2V_KERNEL")
            else:
                try:
                    _loaded[name] = (ctypes.CDLL(str(build(CSRC / f"{name}.c", flags or EXACT))), None)
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    _loaded[name] = (None, f"could not build {name}.c with {compiler()!r}: {e}")
        return _loaded[name][0]


def why_not(name: str) -> Optional[str]:
    """Why :func:`library` returned ``None`` for ``name`` (``None`` when it is loaded, or not tried yet)."""
    return _loaded.get(name, (None, None))[1]


def compiler() -> str:
    return os.environ.get("CC", "cc")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    return Path(os.environ.get("W2V_KERNEL_DIR", Path.home() / ".cache" / "w2v" / "kernels"))


def build(source: Path, flags: List[str]) -> Path:
    """The shared library of ``source`` built with ``flags``, from the cache when it is there.

    Raises:
        RuntimeError: the compiler failed (its last line of errors); OSError: it is not there.
    """
    cc = compiler()
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
