"""A dispatch mode that records the ops a piece of code runs and flags those that wait on the device.

On a GPU, an op whose result the host must read (``.item()``, ``bool(t)``, ``int(t)``)
or whose output size depends on the data (``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``, ``repeat_interleave`` without ``output_size``) stalls the
host until the device has caught up. Recorded on CPU tensors, the same ops show up by
name, so a CPU test can tell that the code would not wait on a GPU.

What the dispatcher cannot show on CPU: ``tolist()`` and ``numpy()`` read CPU memory
directly; on a GPU they go through a copy to the host, which this mode flags.

>>> with HostSyncCounter() as guard:
...     t = torch.arange(4)
...     _ = int(t.sum()), t[t > 1]
>>> guard.syncs
['aten._local_scalar_dense', 'aten.index.Tensor(bool)']
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Ops whose output the host needs before it can go on (by overload packet name).
SYNCING = {
    "aten._local_scalar_dense",  # .item(), int(), float(), bool()
    "aten.is_nonzero",
    "aten.equal",
    "aten.nonzero",
    "aten.argwhere",
    "aten.masked_select",
    "aten._unique",
    "aten._unique2",
    "aten.unique_dim",
    "aten.unique_consecutive",
    "aten.unique_dim_consecutive",
}
_BOOL = (torch.bool, torch.uint8)


def _bool_indices(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in _BOOL for i in indices or ())


class HostSyncCounter(TorchDispatchMode):
    """Records every aten op run inside it; :attr:`syncs` lists those that would sync a GPU.

    Attributes:
        names: every op seen, in order (overload packet names like ``"aten.cumsum"``).
        syncs: the ones that make the host wait, in order; boolean-mask indexing shows as
            ``"aten.index.Tensor(bool)"`` (or ``index_put``), ``repeat_interleave`` without
            ``output_size`` as ``"aten.repeat_interleave(no output_size)"``, a copy from a GPU
            to the host as ``"<op>(device to host)"``.
        shapes: ``(name, output shapes)`` of every op: two runs on data of the same shapes
            give the same list when no output size depends on the data.
        allocating: the ops that return new tensors (neither a view nor writing into an
            argument, as ``out=`` and in-place ops do): code that reuses its buffers has none.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: List[str] = []
        self.syncs: List[str] = []
        self.shapes: List[Tuple[str, tuple]] = []
        self.allocating: List[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        self.names.append(name)
        flagged = self._syncs(func, name, args, kwargs)
        if flagged:
            self.syncs.append(flagged)
        if not (func.is_view or func._schema.is_mutable):
            self.allocating.append(name)
        out = func(*args, **kwargs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.shapes.append((name, tuple(tuple(t.shape) for t in outputs)))
        return out

    @staticmethod
    def _syncs(func, name: str, args, kwargs):
        if name in SYNCING:
            return name
        if name in ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_") and _bool_indices(args):
            return f"{func}(bool)"
        # Tensor repeats: the output's length is their sum, unless output_size says it.
        if func._overloadname in ("Tensor", "self_Tensor") and name == "aten.repeat_interleave" and kwargs.get("output_size") is None:
            return "aten.repeat_interleave(no output_size)"
        if name in ("aten._to_copy", "aten.copy_", "aten.to", "aten._copy_from"):
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            device = kwargs.get("device")
            to_host = (name == "aten.copy_" and tensors and tensors[0].device.type == "cpu") or (
                device is not None and torch.device(device).type == "cpu"
            )
            non_blocking = kwargs.get("non_blocking", args[2] if name == "aten.copy_" and len(args) > 2 else False)
            if name == "aten.copy_" and non_blocking and tensors and tensors[0].is_pinned():
                return None  # into pinned memory without waiting: read later, after an event
            if to_host and any(t.device.type != "cpu" for t in tensors):
                return f"{name}(device to host)"
        return None
