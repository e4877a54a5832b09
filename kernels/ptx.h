// The tensor-core and asynchronous-copy instructions reprise's kernels issue, one small inline function each: inline
// PTX under nvcc, and under the emulation a twin that follows the PTX ISA's documented semantics
// (kernels/emu/emu_ptx.h): fragment layouts, and data of an asynchronous copy visible only at its wait.
//
// Fragments of mma.m16n8k16 with BF16 inputs (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane = 4 * g + t
// (g = lane / 4, t = lane % 4), each 32-bit register two BF16s, the lower-indexed one in the low half:
//   A (16 x 16, row-major, M x K): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B (16 x 8, "col": K x N, each column's k contiguous): b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g)
//   C, D (16 x 8, FP32): c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
// ldmatrix.x4 fills exactly such an A fragment when lane l gives the address of row l % 16, column 8 * (l / 16) of
// a 16 x 16 tile; ldmatrix.x2 a B fragment when lane l < 16 gives row (n) l % 8, column (k) 8 * (l / 8) of an
// N-major 8 x 16 tile.
#ifndef REPRISE_PTX_H
#define REPRISE_PTX_H

#include <stdint.h>

#include "kernels/cuda_compat.h"

#ifdef __CUDACC__

// D = A . B + C on the tensor cores, one warp: (16 x 16) . (16 x 8) BF16, FP32 accumulators (sm_80 and later).
__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// Four (or two) 8 x 8 matrices of 16-bit elements from shared memory, one warp: lanes 8i..8i+7 give the 16-byte rows
// of matrix i; lane l receives, of each matrix i, row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1, in r[i].
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *smem_row) {
    unsigned a = (unsigned)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void *smem_row) {
    unsigned a = (unsigned)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a) : "memory");
}

// An L2 policy that evicts first what it covers: weights streamed once a step must not push out what is reused.
__device__ __forceinline__ uint64_t l2_evict_first() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}

// 16 bytes from global to shared memory, asynchronously (both 16-byte aligned): the first src_bytes (0..16) read,
// the rest zeros; the data is there only after a cp_async_wait that covers its group. Bypasses L1 (.cg).
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
// The same, all 16 bytes read, under an L2 cache policy (l2_evict_first).
__device__ __forceinline__ void cp_async_16_policy(void *smem, const void *gmem, uint64_t policy) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "l"(policy) : "memory");
}
// Closes the thread's current group of asynchronous copies.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of the thread's committed groups are still in flight (copies not yet committed are not
// waited for). Other threads' copies need a barrier after it to be seen.
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

#endif   // __CUDACC__ (the emulation's twins: kernels/emu/emu_ptx.h, through cuda_compat.h)

#endif
