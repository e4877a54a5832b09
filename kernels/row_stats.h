// A row's RMSNorm statistics by one rule wherever they are made (row_stats.cu, and the O projection's epilogue in
// gemm_mma.cu) and read (the gate/up GEMM's epilogue): the sum of squares in blocks of ROW_SSQ_BLOCK elements, each
// summed in order with fused multiply-adds, and 1/rms from the blocks' sums added in order.
#ifndef REPRISE_ROW_STATS_H
#define REPRISE_ROW_STATS_H

#include "kernels/kernels.h"

// Sum of v[0]^2 .. v[n-1]^2 (n <= ROW_SSQ_BLOCK), in order.
__device__ static inline float row_ssq_block(const float *v, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s = __fmaf_rn(v[i], v[i], s);
    return s;
}

// 1 / rms of a row of dim elements from its blocks' sums of squares.
__device__ static inline float row_inv_rms(const float *ssq, int dim, float eps) {
    float s = 0.0f;
    for (int b = 0, blocks = (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK; b < blocks; b++) s += ssq[b];
    return rsqrtf(s / dim + eps);
}

// The same by a whole warp, every lane getting it: the lanes load 32 blocks at once (one request, where a thread
// alone waits on a load per block), then each lane adds them up in block order from shuffles - row_inv_rms's sum,
// bit for bit.
__device__ static inline float row_inv_rms_warp(const float *ssq, int dim, float eps) {
    const int lane = threadIdx.x % 32, blocks = (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK;
    float s = 0.0f;
    for (int b0 = 0; b0 < blocks; b0 += 32) {
        float mine = b0 + lane < blocks ? ssq[b0 + lane] : 0.0f;
        for (int j = 0; j < 32 && b0 + j < blocks; j++) s += __shfl_sync(0xffffffffu, mine, j);
    }
    return rsqrtf(s / dim + eps);
}

#endif
