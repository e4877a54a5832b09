// The residual stream's rows made ready for a GEMM with the RMSNorm folded in: x += delta (when given), the row
// rounded to BF16 (the GEMM's input), and its blocks' sums of squares (row_stats.h: the epilogue applies 1/rms).
// What the O and down projections' epilogues do themselves on one GPU at decode sizes; this kernel serves the other
// cases (tensor parallel: after the all-reduce; a step's first visit; the wgmma GEMM) with the same bits. A CTA per
// row and RS_WARPS x RS_GROUP blocks of 64 (a row of 8192, Qwen2-72B's, in 4 CTAs: each warp's requests are what one
// round of loads needs, not four rounds one after another); a warp takes RS_GROUP blocks at once (two coalesced
// loads a lane each, all in flight together), adds, writes and rounds them, then sums each block's squares in order
// by shuffles - the order row_ssq_block sums in.
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/row_stats.h"

#define RS_WARPS 8
#define RS_GROUP 4   // blocks a warp holds at once

__global__ void __launch_bounds__(32 * RS_WARPS) row_stats_kernel(float *x, const float *delta, int dim, bf16 *out16, float *ssq) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, blocks = (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK;
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *dr = delta ? delta + (size_t)blockIdx.x * dim : nullptr;
    bf16 *hr = out16 + (size_t)blockIdx.x * dim;
    static_assert(ROW_SSQ_BLOCK == 64, "a block is a warp's two loads");
    for (int b0 = (blockIdx.y * RS_WARPS + warp) * RS_GROUP; b0 < blocks; b0 += gridDim.y * RS_WARPS * RS_GROUP) {
        float v[RS_GROUP][2];
REPRISE_UNROLL
        for (int g = 0; g < RS_GROUP; g++)
REPRISE_UNROLL
            for (int h = 0; h < 2; h++) {
                int i = (b0 + g) * ROW_SSQ_BLOCK + 32 * h + lane;
                v[g][h] = i < dim ? xr[i] + (dr ? dr[i] : 0.0f) : 0.0f;
            }
REPRISE_UNROLL
        for (int g = 0; g < RS_GROUP; g++)
REPRISE_UNROLL
            for (int h = 0; h < 2; h++) {
                int i = (b0 + g) * ROW_SSQ_BLOCK + 32 * h + lane;
                if (i >= dim) continue;
                if (dr) xr[i] = v[g][h];
                hr[i] = __float2bfloat16(v[g][h]);
            }
REPRISE_UNROLL
        for (int g = 0; g < RS_GROUP; g++) {
            int b = b0 + g, n = min(ROW_SSQ_BLOCK, dim - b * ROW_SSQ_BLOCK);   // (warp-uniform)
            if (b >= blocks) break;
            float s = 0.0f;
            for (int j = 0; j < 32 && j < n; j++) {
                float e = __shfl_sync(0xffffffffu, v[g][0], j);
                s = __fmaf_rn(e, e, s);
            }
            for (int j = 0; j < 32 && 32 + j < n; j++) {
                float e = __shfl_sync(0xffffffffu, v[g][1], j);
                s = __fmaf_rn(e, e, s);
            }
            if (lane == 0) ssq[(size_t)blockIdx.x * blocks + b] = s;
        }
    }
}

cudaError_t launch_row_stats(float *x, const float *delta, int n, int dim, bf16 *out_bf16, float *ssq, cudaStream_t s) {
    if (n < 0 || dim < 1 || !x || !out_bf16 || !ssq) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    int blocks = (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK, per_cta = RS_WARPS * RS_GROUP;
    return REPRISE_LAUNCH_PDL(row_stats_kernel, dim3(n, (blocks + per_cta - 1) / per_cta), dim3(32 * RS_WARPS), 0, s, x, delta,
                              dim, out_bf16, ssq);
}
