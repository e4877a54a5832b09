// Kernels that drive kernels/ptx.h's instructions, each with a planted bug to switch on (test_ptx_emu.cpp runs them
// under the emulation; nvcc compiles them too, so they are what a GPU would run).
#include "kernels/launch.h"
#include "kernels/ptx.h"

typedef __nv_bfloat16 bf16;

// Two BF16s as one 32-bit register, lo in the low half.
__device__ static uint32_t pack2(bf16 lo, bf16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | (uint32_t)__bfloat16_as_ushort(hi) << 16;
}

// D (16 x 8) = A (16 x 16, row-major) . B + C, B given N-major (Bt: 8 rows of 16 k), one warp. via_ldmatrix: the
// fragments through shared memory with ldmatrix; else gathered element by element from global memory by the
// documented layout. plant 1: A's registers 1 and 2 swapped (a wrong fragment index).
__global__ void mma_tile_kernel(const bf16 *A, const bf16 *Bt, const float *C, float *D, int via_ldmatrix, int plant) {
    __shared__ __align__(16) bf16 as[16 * 16], bs[8 * 16];
    int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    uint32_t a[4], b[2];
    if (via_ldmatrix) {
        for (int e = lane; e < 256; e += 32) as[e] = A[e];
        for (int e = lane; e < 128; e += 32) bs[e] = Bt[e];
        __syncwarp();
        ldmatrix_x4(a, &as[(lane % 16) * 16 + 8 * (lane / 16)]);
        ldmatrix_x2(b, &bs[(lane % 8) * 16 + 8 * ((lane / 8) % 2)]);
    } else {
        for (int i = 0; i < 4; i++) {
            int row = g + (i % 2) * 8, col = 2 * t + (i / 2) * 8;
            a[i] = pack2(A[row * 16 + col], A[row * 16 + col + 1]);
        }
        for (int i = 0; i < 2; i++) b[i] = pack2(Bt[g * 16 + 2 * t + 8 * i], Bt[g * 16 + 2 * t + 8 * i + 1]);
    }
    if (plant == 1) {
        uint32_t x = a[1];
        a[1] = a[2], a[2] = x;
    }
    float c[4], d[4];
    for (int i = 0; i < 4; i++) c[i] = C[(g + (i / 2) * 8) * 8 + 2 * t + i % 2];
    mma_bf16_16816(d, a, b, c);
    for (int i = 0; i < 4; i++) D[(g + (i / 2) * 8) * 8 + 2 * t + i % 2] = d[i];
}

// 32 threads; each copies 16 bytes into the slot of the thread after it, asynchronously, in two groups (even slots,
// then odd), over shared memory that holds -1 first; then out[t] = slot t's first int after:
//   mode 0: wait for both groups, barrier;  mode 1 (planted): no wait, barrier;  mode 2: wait_group 1 (the odd
//   group may still be in flight), barrier;  mode 3: the copies read 8 bytes (zero-filled), wait, barrier, and out
//   takes the slot's third int.
__global__ void cp_async_kernel(const int4 *src, int *out, int mode) {
    __shared__ __align__(16) int4 slot[32];
    int t = threadIdx.x, to = (t + 1) % 32;
    slot[t] = make_int4(-1, -1, -1, -1);
    __syncthreads();
    for (int parity = 0; parity < 2; parity++) {
        if (to % 2 == parity) cp_async_16(&slot[to], &src[to], mode == 3 ? 8 : 16);
        cp_async_commit();
    }
    if (mode == 0 || mode == 3) cp_async_wait<0>();
    if (mode == 2) cp_async_wait<1>();
    __syncthreads();
    out[t] = mode == 3 ? slot[t].z : slot[t].x;
}

// A misaligned asynchronous copy (faults), and a misaligned ldmatrix row (faults).
__global__ void misaligned_kernel(const int4 *src, int which) {
    __shared__ __align__(16) bf16 buf[32 * 16];
    if (which == 0) cp_async_16(buf + 1, src, 16);
    else {
        uint32_t r[4];
        ldmatrix_x4(r, buf + 8 * threadIdx.x + 1);
    }
    cp_async_commit();
    cp_async_wait<0>();
}

// The copy engine: thread 0 loads the box at (col, row), rows x cols BF16, of `map` into a tile that held -1s,
// completing on an mbarrier every thread then waits on; out[r * cols + c] = the tile's element (r, c), found where
// swizzle mode read_sw puts it (the map's own; planted: another). plant 1: no wait (a barrier instead); 2: expect_tx
// announces 16 bytes more than the box; 3: the barrier is not fenced after its init.
__global__ void tma_tile_kernel(const __grid_constant__ tma_map map, int col, int row, int rows, int cols, int read_sw,
                                bf16 *out, int plant) {
    __shared__ __align__(1024) bf16 tile[64 * 64];
    __shared__ __align__(8) uint64_t bar;
    for (int e = threadIdx.x; e < rows * cols; e += blockDim.x) tile[e] = __float2bfloat16(-1.0f);
    if (threadIdx.x == 0) {
        mbar_init(&bar, 1);
        if (plant != 3) mbar_init_fence();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        mbar_arrive_expect_tx(&bar, rows * cols * 2 + (plant == 2 ? 16 : 0));
        tma_load_2d(tile, &map, col, row, &bar);
    }
    if (plant == 1) __syncthreads();
    else mbar_wait(&bar, 0);
    for (int e = threadIdx.x; e < rows * cols; e += blockDim.x)
        out[e] = tile[tma_swizzled_offset((size_t)e * 2, read_sw) / 2];
}

