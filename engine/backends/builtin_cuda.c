// The built-in backends of a build with the CUDA backend (on real GPUs, or under the CPU emulation): CUDA first, so
// `--backend auto` takes a GPU where there is one, then the CPU backend.
#include "engine/backends/builtin.h"
#include "engine/backends/cpu/backend_cpu.h"
#include "engine/backends/cuda/backend_cuda.h"

const backend_entry backend_builtin[] = {
    {.name = "cuda", .create = backend_cuda_create, .device_name = backend_cuda_device_name,
     .copy_bandwidth = backend_cuda_copy_bandwidth, .time_gemm = backend_cuda_time_gemm},
    {.name = "cpu", .create = backend_cpu_create},
    {0},
};
