"""The package's imports flow one way (see STYLE: config -> ... -> train)."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

import w2v

PACKAGE = Path(__file__).resolve().parent.parent / "w2v"

# A module may import from its own layer's group only where noted, else from lower layers.
LAYERS = {
    "config": 0,
    "safefile": 0,
    "corpus": 1,
    "vocab": 1,
    "parallel": 1,
    "budget": 1,
    "files": 1,
    "runlock": 1,
    "sampling": 2,
    "batching": 2,
    "device_pairs": 3,  # sampling and batching on the device, without host syncs
    "embedding": 3,
    "kernel": 3,
    "triton_kernels": 3,
    "model": 4,
    "state": 4,
    "stopping": 4,
    "chunks": 5,
    "triton_step": 5,
    "checkpoint": 5,
    "replica_sync": 5,
    "strategies": 6,
    "trainer": 7,
    "formats": 8,
    "vectors": 8,
    "evaluate": 8,
    "query": 8,
    "cli": 8,
    "overrides": 9,
    "train": 10,
}
SAME_LAYER_OK = {8}  # the vectors side is one group of small modules


def w2v_imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                yield node.module.split(".")[0]
            elif node.level:
                yield from (a.name for a in node.names)
            elif node.module and node.module.startswith("w2v."):
                yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("w2v."):
                    yield a.name.split(".")[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py") or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    name = module_name(path)
    assert name in LAYERS, f"{name} has no place in the layer map; add it to LAYERS"
    for target in w2v_imports(path):
        if target == name:
            continue
        assert target in LAYERS, f"{name} imports unknown module {target}"
        lower = LAYERS[target] < LAYERS[name]
        same = LAYERS[target] == LAYERS[name] and LAYERS[name] in SAME_LAYER_OK
        assert lower or same, f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]})"


def test_only_the_command_line_knows_hydra():
    # train, and overrides which checks train's command line before Hydra runs; config
    # registers the schemas when train asks.
    for path in MODULES:
        if module_name(path) in ("train", "overrides", "config"):
            continue
        assert "hydra" not in {n.split(".")[0] for n in _imported(path)}, path


def _imported(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module


def test_gpu_step_imports_without_triton(monkeypatch):
    """triton is optional: w2v.triton_kernels and w2v.triton_step import without it; the step says why it cannot run."""
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    kernels = _probe("triton_kernels")
    assert kernels.triton is None and not kernels.interpreted()
    # The step must find these kernels, not the ones an earlier test imported with triton.
    monkeypatch.setitem(sys.modules, "w2v.triton_kernels", kernels)
    monkeypatch.setattr(w2v, "triton_kernels", kernels, raising=False)
    module = _probe("triton_step")
    assert "triton is not installed" in module.unavailable("cuda")
    with pytest.raises(RuntimeError, match="triton is not installed"):
        module.TritonSGNS(None, 8, 8, 1)


def _probe(name: str):
    """A fresh copy of module ``name`` of the package, under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"w2v._{name}_probe", PACKAGE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
