"""The fused Triton kernels: their launch constants, the interpreter, and a compile for a GPU without one."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

pytest.importorskip("triton")

from w2v.triton_kernels import interpreted, launch_constants  # noqa: E402


def test_launch_constants_fit_a_program_in_registers():
    consts = launch_constants(300, 32, 5, 300, 300, 304)
    assert (consts["D"], consts["G"], consts["K"], consts["STRIDE_GRAD"]) == (300, 32, 5, 304)
    assert (consts["BLOCK_G"], consts["BLOCK_K"], consts["BLOCK_D"], consts["num_warps"]) == (32, 8, 64, 4)
    small = launch_constants(3, 1, 0, 3, 3, 16)
    assert (small["BLOCK_G"], small["BLOCK_K"], small["BLOCK_D"], small["num_warps"]) == (1, 1, 4, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the kernels are compiled")
def test_kernels_run_in_the_interpreter_without_a_gpu():
    assert interpreted()  # tests/conftest.py set TRITON_INTERPRET=1 before triton was imported


COMPILE = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from w2v import triton_kernels as tk

F32 = {"win", "wout", "lrs", "losses", "dx_buf", "dout_buf", "load_in", "load_out"}
I64 = {"rows_in", "rows_out", "rows_neg", "count_ptr", "batch_ptr"}
dim, group, k = (int(a) for a in sys.argv[1:])
consts = tk.launch_constants(dim, group, k, dim, dim, -(-dim // 16) * 16)
warps = consts.pop("num_warps")
variants = [(tk.sgns_kernel, dict(HOGWILD=h, TRUST=t)) for h, t in ((False, False), (False, True), (True, False))]
variants += [(tk.apply_kernel, dict(TRUST=False)), (tk.apply_kernel, dict(TRUST=True)), (tk.reset_kernel, {})]
for fn, flags in variants:
    fixed = {n: v for n, v in {**consts, **flags}.items() if n in fn.arg_names}
    sig = {n: "constexpr" if n in fixed else "*fp32" if n in F32 else "*i64" if n in I64 else "fp32" if n == "trust" else "i32"
           for n in fn.arg_names}
    triton.compile(ASTSource(fn, sig, constexprs=fixed), target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps))
"""


@pytest.mark.slow
def test_kernels_compile_for_a_gpu(tmp_path):
    """The interpreter runs kernels as Python; compiling them for sm_90 (no GPU needed) checks what it cannot."""
    pytest.importorskip("triton.backends.nvidia")
    env = {name: v for name, v in os.environ.items() if name != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", COMPILE, "300", "32", "5"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
