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
//
// The bulk tensor copy engine (TMA, sm_90): a 2-D box of a tensor map (tma_map_2d) copied into shared memory by one
// thread, completing its bytes on an mbarrier that the consumers wait on (mbar_wait, by phase parity). Swizzled boxes
// hold each row's 16-byte chunk c at chunk c ^ (row bits): tma_swizzled_offset says where an element landed.
#ifndef REPRISE_PTX_H
#define REPRISE_PTX_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda_compat.h"

// How the copy engine lays a box's rows in shared memory (CUtensorMapSwizzle's first four): none, or each 16-byte
// chunk of a row moved within a span of 32, 64 or 128 bytes.
enum tma_swizzle { TMA_SWIZZLE_NONE = 0, TMA_SWIZZLE_32B = 1, TMA_SWIZZLE_64B = 2, TMA_SWIZZLE_128B = 3 };

// Where the byte at offset `off` of a box (rows of the box's inner width, packed) lands in shared memory under swizzle
// mode sw: bits [4, 4 + sw) of the offset XORed with bits [7, 7 + sw) (the PTX ISA's swizzle patterns: the 16-byte
// chunk index within the span, by the row's place in a 256, 512 or 1024-byte repeat). The box must start at a
// multiple of that repeat for the pattern to be the box's own.
__host__ __device__ static inline size_t tma_swizzled_offset(size_t off, int sw) {
    return sw ? off ^ (((off >> 7) & ((1u << sw) - 1)) << 4) : off;
}
// Bytes one repeat of the pattern covers (the alignment a swizzled box needs), and the span a box row may not exceed.
__host__ __device__ static inline unsigned tma_swizzle_repeat(int sw) { return sw ? 128u << sw : 128u; }
__host__ __device__ static inline unsigned tma_swizzle_span(int sw) { return 16u << sw; }

// A wgmma matrix descriptor's fields (PTX ISA, "Matrix Descriptor Format"; wgmma_desc below says what they mean): the
// start in 16-byte units (bits 0-13), the leading and stride byte offsets (16-29, 32-45, / 16), and the swizzle mode
// (62-63: 1 for 128-byte, 2 for 64-byte, 3 for 32-byte, 0 none); and the mode a descriptor names, as a tma_swizzle.
__host__ __device__ static inline uint64_t wgmma_desc_fields(uint64_t start16, unsigned lbo, unsigned sbo, int sw) {
    uint64_t mode = sw == TMA_SWIZZLE_128B ? 1 : sw == TMA_SWIZZLE_64B ? 2 : sw == TMA_SWIZZLE_32B ? 3 : 0;
    return (start16 & 0x3FFF) | (uint64_t)((lbo & 0x3FFFF) >> 4) << 16 | (uint64_t)((sbo & 0x3FFFF) >> 4) << 32 | mode << 62;
}
__host__ __device__ static inline int wgmma_desc_swizzle(uint64_t desc) {
    int mode = (int)(desc >> 62);
    return mode == 1 ? TMA_SWIZZLE_128B : mode == 2 ? TMA_SWIZZLE_64B : mode == 3 ? TMA_SWIZZLE_32B : TMA_SWIZZLE_NONE;
}

// A 2-D tensor map: under nvcc the driver's opaque CUtensorMap (passed to a kernel by value, as a __grid_constant__
// parameter), under the emulation the fields the copy twin reads.
#ifdef __CUDACC__
#include <cuda.h>
struct tma_map {
    CUtensorMap map;
};
#else
struct alignas(64) tma_map : emu::tma_map_fields {};   // base; dim (a row's elements, rows); row_bytes; box; ...
#endif
// A tensor map of a row-major matrix of `rows` rows of `cols` elements of elem_bytes (1 or 2), rows row_bytes apart,
// read in boxes of box_rows x box_cols (kernels/tma_map.cu). Out-of-bounds elements of a box read as zeros.
// cudaErrorInvalidValue for a shape the copy engine refuses (see tma_map.cu), cudaErrorNotSupported where the driver
// has no tensor maps.
cudaError_t tma_map_2d(tma_map *m, const void *base, int elem_bytes, uint64_t rows, uint64_t cols, uint64_t row_bytes,
                       unsigned box_rows, unsigned box_cols, tma_swizzle sw);

// widen_e4m3x4's constants (below).
#define E4M3_PAIR_LO 0x9180u   // prmt selectors: bytes 0 and 1 (2 and 3), each with its sign replicated above it
#define E4M3_PAIR_HI 0xB3A2u
#define E4M3_LANE_MASK 0x87F087F0u
#define BF16X2_2POW120 0x7B807B80u
#define BF16X2_MINUS_ZERO 0x80008000u

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

