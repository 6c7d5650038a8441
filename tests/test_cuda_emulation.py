"""The GPU's pruned pass, run on the CPU.

``tests/cuda_emulation/cuda_emu.h`` emulates the CUDA thread model (one OS thread
per CUDA thread, a block at a time, ``__syncthreads`` and the warp shuffles and
ballots through barriers) and ``cuda_runtime.h`` there the runtime calls on host
memory. ``prune_kernels_check.cpp`` runs the kernels of ``cuda/prune_kernels.cuh``
as written and checks each one's output against a direct computation on the host
(projections, references, the ordered and capped candidate lists, the pruned
rows' states against the whole float64 sum, the gather and scatter of the rows
sent dense); ``prune_pass_check.cpp`` runs the whole pass of
``cuda/prune_cuda.cu`` (each ``k<<<grid, block>>>(...)`` rewritten here as
``launch(grid, block, k, ...)``) over a ``DeviceMixture`` of
``cuda/mixture_cuda.cu`` and checks every row's state, with the rows in one
batch and in batches of 8. They need a C++20
compiler, which building the wheel needs anyway, and no GPU. What they cannot
check, a device must: the real launches, the memory model, the speed
(tests/test_device.py, bench/gpu.py).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emulation"
LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(", re.S)


def _build_and_run(source: str, tmp_path: Path, *flags: str) -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine")
    exe = tmp_path / (Path(source).stem + str(len(flags)))
    build = subprocess.run([cxx, "-std=c++20", "-O2", "-pthread", *flags, f"-I{tmp_path}", f"-I{EMU}",
                            f"-I{ROOT / 'cuda'}", f"-I{ROOT / 'cpp' / 'include'}", str(EMU / source), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.rstrip().endswith("all checks passed"), \
        (run.stdout[-4000:], run.stderr[-2000:])
    return run.stdout


def test_pruning_kernels_match_a_direct_computation(tmp_path):
    out = _build_and_run("prune_kernels_check.cpp", tmp_path)
    cases = [line for line in out.splitlines() if " rows checked" in line]
    assert len(cases) == 4
    for line in cases:  # each case had rows of both kinds (pruned and sent dense)
        assert " 0 rows checked" not in line and " 0 dense rows" not in line, line


def test_pruned_pass_matches_the_whole_sum(tmp_path):
    src = (ROOT / "cuda" / "prune_cuda.cu").read_text()
    gen, launches = LAUNCH.subn(lambda m: f"launch({m.group(2)}, {m.group(1)}, ", src)
    assert launches >= 6 and "<<<" not in gen
    (tmp_path / "prune_cuda_gen.cu").write_text(gen)
    whole = _build_and_run("prune_pass_check.cpp", tmp_path)
    assert len([line for line in whole.splitlines() if " distances computed" in line]) == 2
    # The rows a few at a time (lists limited to 100 kB: batches of 8 rows): the same routes and
    # counts, every state checked again.
    batched = _build_and_run("prune_pass_check.cpp", tmp_path, "-DLEDKDE_PRUNE_LIST_BYTES=100000")
    assert batched == whole
