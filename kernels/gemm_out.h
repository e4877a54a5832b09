// The GEMMs' epilogues (gemm_mma.cu, gemm_wgmma.cu, gemm_bf16.cu; kernels.h's gemm_out): whether a gemm_out is well
// formed for N columns, and the write of an output element (GEMM_STORE, GEMM_ADD) or of a gate/up pair (GEMM_SWIGLU).
#ifndef REPRISE_GEMM_OUT_H
#define REPRISE_GEMM_OUT_H

#include "kernels/kernels.h"
#include "kernels/row_stats.h"

// GEMM_STORE: 1 to GEMM_OUT_MAX segments, the first at column 0, each starting past the one before and inside N;
// GEMM_ADD: one buffer; GEMM_SWIGLU: N the interleaved rows of `width` MLP rows (gemm_swiglu_rows) and h given.
static inline bool gemm_out_valid(const gemm_out &out, int N) {
    if (out.epilogue == GEMM_SWIGLU) return out.h && out.width > 0 && N == gemm_swiglu_rows(out.width);
    if (out.n < 1 || out.n > GEMM_OUT_MAX || out.first[0] != 0 || !out.p[0]) return false;
    if (out.epilogue == GEMM_ADD) return out.n == 1 && (!out.ssq || out.h);
    if (out.epilogue != GEMM_STORE) return false;
    for (int i = 1; i < out.n; i++)
        if (out.first[i] <= out.first[i - 1] || out.first[i] >= N) return false;
    return true;
}

// Where element (r, n) of a GEMM_STORE or GEMM_ADD output lives. The segment is picked by comparisons, not an index
// into the parameter's arrays, which would copy them to local memory.
__device__ static inline float *gemm_out_at(const gemm_out &out, int N, int r, int n) {
    bool in1 = out.n > 1 && n >= out.first[1], in2 = out.n > 2 && n >= out.first[2];
    int first = in2 ? out.first[2] : in1 ? out.first[1] : 0;
    int end = in2 ? N : in1 ? (out.n > 2 ? out.first[2] : N) : (out.n > 1 ? out.first[1] : N);
    float *p = in2 ? out.p[2] : in1 ? out.p[1] : out.p[0];
    return &p[(size_t)r * (end - first) + n - first];
}

// Element (r, n) of the product is v: stored, or added to what is there (GEMM_ADD, the sum rounded into h too where
// h is given); returns what was written.
__device__ static inline float gemm_out_put(const gemm_out &out, int N, int r, int n, float v) {
    float *p = gemm_out_at(out, N, r, n);
    if (out.epilogue == GEMM_ADD) {
        v = *p + v;
        if (out.h) out.h[(size_t)r * N + n] = __float2bfloat16(v);
    }
    *p = v;
    return v;
}

// GEMM_SWIGLU and GEMM_STORE: what row r's products are multiplied by: 1 / rms from out.ssq (a row of K elements),
// or 1 without.
__device__ static inline float gemm_out_row_scale(const gemm_out &out, int K, int r) {
    return out.ssq ? row_inv_rms(out.ssq + (size_t)r * ((K + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK), K, out.eps) : 1.0f;
}

// silu(gate) * up: the SwiGLU of the MLP, as the CPU backend computes it (gate / (1 + e^-gate) * up).
__device__ static inline float swiglu_value(float gate, float up) { return gate / (1.0f + __expf(-gate)) * up; }

// GEMM_SWIGLU: the product's columns n (a gate row: n % 16 < 8) and n + 8 (its up row) of row r are gate and up.
__device__ static inline void gemm_out_put_swiglu(const gemm_out &out, int r, int n, float gate, float up) {
    int m = n / 16 * 8 + n % 16;   // the MLP row
    if (m < out.width) out.h[(size_t)r * out.width + m] = __float2bfloat16(swiglu_value(gate, up));
}

#endif
