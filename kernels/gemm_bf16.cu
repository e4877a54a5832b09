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

#include "kernels/gemm_out.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define GEMM_WARPS 8       // the K split, and the warps of a block
#define GEMM_ROW_TILES 4   // 16-row tiles per block

namespace wmma = nvcuda::wmma;

struct __align__(16) bf16x8 {
    bf16 v[8];
};

// Whether the (16 columns x 16 k) weight tile at (col0, k0) lies inside W and can be read with aligned loads.
__device__ static bool w_tile_whole(int N, int K, int col0, int k0, bool aligned) {
    return aligned && col0 + 16 <= N && k0 + 16 <= K;
}

// The weight tile at (col0, k0) into a shared tile, (column, k) at column * 16 + k (a col-major B tile), element by
// element, zeros past N and K.
__device__ static void stage_w_tile(const bf16 *W, int N, int K, int col0, int k0, bf16 *stage) {
    const bf16 zero = __float2bfloat16(0.0f);
    for (int e = threadIdx.x % 32; e < 256; e += 32) {
        int n = e / 16, k = e % 16;
        stage[e] = col0 + n < N && k0 + k < K ? W[(size_t)(col0 + n) * K + k0 + k] : zero;
    }
}

// The weight tile at (col0, k0) as a col-major B fragment: straight from global memory when whole, else through the
// warp's shared staging tile.
__device__ static void load_w_tile(wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> &b, const bf16 *W,
                                   int N, int K, int col0, int k0, bool aligned, bf16 *stage) {
    if (w_tile_whole(N, K, col0, k0, aligned)) {
        wmma::load_matrix_sync(b, W + (size_t)col0 * K + k0, K);
        return;
    }
    stage_w_tile(W, N, K, col0, k0, stage);
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

// GROUP (weight tiles a warp loads ahead) and VEC (the tiles through shared memory with one 16-byte load per lane,
// rather than loaded into fragments from global memory) change how the weights arrive, never the order of the
// products: the results are identical for every variant.
template <int GROUP, bool VEC>
__global__ void gemm_bf16_kernel(const bf16 *X, const bf16 *W, int R, int N, int K, gemm_out out) {
    __shared__ __align__(32) bf16 xs[GEMM_WARPS][GROUP][16 * 16];             // per warp: X tiles of a group of slices
    __shared__ __align__(32) bf16 ws[GEMM_WARPS][VEC ? GROUP : 1][16 * 16];   // per warp: weight tiles (VEC), or an edge one
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
        if (VEC) {   // every lane issues its GROUP 16-byte loads, then the tiles go through shared memory
            int lane = threadIdx.x % 32, n = lane / 2, kk = (lane % 2) * 8;
            bf16x8 wv[GROUP];
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1 && w_tile_whole(N, K, col0, (s + g) * 16, w_aligned))
                    wv[g] = *(const bf16x8 *)(W + (size_t)(col0 + n) * K + (s + g) * 16 + kk);
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1) {
                    if (w_tile_whole(N, K, col0, (s + g) * 16, w_aligned)) *(bf16x8 *)(ws[warp][g] + n * 16 + kk) = wv[g];
                    else stage_w_tile(W, N, K, col0, (s + g) * 16, ws[warp][g]);
                }
            __syncwarp();
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1) wmma::load_matrix_sync(b[g], ws[warp][g], 16);
        } else
REPRISE_UNROLL
            for (int g = 0; g < GROUP; g++)
                if (s + g < s1) load_w_tile(b[g], W, N, K, col0, (s + g) * 16, w_aligned, ws[warp][0]);
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
        if (r < R && n < N) *gemm_out_at(out, N, r, n) = sum;   // column n of the segment it falls in
        __syncthreads();   // part is reused by the next row tile
    }
}

const char *const gemm_bf16_variant_name[GEMM_BF16_VARIANTS] = {"4 tiles ahead, fragments from global",
                                                                 "8 tiles ahead, fragments from global",
                                                                 "4 tiles ahead, 16-byte loads via shared"};

cudaError_t launch_gemm_bf16_split(const bf16 *X, const bf16 *W, int R, int N, int K, gemm_out out, int variant, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (!gemm_out_valid(out, N)) return cudaErrorInvalidValue;
    if (out.epilogue != GEMM_STORE) return cudaErrorNotSupported;   // the baseline stores only
    if ((N + 15) / 16 > 65535) return cudaErrorInvalidValue;   // the grid's y limit: N up to 1,048,560
    dim3 grid((R + 16 * GEMM_ROW_TILES - 1) / (16 * GEMM_ROW_TILES), (N + 15) / 16), block(32 * GEMM_WARPS);
    switch (variant) {
    case 0: return REPRISE_LAUNCH((gemm_bf16_kernel<4, false>), grid, block, 0, s, X, W, R, N, K, out);
    case 1: return REPRISE_LAUNCH((gemm_bf16_kernel<8, false>), grid, block, 0, s, X, W, R, N, K, out);
    case 2: return REPRISE_LAUNCH((gemm_bf16_kernel<4, true>), grid, block, 0, s, X, W, R, N, K, out);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t launch_gemm_bf16_variant(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, int variant, cudaStream_t s) {
    return launch_gemm_bf16_split(X, W, R, N, K, gemm_store(out), variant, s);
}

cudaError_t launch_gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, cudaStream_t s) {
    return launch_gemm_bf16_variant(X, W, R, N, K, out, GEMM_BF16_DEFAULT_VARIANT, s);
}
