"""The kernels of the GPU's pruned pass, run on the CPU.

``tests/cuda_emulation/cuda_emu.h`` emulates the CUDA thread model (one OS thread
per CUDA thread, a block at a time, ``__syncthreads`` and the warp shuffles and
ballots through barriers); ``prune_kernels_check.cpp`` runs the kernels of
``cuda/prune_kernels.cuh`` as written under it and checks each one's output
against a direct computation on the host (projections, references, the ordered
and capped candidate lists, the pruned rows' states against the whole float64
sum, the gather and scatter of the rows sent dense). It needs a C++20 compiler,
which building the wheel needs anyway; no GPU. What it cannot check, a device
must: the launches and transfers of prune_cuda.cu and the memory model
(tests/test_device.py).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pruning_kernels_match_a_direct_computation(tmp_path):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine")
    exe = tmp_path / "prune_kernels_check"
    build = subprocess.run([cxx, "-std=c++20", "-O2", "-pthread", f"-I{ROOT / 'cpp' / 'include'}",
                            f"-I{ROOT / 'cuda'}", f"-I{ROOT / 'tests' / 'cuda_emulation'}",
                            str(ROOT / "tests" / "cuda_emulation" / "prune_kernels_check.cpp"), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.rstrip().endswith("all checks passed"), \
        (run.stdout[-4000:], run.stderr[-2000:])
    # Each case checked rows of both kinds (pruned and sent dense).
    cases = [line for line in run.stdout.splitlines() if " rows checked" in line]
    assert len(cases) == 4
    for line in cases:
        assert " 0 rows checked" not in line and " 0 dense rows" not in line, line