// Four FP8 E4M3 codes (the bytes of `codes`, the first lowest) widened to BF16, two a register as an MMA fragment
// holds them (the lower-indexed in the low half), codes 0-1 times the BF16x2 multipliers m01 and codes 2-3 times m23.
// E4M3's sign, exponent and mantissa bits, moved into BF16's (prmt places each code in a 16-bit lane with its sign
// copied over the high byte; a shift by 4 and a mask keep bit 15 and bits 4..10), are the code's value x 2^-120 as a
// BF16 - its subnormals too: E4M3's m x 2^-9 land on BF16's subnormal m/8 x 2^-126 - and one BF16 fused multiply by
// m x 2^120 rounds value x m once: with m = 2^120 (BF16X2_2POW120) the value itself, exactly. 4 instructions a pair;
// NaN codes (S.1111.111) are never loaded.
__device__ __forceinline__ void widen_e4m3x4(uint32_t codes, uint32_t m01, uint32_t m23, uint32_t out[2]) {
#if __CUDA_ARCH__ >= 800
    uint32_t lo, hi;
    asm("prmt.b32 %0, %1, 0, %2;\n" : "=r"(lo) : "r"(codes), "n"(E4M3_PAIR_LO));
    asm("prmt.b32 %0, %1, 0, %2;\n" : "=r"(hi) : "r"(codes), "n"(E4M3_PAIR_HI));
    lo = (lo << 4) & E4M3_LANE_MASK, hi = (hi << 4) & E4M3_LANE_MASK;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(out[0]) : "r"(lo), "r"(m01), "r"(BF16X2_MINUS_ZERO));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(out[1]) : "r"(hi), "r"(m23), "r"(BF16X2_MINUS_ZERO));
#endif
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

// --- mbarriers and the bulk tensor copy engine (sm_90; on older targets these trap) ---

#if __CUDA_ARCH__ >= 900
#define REPRISE_SM90(body) body
#else
#define REPRISE_SM90(body) __trap();
#endif

