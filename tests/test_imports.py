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
    "native": 0,  # the C sources of csrc, compiled on first use
    "exiting": 0,  # how the commands end
    "config_rules": 1,  # what each value of a config must be
    "corpus": 1,
    "vocab": 1,
    "parallel": 1,
    "budget": 1,
    "files": 1,
    "tb_events": 1,  # TensorBoard event files: scalars and text
    "runlock": 1,
    "sampling": 2,
    "batching": 2,
    "native_tokens": 2,  # the default tokenizer and its word table, in C
    "encoder": 3,  # text to provisional type ids, in this process or in forked workers
    "token_cache": 4,  # the corpus tokenized once, as rank ids, cached on disk
    "pretokenize": 5,  # a corpus not yet cached, tokenized in a child while the command imports torch
    "device_pairs": 3,  # sampling and batching on the device, without host syncs
    "embedding": 3,
    "kernel": 3,
    "triton_kernels": 3,
    "model": 4,
    "state": 4,
    "stopping": 4,
    "resume": 4,  # whether a run may continue from a checkpoint; checkpoint hands its names out too
    "chunks": 5,
    "triton_step": 5,
    "checkpoint": 5,
    "replica_sync": 5,
    "strategies": 6,
    "trainer": 7,
    "float_text": 8,  # %.8e text of float tables, for the word2vec text format
    "formats": 8,
    "topk": 8,  # the k best rows for many queries, tile by tile
    "vectors": 8,
    "correlation": 1,  # correlations and their p-values, numpy only
    "cosadd": 8,  # many analogy questions answered at once, from their words' products
    "evaluate": 8,
    "query": 8,
    "cli": 8,
    "overrides": 9,
    "projector": 9,  # vectors for TensorBoard's embedding projector
    "monitor": 9,  # what a run shows: its lines, the progress bar, TensorBoard
    "prepare": 9,  # the first stage of a run: corpus, vocabulary, model, where it starts
    "run_folder": 10,  # where a run's files go: the folder it holds, spare folders when full
    "run_eval": 10,  # a run's vectors evaluated between epochs and at the end
    "finish": 11,  # the last stage: tables saved, then evaluation, export, metrics
    "pipeline": 12,  # the whole run as a plain function of a config
    "train": 13,  # the command line
}
SAME_LAYER_OK = {8}  # the vectors side is one group of small modules
# Names that moved up to a module of their own are still handed out by their old home, for
# imports written before the move (`from w2v.corpus import load_corpus`). The old home lists
# them in `_MOVED` and imports the new one inside its module `__getattr__` (PEP 562), so the
# import runs on first use of such a name, never while the package imports: no cycle.
MOVED_UP = {"config": "config_rules", "corpus": "token_cache"}


def w2v_imports(tree: ast.AST):
    """``(node, module)`` for each import of a w2v module in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                yield node, node.module.split(".")[0]
            elif node.level:
                yield from ((node, a.name) for a in node.names)
            elif node.module and node.module.startswith("w2v."):
                yield node, node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("w2v."):
                    yield node, a.name.split(".")[1]


def on_first_use(tree: ast.Module) -> set:
    """The ids of the nodes inside the module-level ``__getattr__``, whose imports run on first use."""
    return {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__" for n in ast.walk(f)}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py") or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    name = module_name(path)
    assert name in LAYERS, f"{name} has no place in the layer map; add it to LAYERS"
    tree = ast.parse(path.read_text())
    lazy = on_first_use(tree)
    for node, target in w2v_imports(tree):
        if target == name:
            continue
        assert target in LAYERS, f"{name} imports unknown module {target}"
        if id(node) in lazy and MOVED_UP.get(name) == target:
            continue  # names handed out by their old home, imported on first use
        lower = LAYERS[target] < LAYERS[name]
        same = LAYERS[target] == LAYERS[name] and LAYERS[name] in SAME_LAYER_OK
        assert lower or same, f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]})"


@pytest.mark.parametrize("old, new", MOVED_UP.items())
def test_moved_names_are_still_importable_from_their_old_home(old, new):
    old_home, new_home = importlib.import_module(f"w2v.{old}"), importlib.import_module(f"w2v.{new}")
    assert old_home._MOVED and LAYERS[new] > LAYERS[old]
    for name in old_home._MOVED:
        assert getattr(old_home, name) is getattr(new_home, name), name
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        old_home.no_such_name


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
