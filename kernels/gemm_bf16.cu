// The projections' GEMM on tensor cores, batch-invariant: out (R, N) = X (R, K) . W^T, X and W in BF16, FP32
// accumulation. A block of 4 warps computes 16 rows x 64 columns: for each 16-wide slice of K, in order, the
// threads stage the X tile (16 x 16) and the W tile (64 x 16) in shared memory, zero-filled past the edges, and
// each warp multiplies them into its 16 x 16 accumulator with one WMMA mma_sync. Every output element is thus the
// same sequence of operations - K slices in order, each slice one tensor-core product - whatever R, the rows
// beside it and the shapes around it, so a sequence's numbers never depend on what it is batched with (a library
// GEMM picks its algorithm, and its reduction order, by shape). The weights are read once per 16 rows: a decode
// step (up to 16 rows) reads them once.
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define GEMM_TILE_N 64

__global__ void gemm_bf16_kernel(const bf16 *X, const bf16 *W, int R, int N, int K, float *out) {
    __shared__ __align__(32) bf16 xs[16 * 16];
    __shared__ __align__(32) bf16 ws[GEMM_TILE_N * 16];
    __shared__ __align__(32) float cs[16 * GEMM_TILE_N];
    int row0 = blockIdx.y * 16, col0 = blockIdx.x * GEMM_TILE_N, warp = threadIdx.x / 32;
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, bf16, nvcuda::wmma::row_major> a;
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, bf16, nvcuda::wmma::col_major> b;
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> c;
    nvcuda::wmma::fill_fragment(c, 0.0f);
    const bf16 zero = __float2bfloat16(0.0f);
    for (int k0 = 0; k0 < K; k0 += 16) {
        for (int e = threadIdx.x; e < 16 * 16; e += blockDim.x) {   // X tile: (row, k)
            int r = e / 16, k = e % 16;
            xs[e] = row0 + r < R && k0 + k < K ? X[(size_t)(row0 + r) * K + k0 + k] : zero;
        }
        for (int e = threadIdx.x; e < GEMM_TILE_N * 16; e += blockDim.x) {   // W tile: (column, k), as W is stored
            int n = e / 16, k = e % 16;
            ws[e] = col0 + n < N && k0 + k < K ? W[(size_t)(col0 + n) * K + k0 + k] : zero;
        }
        __syncthreads();
        nvcuda::wmma::load_matrix_sync(a, xs, 16);
        nvcuda::wmma::load_matrix_sync(b, ws + warp * 16 * 16, 16);   // (k, n) at n * 16 + k: column-major
        nvcuda::wmma::mma_sync(c, a, b, c);
        __syncthreads();   // the tiles are refilled next
    }
    nvcuda::wmma::store_matrix_sync(cs + warp * 16, c, GEMM_TILE_N, nvcuda::wmma::mem_row_major);
    __syncthreads();
    for (int e = threadIdx.x; e < 16 * GEMM_TILE_N; e += blockDim.x) {
        int r = e / GEMM_TILE_N, n = e % GEMM_TILE_N;
        if (row0 + r < R && col0 + n < N) out[(size_t)(row0 + r) * N + col0 + n] = cs[e];
    }
}

cudaError_t launch_gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, cudaStream_t s) {
    dim3 grid((N + GEMM_TILE_N - 1) / GEMM_TILE_N, (R + 15) / 16);
    return REPRISE_LAUNCH(gemm_bf16_kernel, grid, dim3(128), 0, s, X, W, R, N, K, out);
}
