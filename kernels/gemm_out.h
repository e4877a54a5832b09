// Where the GEMMs (gemm_mma.cu, gemm_wgmma.cu) write an output element: column n of row r in the segment of
// gemm_out it falls in (kernels.h: columns [first[i], first[i + 1]) to p[i], row-major of the segment's width).
#ifndef REPRISE_GEMM_OUT_H
#define REPRISE_GEMM_OUT_H

#include "kernels/kernels.h"

__device__ static inline float *gemm_out_at(gemm_out out, int N, int r, int n) {
    int seg = 0;
    while (seg + 1 < out.n && n >= out.first[seg + 1]) seg++;
    int width = (seg + 1 < out.n ? out.first[seg + 1] : N) - out.first[seg];
    return &out.p[seg][(size_t)r * width + n - out.first[seg]];
}

#endif
