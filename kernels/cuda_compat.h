// What every kernel source includes: the CUDA headers under nvcc, the CPU emulation of them otherwise.
#ifndef REPRISE_CUDA_COMPAT_H
#define REPRISE_CUDA_COMPAT_H

#if defined(__CUDACC__) || defined(REPRISE_REAL_CUDA)
// nvcc, or host code built against the real runtime (a GPU build's tests)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
// Dynamic shared memory of the launch, typed (`extern __shared__` under nvcc).
#define REPRISE_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#else
#include "kernels/emu/emu_device.h"
#endif

// `#pragma unroll` for nvcc (a register array indexed by an unrolled loop stays in registers); nothing elsewhere.
#ifdef __CUDACC__
#define REPRISE_UNROLL _Pragma("unroll")
#else
#define REPRISE_UNROLL
#endif

#endif
