// The CPU backend's matrix multiply: out = x . W^T with W packed once at load into panels of output rows.
//
// Algorithm: W is packed into panels of 16 output rows interleaved by k (matmul.h), so one input column's 16
// weights are contiguous (two AVX2 vectors). The AVX2 tile, 3 input rows x 2 panels (32 outputs), keeps its 12
// vectors of sums in registers; for each k it loads the panels' four weight vectors once and, per row, broadcasts
// x[r][k] into a fused multiply-add with each. Decode (1 row) streams each panel once; prefill reuses each weight
// vector across 3 rows from registers and each panel pair across a block of rows from L2. Threads split the panels.
//
// The tile is chosen once for the CPU (AVX2 with FMA, or portable C). Every output element is the chain
// s = fma(x[k], w[k], s) over k in order from s = 0, in every tile shape and on every path: a fused multiply-add is
// exactly rounded, so the two paths agree bit for bit, and a row's result never depends on the rows beside it.
#include "engine/matmul.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MR 6          // input rows per call of a tile function (the AVX2 tile takes them 3 at a time)
#define NP 2          // panels per tile
#define ROW_BLOCK 48  // input rows whose x stays in L2 while a thread's panels pass over them

int matrix_pack(packed_matrix *m, const float *w, int d, int k) {
    m->d = d, m->k = k, m->n_panels = (d + MATMUL_LANES - 1) / MATMUL_LANES;
    size_t n = (size_t)m->n_panels * k * MATMUL_LANES;
    m->panels = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!m->panels) return -1;
    for (int p = 0; p < m->n_panels; p++)
        for (int kk = 0; kk < k; kk++) {
            float *dst = m->panels + ((size_t)p * k + kk) * MATMUL_LANES;
            for (int l = 0; l < MATMUL_LANES; l++) {
                int j = p * MATMUL_LANES + l;
                dst[l] = j < d ? w[(size_t)j * k + kk] : 0.0f;
            }
        }
    return 0;
}

void matrix_free(packed_matrix *m) {
    free(m->panels);
    m->panels = NULL;
}

size_t matrix_bytes(const packed_matrix *m) { return (size_t)m->n_panels * m->k * MATMUL_LANES * sizeof(float); }

void matrix_row(const packed_matrix *m, int j, float *out) {
    const float *p = m->panels + (size_t)(j / MATMUL_LANES) * m->k * MATMUL_LANES + j % MATMUL_LANES;
    for (int kk = 0; kk < m->k; kk++) out[kk] = p[(size_t)kk * MATMUL_LANES];
}

// The portable tile: rows [0, mr) x panels [p0, p0 + np), lane by lane.
static void tile_portable(float *out, int d, const float *x, int k, const float *panels, int p0, int mr, int np) {
    float acc[MR][NP][MATMUL_LANES] = {{{0}}};
    const float *w0 = panels + (size_t)p0 * k * MATMUL_LANES;
    for (int kk = 0; kk < k; kk++)
        for (int p = 0; p < np; p++) {
            const float *wv = w0 + ((size_t)p * k + kk) * MATMUL_LANES;
            for (int r = 0; r < mr; r++) {
                float xv = x[(size_t)r * k + kk];
                for (int l = 0; l < MATMUL_LANES; l++) acc[r][p][l] = fmaf(xv, wv[l], acc[r][p][l]);
            }
        }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int l = 0; l < MATMUL_LANES; l++) {
                int j = (p0 + p) * MATMUL_LANES + l;
                if (j < d) out[(size_t)r * d + j] = acc[r][p][l];
            }
}

typedef void tile_fn(float *out, int d, const float *x, int k, const float *panels, int p0, int mr, int np);

#if defined(__x86_64__)
#include <immintrin.h>

