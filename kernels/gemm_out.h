// The GEMMs' output segments (gemm_mma.cu, gemm_wgmma.cu; kernels.h: columns [first[i], first[i + 1]) to p[i],
// row-major of the segment's width): whether a gemm_out is well formed, and where an output element goes.
#ifndef REPRISE_GEMM_OUT_H
#define REPRISE_GEMM_OUT_H

#include "kernels/kernels.h"

// Whether out's segments describe N columns: 1 to GEMM_OUT_MAX of them, the first at column 0, each starting past
// the one before and inside N.
__host__ __device__ static inline bool gemm_out_valid(const gemm_out &out, int N) {
    if (out.n < 1 || out.n > GEMM_OUT_MAX || out.first[0] != 0) return false;
    for (int i = 1; i < out.n; i++)
        if (out.first[i] <= out.first[i - 1] || out.first[i] >= N) return false;
    return true;
}

__device__ static inline float *gemm_out_at(gemm_out out, int N, int r, int n) {
    int seg = 0;
    while (seg + 1 < out.n && n >= out.first[seg + 1]) seg++;
    int width = (seg + 1 < out.n ? out.first[seg + 1] : N) - out.first[seg];
    return &out.p[seg][(size_t)r * width + n - out.first[seg]];
}

#endif
