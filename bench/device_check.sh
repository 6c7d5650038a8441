#!/usr/bin/env bash
# One prepared run for a machine that is lent a GPU (the `device` tool, nvidia-h200, 15 minutes of
# device time in all): build ledkde with CUDA there, run the GPU tests and the GPU benchmark, and
# leave every log under $OUT. Python 3.12 there has scikit-build-core, pybind11, numpy, pytest,
# hypothesis, CuPy and PyTorch, but no network: the build dependency scipy-openblas32 travels as a
# wheel. Prepare it here once (the wheels are not committed):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl scipy-openblas32
#
# (tried here without a GPU on 2026-11-29: the build, the import and the test file run; the GPU
# tests skip and the benchmark stops, as they must without a device).
#
# then call the device tool's run with carry [".whl"], timeout_s 560 and the command
# `bash bench/device_check.sh`. It stops each part at its own time limit so that the logs come back
# (at most 8 files come back: machine.txt, build.log, summary.txt, test_device.log, sanitizer.log,
# gpu_quick.log, gpu.log, gpu.json).
set -uo pipefail
OUT=${OUT:-/tmp/ledkde-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi
  nvcc --version | tail -1
  python3 --version
} > "$OUT/machine.txt" 2>&1

site=/tmp/ledkde-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl \
  > "$OUT/build.log" 2>&1 || { echo "no .whl folder carried (see the header)"; exit 2; }
export PYTHONPATH="$site"

# Build (about 2 minutes with 16 cores), CUDA required (ON: a missing nvcc is an error).
timeout 300 python3 -m pip install -q --no-build-isolation --no-deps --target "$site" \
  -Ccmake.define.LEDKDE_CUDA=ON -Cbuild-dir=/tmp/ledkde-build . >> "$OUT/build.log" 2>&1
echo "build: rc=$?" | tee -a "$OUT/summary.txt"
python3 -c "import ledkde; print('cuda_available', ledkde.cuda_available(), ledkde._core.TILE_GEMM_ISA)" \
  2>&1 | tee -a "$OUT/summary.txt"

# The GPU tests (every one skips without a device, so a pass here means they ran).
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/test_device.py > "$OUT/test_device.log" 2>&1
echo "test_device: rc=$? $(tail -1 "$OUT/test_device.log")" | tee -a "$OUT/summary.txt"
# The GPU's pruned pass (cuda/prune_cuda.cu) had never run on a device when this was written: if
# its tests fail, run the first of them under compute-sanitizer (works on some of these machines).
if grep -q "FAILED.*pruned" "$OUT/test_device.log"; then
  timeout 150 compute-sanitizer --tool memcheck --print-limit 20 python3 -m pytest -x -q -p no:cacheprovider \
    -k "pruned_pass_matches_reference and float32" tests/test_device.py > "$OUT/sanitizer.log" 2>&1
  echo "sanitizer: rc=$?" | tee -a "$OUT/summary.txt"
fi

# The GPU benchmark, quick shapes first (always fits), then the full run if time is left.
timeout 60 python3 bench/gpu.py --quick --skip-sampler --json /tmp/gpu_quick.json > "$OUT/gpu_quick.log" 2>&1
echo "gpu quick: rc=$?" | tee -a "$OUT/summary.txt"
timeout 180 python3 bench/gpu.py --json "$OUT/gpu.json" > "$OUT/gpu.log" 2>&1
echo "gpu full: rc=$?" | tee -a "$OUT/summary.txt"
