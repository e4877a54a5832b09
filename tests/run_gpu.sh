#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build reprise for it (nvcc, the real runtime and cuBLAS), run the whole test
# suite - the CUDA backend's tests against the real device included - and then the GPU benchmark.
# usage: bash tests/run_gpu.sh [build-dir]   (nvidia-smi must see a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-gpu}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
cmake -S . -B "$dir" -DREPRISE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native >/dev/null
cmake --build "$dir" -j "$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
# the command line on the device: the same greedy text as the CPU backend
if [ -f ../shared/models/stories260K/config.json ]; then
    a=$("$dir"/reprise generate -m ../shared/models/stories260K -p "Once upon a time" -n 60 --temp 0 --backend cpu 2>/dev/null)
    b=$("$dir"/reprise generate -m ../shared/models/stories260K -p "Once upon a time" -n 60 --temp 0 --backend cuda 2>/dev/null)
    [ "$a" = "$b" ] && echo "ok   stories260K greedy text equal on cpu and cuda" || { echo "FAIL cpu and cuda texts differ"; exit 1; }
fi
"$dir"/bench_gpu
