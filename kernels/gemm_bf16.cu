// The projections' GEMM on tensor cores, batch-invariant: out (R, N) = X (R, K) . W^T, X and W in BF16, FP32
// accumulation.
//
// A block of 8 warps computes up to 64 rows (4 row tiles) x 16 columns. K is cut into 16-wide slices and the
// slices into 8 contiguous ranges, one per warp: a warp multiplies its slices, in order, with one WMMA mma_sync
// each, into one 16 x 16 accumulator per row tile; then the 8 partial tiles meet in shared memory and are summed in
// warp order. The split depends on K alone, so every output element is the same sequence of operations whatever
// R, the rows beside it and the tile it falls in: a sequence's numbers never depend on what it is batched with (a
// library GEMM picks its algorithm, and its reduction order, by shape).
//
// Speed: decode (R <= 16) reads each weight once and is bound by memory bandwidth, so the grid has one block per 16
// columns (N / 16 blocks of 8 warps, enough to fill the GPU at the hidden sizes of real models) and each warp
// loads the weight tiles of 4 slices straight from global memory before it multiplies any, to keep loads in
// flight. A block's weight tile serves its 4 row tiles, and blocks sharing a column tile are adjacent in the grid,
// so prefill finds the weights in L2. Tiles at the edges of N and K (and unaligned pointers) are staged through
// shared memory with zeros past the edges.
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/launch.h"

#define GEMM_WARPS 8       // the K split, and the warps of a block
#define GEMM_ROW_TILES 4   // 16-row tiles per block
#define GEMM_GROUP 4       // weight tiles loaded ahead by a warp (launch_gemm_bf16_group tries others)

namespace wmma = nvcuda::wmma;

struct __align__(16) bf16x8 {
    bf16 v[8];
};

// The (16 columns x 16 k) weight tile at (col0, k0) as a col-major B fragment: straight from global memory when the
// whole tile lies inside W and is 32-byte aligned, else through the warp's shared staging tile, zero-filled.
__device__ static void load_w_tile(wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> &b, const bf16 *W,
                                   int N, int K, int col0, int k0, bool aligned, bf16 *stage) {
    if (aligned && col0 + 16 <= N && k0 + 16 <= K) {
        wmma::load_matrix_sync(b, W + (size_t)col0 * K + k0, K);
        return;
    }
    const bf16 zero = __float2bfloat16(0.0f);
    for (int e = threadIdx.x % 32; e < 256; e += 32) {   // (column, k) at column * 16 + k
        int n = e / 16, k = e % 16;
        stage[e] = col0 + n < N && k0 + k < K ? W[(size_t)(col0 + n) * K + k0 + k] : zero;
    }
    __syncwarp();
    wmma::load_matrix_sync(b, stage, 16);
    __syncwarp();   // the staging tile is refilled next
}

// The (16 rows x 16 k) activation tile at (row0, k0) into the warp's shared tile, row-major, zeros past R and K:
// each lane copies 8 consecutive elements, with one 16-byte load where X's layout allows.
__device__ static void stage_x_tile(const bf16 *X, int R, int K, int row0, int k0, bool vec, bf16 *xs) {
    int lane = threadIdx.x % 32, r = lane / 2, kk = (lane % 2) * 8, row = row0 + r;
    bf16x8 v;
    if (row < R && vec && k0 + kk + 8 <= K) v = *(const bf16x8 *)(X + (size_t)row * K + k0 + kk);
    else
        for (int i = 0; i < 8; i++)
            v.v[i] = row < R && k0 + kk + i < K ? X[(size_t)row * K + k0 + kk + i] : __float2bfloat16(0.0f);
    *(bf16x8 *)(xs + r * 16 + kk) = v;
}

// GROUP (weight tiles a warp loads ahead) changes how many loads are in flight, never the order of the products:
// the results are identical for any.
template <int GROUP>
__global__ void gemm_bf16_kernel(const bf16 *X, const bf16 *W, int R, int N, int K, float *out) {
    __shared__ __align__(32) bf16 xs[GEMM_WARPS][GROUP][16 * 16];   // per warp: X tiles of a group of slices
    __shared__ __align__(32) bf16 ws[GEMM_WARPS][16 * 16];          // per warp: an edge weight tile
    __shared__ __align__(32) float part[GEMM_WARPS][16 * 16];       // per warp: its partial output tile
    int warp = threadIdx.x / 32, row0 = blockIdx.x * 16 * GEMM_ROW_TILES, col0 = blockIdx.y * 16;
    int slices = (K + 15) / 16, per_warp = (slices + GEMM_WARPS - 1) / GEMM_WARPS;
    int s0 = min(warp * per_warp, slices), s1 = min(s0 + per_warp, slices);
    int tiles = min(GEMM_ROW_TILES, (R - row0 + 15) / 16);
    bool w_aligned = K % 16 == 0 && (uintptr_t)W % 32 == 0, x_vec = K % 8 == 0 && (uintptr_t)X % 16 == 0;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[GEMM_ROW_TILES];
REPRISE_UNROLL
    for (int t = 0; t < GEMM_ROW_TILES; t++) wmma::fill_fragment(acc[t], 0.0f);
    for (int s = s0; s < s1; s += GROUP) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b[GROUP];
REPRISE_UNROLL
        for (int g = 0; g < GROUP; g++)
            if (s + g < s1) load_w_tile(b[g], W, N, K, col0, (s + g) * 16, w_aligned, ws[warp]);
REPRISE_UNROLL
        for (int t = 0; t < GEMM_ROW_TILES; t++) {
            if (t >= tiles) break;
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1) stage_x_tile(X, R, K, row0 + t * 16, (s + g) * 16, x_vec, xs[warp][g]);
            __syncwarp();
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                    wmma::load_matrix_sync(a, xs[warp][g], 16);
                    wmma::mma_sync(acc[t], a, b[g], acc[t]);
                }
            __syncwarp();   // the X tiles are refilled next
        }
    }
    // the 8 partial tiles of each row tile, summed in warp order; 256 threads, one output element each
REPRISE_UNROLL
    for (int t = 0; t < GEMM_ROW_TILES; t++) {
        if (t >= tiles) break;
        wmma::store_matrix_sync(part[warp], acc[t], 16, wmma::mem_row_major);
        __syncthreads();
        int e = threadIdx.x, r = row0 + t * 16 + e / 16, n = col0 + e % 16;
        float sum = 0;
        for (int w = 0; w < GEMM_WARPS; w++) sum += part[w][e];
        if (r < R && n < N) out[(size_t)r * N + n] = sum;
        __syncthreads();   // part is reused by the next row tile
    }
}

cudaError_t launch_gemm_bf16_group(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, int group, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if ((N + 15) / 16 > 65535) return cudaErrorInvalidValue;   // the grid's y limit: N up to 1,048,560
    dim3 grid((R + 16 * GEMM_ROW_TILES - 1) / (16 * GEMM_ROW_TILES), (N + 15) / 16);
    if (group == 8) return REPRISE_LAUNCH(gemm_bf16_kernel<8>, grid, dim3(32 * GEMM_WARPS), 0, s, X, W, R, N, K, out);
    if (group == 4) return REPRISE_LAUNCH(gemm_bf16_kernel<4>, grid, dim3(32 * GEMM_WARPS), 0, s, X, W, R, N, K, out);
    return cudaErrorInvalidValue;
}

cudaError_t launch_gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, cudaStream_t s) {
    return launch_gemm_bf16_group(X, W, R, N, K, out, GEMM_GROUP, s);
}
