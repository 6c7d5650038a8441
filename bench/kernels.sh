#!/usr/bin/env bash
# Builds the kernel microbenchmarks against cpp/src for both kernel sets (the
# flags of CMakeLists.txt) and runs them, one thread each:
#   bench/tile_products.cpp   the two tile products, for a few row counts
#   bench/weights_kernel.cpp  rows::expansion_weights (logits to weights)
# usage: bash bench/kernels.sh [rounds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cxx() { g++ -O3 -std=c++17 -fopenmp-simd -Icpp/src -Icpp/include "$@"; }
cxx -c cpp/src/tile_gemm.cpp -o "$out/tile_gemm.o"
cxx -mavx2 -mfma -c cpp/src/tile_gemm_avx2.cpp -o "$out/tile_gemm_avx2.o"
cxx -mavx512f -mfma -c cpp/src/tile_gemm_avx512.cpp -o "$out/tile_gemm_avx512.o"
for isa in avx512 avx2; do
  flags="-mavx2 -mfma"; [ "$isa" = avx512 ] && flags="-mavx512f -mfma"
  cxx $flags -fno-trapping-math -c "cpp/src/row_kernels_$isa.cpp" -o "$out/rows_$isa.o"
  cxx -DBENCH_ISA=$isa bench/tile_products.cpp "$out"/tile_gemm*.o -o "$out/tp_$isa"
  cxx -DBENCH_ISA=$isa bench/weights_kernel.cpp "$out/rows_$isa.o" -o "$out/wk_$isa"
  grep -q "${isa/avx512/avx512f}" /proc/cpuinfo || { echo "$isa: not on this CPU"; continue; }
  for q in 16 64 128; do echo -n "$isa "; "$out/tp_$isa" "$q" 784 "${1:-10}"; done
  echo -n "$isa "; "$out/wk_$isa" $((${1:-10} * 20))
done
