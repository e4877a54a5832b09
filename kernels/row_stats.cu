// The residual stream's rows made ready for a GEMM with the RMSNorm folded in: x += delta (when given), the row
// rounded to BF16 (the GEMM's input), and its blocks' sums of squares (row_stats.h: the epilogue applies 1/rms).
// What the O projection's epilogue does itself on one GPU at decode sizes; this kernel serves the other cases
// (tensor parallel: after the all-reduce; the wgmma GEMM) with the same bits. One CTA a row: the add and the
// rounding by all threads, then thread b sums block b.
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/row_stats.h"

__global__ void row_stats_kernel(float *x, const float *delta, int dim, bf16 *out16, float *ssq) {
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *dr = delta ? delta + (size_t)blockIdx.x * dim : nullptr;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i];
        if (dr) v += dr[i], xr[i] = v;
        out16[(size_t)blockIdx.x * dim + i] = __float2bfloat16(v);
    }
    __syncthreads();
    int blocks = (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
        ssq[(size_t)blockIdx.x * blocks + b] = row_ssq_block(xr + b * ROW_SSQ_BLOCK, min(ROW_SSQ_BLOCK, dim - b * ROW_SSQ_BLOCK));
}

cudaError_t launch_row_stats(float *x, const float *delta, int n, int dim, bf16 *out_bf16, float *ssq, cudaStream_t s) {
    if (n < 0 || dim < 1 || !x || !out_bf16 || !ssq) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    return REPRISE_LAUNCH(row_stats_kernel, dim3(n), dim3(128), 0, s, x, delta, dim, out_bf16, ssq);
}