// A barrier in shared memory (8 bytes, 8-aligned) whose phase completes when `count` threads have arrived and every
// byte announced by expect_tx has landed. One thread initialises it; then mbar_init_fence, then __syncthreads.
__device__ __forceinline__ void mbar_init(uint64_t *bar, unsigned count) {
    REPRISE_SM90(asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)),
                              "r"(count) : "memory");)
}
// Makes this thread's barrier initialisations visible to the copy engine (the async proxy).
__device__ __forceinline__ void mbar_init_fence() { REPRISE_SM90(asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");) }
// This thread's arrival, announcing `bytes` more that copies will complete on the barrier's current phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t *bar, unsigned bytes) {
    REPRISE_SM90(asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                                  (unsigned)__cvta_generic_to_shared(bar)), "r"(bytes) : "memory");)
}
// This thread's arrival.
__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
    REPRISE_SM90(asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");)
}
// Waits until the barrier's phase of this parity has completed (phase 0, 1, 2 ... have parities 0, 1, 0 ...): the
// data copies completed on it are then visible to this thread.
__device__ __forceinline__ void mbar_wait(uint64_t *bar, unsigned parity) {
    REPRISE_SM90(asm volatile("{\n .reg .pred done;\n WAIT_%=:\n"
                              " mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                              " @!done bra WAIT_%=;\n}\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)),
                              "r"(parity) : "memory");)
}
// Orders this thread's ordinary shared-memory writes before later reads by the async proxy (wgmma, bulk copies out).
__device__ __forceinline__ void fence_proxy_async() { REPRISE_SM90(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");) }
// One thread: the box at (col, row) of map into shared memory at dst (128-byte aligned; a swizzled box at a multiple
// of tma_swizzle_repeat), its bytes completing on bar (whose phase must expect them: mbar_arrive_expect_tx). Its
// writes are the async proxy's: ordinary reads see them after the wait, with no proxy fence.
__device__ __forceinline__ void tma_load_2d(void *dst, const tma_map *map, int col, int row, uint64_t *bar) {
    REPRISE_SM90(asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                              ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(col), "r"(row),
                              "r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");)
}
// One thread: the box in shared memory at src (laid out as the map's swizzle says) out to (col, row) of map, elements
// past the tensor's edge left out. It reads shared memory through the async proxy: ordinary stores to src need
// fence_proxy_async in each writing thread, then a barrier, before it. Grouped by bulk_commit; src may be written
// again after bulk_wait_read covers its group.
__device__ __forceinline__ void tma_store_2d(const tma_map *map, int col, int row, const void *src) {
    REPRISE_SM90(asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(map),
                              "r"(col), "r"(row), "r"((unsigned)__cvta_generic_to_shared(src)) : "memory");)
}
__device__ __forceinline__ void bulk_commit() { REPRISE_SM90(asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");) }
// Waits until at most N of this thread's bulk groups still read their shared memory.
template <int N> __device__ __forceinline__ void bulk_wait_read() {
    REPRISE_SM90(asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");)
}

// --- warpgroup MMA (wgmma, sm_90a only; elsewhere these trap) ---
// A warpgroup (4 consecutive warps, the first a multiple of 4) computes D (64 x N, FP32) = A (64 x 16) . B (16 x N)
// (+ D), A and B BF16 in shared memory, both K-major (each of A's 64 rows and each of B's N columns holds its 16 k
// contiguously), read through matrix descriptors. D's registers: thread 32 w + 4 g + t of the warpgroup holds, for each
// 8-column block j, d[4j + i] = D(16 w + g + 8 (i / 2), 8 j + 2 t + i % 2) - mma.m16n8's C layout, one warp per 16
// rows. The product is asynchronous: D is defined only after a wgmma_wait that covers its group; shared memory
// written by ordinary stores needs fence_proxy_async (and a barrier) before the wgmma that reads it.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define REPRISE_SM90A(body) body
#else
#define REPRISE_SM90A(body) __trap();
#endif

// A matrix descriptor (wgmma_desc_fields) of the operand at smem. K-major operands: rows in groups of 8 `sbo` bytes
// apart; swizzled, each row is the span's bytes (its k from the start) laid out as the copy engine's swizzle mode of
// the same name lays them (tma_swizzled_offset), and adding 2 to the descriptor moves it 32 bytes along k (the next 16 k within the span);
// unswizzled, 8 x 16-byte core matrices (8 rows of 8 k), `lbo` bytes apart along k. A swizzled operand starts at a
// multiple of the pattern's repeat (tma_swizzle_repeat), plus multiples of 32 bytes along k.
__device__ __forceinline__ uint64_t wgmma_desc(const void *smem, unsigned lbo, unsigned sbo, tma_swizzle sw) {
    return wgmma_desc_fields((unsigned)__cvta_generic_to_shared(smem) >> 4, lbo, sbo, sw);
}
// Orders the warpgroup's register accesses before the wgmma that uses those registers (before the first of a group).
__device__ __forceinline__ void wgmma_fence() { REPRISE_SM90A(asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");) }
// Closes this thread's group of wgmma operations.
__device__ __forceinline__ void wgmma_commit() { REPRISE_SM90A(asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");) }
// Waits until at most N of the warpgroup's committed groups are pending: their D registers are then defined.
template <int N> __device__ __forceinline__ void wgmma_wait() {
    REPRISE_SM90A(asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");)
}
// D (64 x 8) = A . B + (accumulate ? D : 0), one warpgroup, d[4] as above.
__device__ __forceinline__ void wgmma_bf16_m64n8k16(float d[4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    REPRISE_SM90A(asm volatile("{\n .reg .pred acc;\n setp.ne.b32 acc, %6, 0;\n"
                               " wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0, %1, %2, %3}, %4, %5, acc, 1, 1, 0, 0;\n}\n"
                               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                               : "l"(desc_a), "l"(desc_b), "r"(accumulate));)
}
// D (64 x 64) = A . B + (accumulate ? D : 0), one warpgroup, d[32] as above (8 column blocks).
__device__ __forceinline__ void wgmma_bf16_m64n64k16(float d[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    REPRISE_SM90A(asm volatile("{\n .reg .pred acc;\n setp.ne.b32 acc, %34, 0;\n"
                               " wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, acc, 1, 1, 0, 0;\n}\n"
                               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                               : "l"(desc_a), "l"(desc_b), "r"(accumulate));)
}

// D (64 x 128) = A . B + (accumulate ? D : 0), one warpgroup, d[64] as above (16 column blocks).
__device__ __forceinline__ void wgmma_bf16_m64n128k16(float d[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    REPRISE_SM90A(asm volatile("{\n .reg .pred acc;\n setp.ne.b32 acc, %66, 0;\n"
                               " wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, acc, 1, 1, 0, 0;\n}\n"
                               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                               : "l"(desc_a), "l"(desc_b), "r"(accumulate));)
}

#else
#include "kernels/emu/emu_ptx.h"   // the emulation's twins
#endif

#endif
