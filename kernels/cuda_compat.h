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
// st_16: one 16-byte store (p 16-byte aligned), counted the same way.
#if defined(__CUDACC__)
__device__ static inline uint4 ldg_16(const void *p) { return __ldg(reinterpret_cast<const uint4 *>(p)); }
__device__ static inline void st_16(void *p, uint4 v) { *reinterpret_cast<uint4 *>(p) = v; }
#elif !defined(REPRISE_REAL_CUDA)
static inline uint4 ldg_16(const void *p) {
    emu::perf_quiet(true);
    uint4 v;
    memcpy(&v, p, sizeof v);
    emu::perf_quiet(false);
    emu::perf_access(p, 16, false);
    return v;
}
static inline void st_16(void *p, uint4 v) {
    emu::perf_quiet(true);
    memcpy(p, &v, sizeof v);
    emu::perf_quiet(false);
    emu::perf_access(p, 16, true);
}
#endif

// `#pragma unroll` for nvcc (a register array indexed by an unrolled loop stays in registers); nothing elsewhere.
#ifdef __CUDACC__
#define REPRISE_UNROLL _Pragma("unroll")
#else
#define REPRISE_UNROLL
#endif

// Programmatic dependent launch (sm_90; kernels/launch.h's REPRISE_LAUNCH_PDL): a kernel so launched may be resident
// while the kernel before it on the stream still runs, so it calls pdl_wait() (griddepcontrol.wait: returns once that
// grid has completed and its writes are visible) before its first access to global memory - reads of what another
// kernel writes, and writes to what another kernel reads - and pdl_launch_dependents() (griddepcontrol.
// launch_dependents) once the kernel after it may be launched: at its start (the next one's CTAs only take the SM
// slots it leaves free, and wait). No-ops before sm_90, and on a launch without the attribute.
#if defined(__CUDACC__)
__device__ static inline void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ static inline void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// A hint that the 128-byte line at p (global memory) will be read soon: fetched into L2, nothing read or waited for.
__device__ static inline void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }
#elif !defined(REPRISE_REAL_CUDA)
static inline void prefetch_l2(const void *) {}   // the emulation's memory has no cache to warm
static inline void pdl_wait() { emu::grid_dependency_wait(); }
static inline void pdl_launch_dependents() { emu::launch_dependents(); }
#endif

#endif
