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

// One 16-byte load of global memory that no thread writes while the kernel runs (p 16-byte aligned): under nvcc
// ld.global.nc.v4 (LDG.128 through the read-only path, where a plain dereference of a pointer read from memory is a
// generic LD). The emulation's compiler splits the copy into narrower loads, so its perf counters are told what the
// hardware does: one 16-byte access a lane.
#if defined(__CUDACC__)
__device__ static inline uint4 ldg_16(const void *p) { return __ldg(reinterpret_cast<const uint4 *>(p)); }
#elif !defined(REPRISE_REAL_CUDA)
static inline uint4 ldg_16(const void *p) {
    emu::perf_quiet(true);
    uint4 v;
    memcpy(&v, p, sizeof v);
    emu::perf_quiet(false);
    emu::perf_access(p, 16, false);
    return v;
}
#endif

// `#pragma unroll` for nvcc (a register array indexed by an unrolled loop stays in registers); nothing elsewhere.
#ifdef __CUDACC__
#define REPRISE_UNROLL _Pragma("unroll")
#else
#define REPRISE_UNROLL
#endif

#endif
