#!/usr/bin/env bash
# Builds bench/tile_products.cpp against the tile products of cpp/src for both
# kernel sets (the flags of CMakeLists.txt) and runs it for a few row counts:
#   bash bench/tile_products.sh [rounds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for isa in avx512 avx2; do
  flags="-mavx2 -mfma"; [ "$isa" = avx512 ] && flags="-mavx512f -mfma"
  for src in tile_gemm tile_gemm_avx2 tile_gemm_avx512; do
    f=""; [ "$src" = tile_gemm_avx2 ] && f="-mavx2 -mfma"; [ "$src" = tile_gemm_avx512 ] && f="-mavx512f -mfma"
    g++ -O3 -std=c++17 $f -Icpp/src -Icpp/include -c "cpp/src/$src.cpp" -o "$out/$src.o"
  done
  g++ -O3 -std=c++17 -DBENCH_ISA=$isa -Icpp/src bench/tile_products.cpp "$out"/tile_gemm*.o -o "$out/tp_$isa"
  grep -q "${isa/avx512/avx512f}" /proc/cpuinfo || { echo "$isa: not on this CPU"; continue; }
  for q in 16 64 128; do echo -n "$isa "; "$out/tp_$isa" "$q" 784 "${1:-10}"; done
done
