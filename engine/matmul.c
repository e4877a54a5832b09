// The CPU backend's matrix multiply: out = x . W^T with W stored like a torch Linear weight.
//
// Algorithm: every output element is a dot product of two contiguous rows, accumulated in 8 float lanes (lane j
// sums k = j, j+8, ...), reduced by a fixed tree, then the k % 8 tail added in order. Micro-tiles of 4 weight rows x
// 2 input rows keep 8 accumulators in registers and read each weight vector once per 2 input rows; edge tiles
// use a 1 x 1 kernel that performs the identical per-element sequence. Threads split the weight rows; blocks of
// input rows keep the x block in L2 while a 4-row weight tile stays in L1. The arithmetic is the same plain
// multiply-then-add (no FMA contraction in ISO C mode) on every ISA, so the AVX2 clone and the SSE fallback agree
// bit for bit.
#include "engine/matmul.h"

#include <string.h>

// The helpers below pass 32-byte vectors between static inline functions only, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));

#define ROW_BLOCK 64

static inline v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float finish(v8 a, const float *x, const float *w, int k8, int k) {
    float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
    float s = (s0 + s2) + (s1 + s3);
    for (int i = k8; i < k; i++) s += x[i] * w[i];
    return s;
}

static inline float dot1(const float *x, const float *w, int k) {
    int k8 = k & ~7;
    v8 a = {0};
    for (int i = 0; i < k8; i += 8) a += load8(x + i) * load8(w + i);
    return finish(a, x, w, k8, k);
}

// out[r][j] for rows r0..r1 of x and weight rows j0..j0+3 (all four present).
static inline void tile4(float *out, const float *x, const float *w, int r0, int r1, int j0, int d, int k) {
    int k8 = k & ~7;
    const float *w0 = w + (size_t)j0 * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    int r = r0;
    for (; r + 1 < r1; r += 2) {
        const float *xa = x + (size_t)r * k, *xb = xa + k;
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        for (int i = 0; i < k8; i += 8) {
            v8 va = load8(xa + i), vb = load8(xb + i), q;
            q = load8(w0 + i), a0 += va * q, b0 += vb * q;
            q = load8(w1 + i), a1 += va * q, b1 += vb * q;
            q = load8(w2 + i), a2 += va * q, b2 += vb * q;
            q = load8(w3 + i), a3 += va * q, b3 += vb * q;
        }
        float *oa = out + (size_t)r * d + j0, *ob = oa + d;
        oa[0] = finish(a0, xa, w0, k8, k), oa[1] = finish(a1, xa, w1, k8, k);
        oa[2] = finish(a2, xa, w2, k8, k), oa[3] = finish(a3, xa, w3, k8, k);
        ob[0] = finish(b0, xb, w0, k8, k), ob[1] = finish(b1, xb, w1, k8, k);
        ob[2] = finish(b2, xb, w2, k8, k), ob[3] = finish(b3, xb, w3, k8, k);
    }
    for (; r < r1; r++)
        for (int j = 0; j < 4; j++) out[(size_t)r * d + j0 + j] = dot1(x + (size_t)r * k, w + (size_t)(j0 + j) * k, k);
}

__attribute__((target_clones("avx2", "default")))
void matmul(float *out, const float *x, const float *w, int n, int d, int k, int n_threads) {
    int tiles = (d + 3) / 4;
    for (int r0 = 0; r0 < n; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < n ? r0 + ROW_BLOCK : n;
#pragma omp parallel for schedule(static) num_threads(n_threads) if ((size_t)(r1 - r0) * d * k > PARALLEL_MIN_WORK)
        for (int t = 0; t < tiles; t++) {
            int j0 = t * 4;
            if (j0 + 4 <= d) tile4(out, x, w, r0, r1, j0, d, k);
            else
                for (int r = r0; r < r1; r++)
                    for (int j = j0; j < d; j++) out[(size_t)r * d + j] = dot1(x + (size_t)r * k, w + (size_t)j * k, k);
        }
    }
}