// The copy engine out, and the proxy fence: two rounds, each writing the tile (rows x cols BF16, 128-byte swizzled)
// with ordinary stores, then fence.proxy.async, a barrier, and thread 0 storing the box to rows [round * rows, ..) of
// map. plant 1: round 1 without the fence (the copy engine may read the first round's bytes).
__global__ void tma_store_kernel(const __grid_constant__ tma_map map, int rows, int cols, int plant) {
    __shared__ __align__(1024) bf16 tile[64 * 64];
    for (int round = 0; round < 2; round++) {
        for (int e = threadIdx.x; e < rows * cols; e += blockDim.x)
            tile[tma_swizzled_offset((size_t)e * 2, TMA_SWIZZLE_128B) / 2] = __float2bfloat16((float)(e % 128 + 128 * round));
        if (!(plant == 1 && round == 1)) fence_proxy_async();
        __syncthreads();
        if (threadIdx.x == 0) {
            tma_store_2d(&map, 0, round * rows, tile);
            bulk_commit();
            bulk_wait_read<0>();
        }
        __syncthreads();   // the tile is free to be written again
    }
}

cudaError_t launch_tma_store(bf16 *dst, int rows, int cols, int plant) {
    tma_map m;
    cudaError_t e = tma_map_2d(&m, dst, 2, 2 * rows, cols, (uint64_t)cols * 2, rows, cols, TMA_SWIZZLE_128B);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(tma_store_kernel, dim3(1), dim3(128), 0, (cudaStream_t)0, m, rows, cols, plant);
}

// Element (r, k) of a K-major operand of 16 k in 8 x 16-byte core matrices, 128 bytes apart along k and 256 along rows
// (wgmma's layout without swizzle, lbo 128, sbo 256), in elements.
__device__ static int core_matrix_index(int r, int k) { return ((r / 8) * 256 + (k / 8) * 128 + (r % 8) * 16 + (k % 8) * 2) / 2; }

// One warpgroup: D (64 x 8) = A (64 x 16) . Bt^T through wgmma, out as D[row * 8 + col] by the accumulator layout.
//   mode 0: A and B by the copy engine, 32-byte swizzled, descriptors saying so; 1 (planted): the descriptors say
//   no swizzle; 2: written by ordinary stores in core matrices, proxy fence, barrier; 3 (planted): that twice, A
//   negated the second time, which has no proxy fence (the wgmma may read the first round's A); 4 (planted): D read
//   before the wait.
__global__ void wgmma_tile_kernel(const __grid_constant__ tma_map map_a, const __grid_constant__ tma_map map_b, const bf16 *A,
                                  const bf16 *Bt, float *D, int mode) {
    __shared__ __align__(1024) bf16 as[64 * 16];
    __shared__ __align__(256) bf16 bs[8 * 16];
    __shared__ __align__(8) uint64_t bar;
    int t = threadIdx.x, warp = t / 32, g = (t % 32) / 4, q = t % 4;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    bool early = false;
    if (mode <= 1) {
        if (t == 0) {
            mbar_init(&bar, 1);
            mbar_init_fence();
        }
        __syncthreads();
        if (t == 0) {
            mbar_arrive_expect_tx(&bar, (64 + 8) * 32);
            tma_load_2d(as, &map_a, 0, 0, &bar);
            tma_load_2d(bs, &map_b, 0, 0, &bar);
        }
        mbar_wait(&bar, 0);
        tma_swizzle sw = mode == 0 ? TMA_SWIZZLE_32B : TMA_SWIZZLE_NONE;
        wgmma_fence();
        wgmma_bf16_m64n8k16(d, wgmma_desc(as, 128, 256, sw), wgmma_desc(bs, 128, 256, sw), 0);
        wgmma_commit();
        wgmma_wait<0>();
    } else
        for (int round = 0; round < (mode == 3 ? 2 : 1); round++) {
            for (int e = t; e < 64 * 16; e += 128)
                as[core_matrix_index(e / 16, e % 16)] = __float2bfloat16((round ? -1.0f : 1.0f) * __bfloat162float(A[e]));
            for (int e = t; e < 8 * 16; e += 128) bs[core_matrix_index(e / 16, e % 16)] = Bt[e];
            if (!(mode == 3 && round == 1)) fence_proxy_async();
            __syncthreads();
            wgmma_fence();
            wgmma_bf16_m64n8k16(d, wgmma_desc(as, 128, 256, TMA_SWIZZLE_NONE), wgmma_desc(bs, 128, 256, TMA_SWIZZLE_NONE), 0);
            wgmma_commit();
            if (mode == 4) {
                for (int i = 0; i < 4; i++) D[(16 * warp + g + 8 * (i / 2)) * 8 + 2 * q + i % 2] = d[i];
                early = true;
            }
            wgmma_wait<0>();
            __syncthreads();   // the tiles are free to be written again
        }
    if (!early)
        for (int i = 0; i < 4; i++) D[(16 * warp + g + 8 * (i / 2)) * 8 + 2 * q + i % 2] = d[i];
}