// AVX2: a panel is two ymm halves; 3 rows x 2 panels, 12 ymm sums.
__attribute__((target("avx2,fma"), always_inline)) static inline void tile256(float *out, int d, const float *x, int k,
                                                                             const float *panels, int p0, int mr, int np) {
    __m256 acc[3][NP][2];
    for (int r = 0; r < 3; r++)
        for (int p = 0; p < NP; p++) acc[r][p][0] = acc[r][p][1] = _mm256_setzero_ps();
    const float *w0 = panels + (size_t)p0 * k * MATMUL_LANES, *w1 = w0 + (size_t)k * MATMUL_LANES;
    for (int kk = 0; kk < k; kk++) {
        __m256 a0 = _mm256_load_ps(w0 + (size_t)kk * MATMUL_LANES), a1 = _mm256_load_ps(w0 + (size_t)kk * MATMUL_LANES + 8);
        __m256 b0 = a0, b1 = a1;
        if (np > 1) b0 = _mm256_load_ps(w1 + (size_t)kk * MATMUL_LANES), b1 = _mm256_load_ps(w1 + (size_t)kk * MATMUL_LANES + 8);
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_set1_ps(x[(size_t)r * k + kk]);
            acc[r][0][0] = _mm256_fmadd_ps(xv, a0, acc[r][0][0]), acc[r][0][1] = _mm256_fmadd_ps(xv, a1, acc[r][0][1]);
            if (np > 1) acc[r][1][0] = _mm256_fmadd_ps(xv, b0, acc[r][1][0]), acc[r][1][1] = _mm256_fmadd_ps(xv, b1, acc[r][1][1]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++) {
            float tmp[MATMUL_LANES];
            _mm256_storeu_ps(tmp, acc[r][p][0]), _mm256_storeu_ps(tmp + 8, acc[r][p][1]);
            int j = (p0 + p) * MATMUL_LANES, valid = d - j < MATMUL_LANES ? d - j : MATMUL_LANES;
            memcpy(out + (size_t)r * d + j, tmp, sizeof(float) * (size_t)valid);
        }
}

__attribute__((target("avx2,fma"))) static void tile_avx2(float *out, int d, const float *x, int k, const float *panels,
                                                          int p0, int mr, int np) {
    int r = 0;
    for (; r + 3 <= mr && np == NP; r += 3) tile256(out + (size_t)r * d, d, x + (size_t)r * k, k, panels, p0, 3, NP);
    for (; r < mr; r++) tile256(out + (size_t)r * d, d, x + (size_t)r * k, k, panels, p0, 1, np);
}
#endif

// The paths this CPU can run, best first: AVX2 with FMA, portable. All give the same bits. (An AVX-512 tile is the
// next step, to land once it has run on a CPU that has AVX-512: the machine this was written on has none.)
static struct {
    const char *name;
    tile_fn *tile;
} paths[2];
static int n_paths;
static tile_fn *tile_of_cpu;

__attribute__((constructor)) static void choose_tile(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) paths[n_paths].name = "avx2", paths[n_paths++].tile = tile_avx2;
#endif
    paths[n_paths].name = "portable", paths[n_paths++].tile = tile_portable;
    tile_of_cpu = paths[0].tile;
}

int matmul_path_count(void) { return n_paths; }
const char *matmul_path_name(int i) { return i >= 0 && i < n_paths ? paths[i].name : NULL; }
void matmul_use_path(int i) {
    if (i >= 0 && i < n_paths) tile_of_cpu = paths[i].tile;
}

// Rows [0, n) against panels [pa, pb), one thread's share.
static void matmul_panels(tile_fn *tile, float *out, const float *x, const packed_matrix *w, int n, int pa, int pb) {
    int k = w->k, d = w->d;
    for (int r0 = 0; r0 < n; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < n ? r0 + ROW_BLOCK : n;
        for (int p = pa; p < pb; p += NP) {
            int np = pb - p < NP ? pb - p : NP;
            for (int r = r0; r < r1; r += MR)
                tile(out + (size_t)r * d, d, x + (size_t)r * k, k, w->panels, p, r1 - r < MR ? r1 - r : MR, np);
        }
    }
}

void matmul(float *out, const float *x, const packed_matrix *w, int n, int n_threads) {
    tile_fn *tile = tile_of_cpu;
    int pairs = (w->n_panels + NP - 1) / NP;
    int threads = (size_t)n * w->d * w->k > PARALLEL_MIN_WORK ? n_threads : 1;
    if (threads > pairs) threads = pairs;
    if (threads <= 1) {
        matmul_panels(tile, out, x, w, n, 0, w->n_panels);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int a = pairs * t / nt * NP, b = pairs * (t + 1) / nt * NP;
        matmul_panels(tile, out, x, w, n, a, b < w->n_panels ? b : w->n_panels);
    }
}