cudaError_t launch_wgmma_tile(const bf16 *A, const bf16 *Bt, float *D, int mode) {
    tma_map ma, mb;
    cudaError_t e = tma_map_2d(&ma, A, 2, 64, 16, 32, 64, 16, TMA_SWIZZLE_32B);
    if (e == cudaSuccess) e = tma_map_2d(&mb, Bt, 2, 8, 16, 32, 8, 16, TMA_SWIZZLE_32B);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(wgmma_tile_kernel, dim3(1), dim3(128), 0, (cudaStream_t)0, ma, mb, A, Bt, D, mode);
}

// One warpgroup: D (64 x 64) = A (64 x 64 k) . Bt^T (64 x 64 k), the tiles 128-byte swizzled by the copy engine, K in
// four wgmma m64n64k16 steps, each descriptor 2 (32 bytes) past the last, accumulating after the first; D[row * 64 + col].
__global__ void wgmma_k64_kernel(const __grid_constant__ tma_map map_a, const __grid_constant__ tma_map map_b, float *D) {
    __shared__ __align__(1024) bf16 as[64 * 64], bs[64 * 64];
    __shared__ __align__(8) uint64_t bar;
    int t = threadIdx.x, warp = t / 32, g = (t % 32) / 4, q = t % 4;
    if (t == 0) {
        mbar_init(&bar, 1);
        mbar_init_fence();
    }
    __syncthreads();
    if (t == 0) {
        mbar_arrive_expect_tx(&bar, 2 * 64 * 128);
        tma_load_2d(as, &map_a, 0, 0, &bar);
        tma_load_2d(bs, &map_b, 0, 0, &bar);
    }
    mbar_wait(&bar, 0);
    float d[32];
    uint64_t da = wgmma_desc(as, 16, 1024, TMA_SWIZZLE_128B), db = wgmma_desc(bs, 16, 1024, TMA_SWIZZLE_128B);
    wgmma_fence();
    for (int s = 0; s < 4; s++) wgmma_bf16_m64n64k16(d, da + 2 * s, db + 2 * s, s > 0);
    wgmma_commit();
    wgmma_wait<0>();
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 4; i++) D[(16 * warp + g + 8 * (i / 2)) * 64 + 8 * j + 2 * q + i % 2] = d[4 * j + i];
}

cudaError_t launch_wgmma_k64(const bf16 *A, const bf16 *Bt, float *D) {
    tma_map ma, mb;
    cudaError_t e = tma_map_2d(&ma, A, 2, 64, 64, 128, 64, 64, TMA_SWIZZLE_128B);
    if (e == cudaSuccess) e = tma_map_2d(&mb, Bt, 2, 64, 64, 128, 64, 64, TMA_SWIZZLE_128B);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(wgmma_k64_kernel, dim3(1), dim3(128), 0, (cudaStream_t)0, ma, mb, D);
}

cudaError_t launch_tma_tile(const bf16 *src, int src_rows, int src_cols, int col, int row, int rows, int cols, int sw,
                            int read_sw, bf16 *out, int plant) {
    tma_map m;
    cudaError_t e = tma_map_2d(&m, src, 2, src_rows, src_cols, (uint64_t)src_cols * 2, rows, cols, (tma_swizzle)sw);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(tma_tile_kernel, dim3(1), dim3(128), 0, (cudaStream_t)0, m, col, row, rows, cols, read_sw, out, plant);
}

cudaError_t launch_mma_tile(const bf16 *A, const bf16 *Bt, const float *C, float *D, int via_ldmatrix, int plant) {
    return REPRISE_LAUNCH(mma_tile_kernel, dim3(1), dim3(32), 0, (cudaStream_t)0, A, Bt, C, D, via_ldmatrix, plant);
}
// Each thread widens the 4 E4M3 codes of its word (widen_e4m3x4) into out's two words.
__global__ void widen_e4m3_kernel(const uint32_t *codes, uint32_t *out) {
    widen_e4m3x4(codes[threadIdx.x], BF16X2_2POW120, BF16X2_2POW120, out + 2 * threadIdx.x);
}
cudaError_t launch_widen_e4m3(const uint32_t *codes, uint32_t *out) {
    return REPRISE_LAUNCH(widen_e4m3_kernel, dim3(1), dim3(64), 0, (cudaStream_t)0, codes, out);
}

cudaError_t launch_cp_async(const int4 *src, int *out, int mode) {
    return REPRISE_LAUNCH(cp_async_kernel, dim3(1), dim3(32), 0, (cudaStream_t)0, src, out, mode);
}
cudaError_t launch_misaligned(const int4 *src, int which) {
    return REPRISE_LAUNCH(misaligned_kernel, dim3(1), dim3(32), 0, (cudaStream_t)0, src, which);
}
