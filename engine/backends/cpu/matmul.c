// The CPU backend's matrix multiply: out = x . W^T with W packed once at load into panels of output rows.
//
// Algorithm: W is packed into panels of 16 output rows interleaved by k (matmul.h), so one input column's 16
// weights are contiguous (two AVX2 vectors). The AVX2 tile, 3 input rows x 2 panels (32 outputs), keeps its 12
// vectors of sums in registers; for each k it loads the panels' four weight vectors once and, per row, broadcasts
// x[r][k] into a fused multiply-add with each; 4 to 6 rows take a tall tile, 6 rows x 1 panel, so a few rows (a
// speculative verifying pass) read each weight once. Decode (1 row) streams each panel once; prefill reuses each
// weight vector across 3 or 6 rows from registers and each panel pair across a block of rows from L2. Threads split
// the panels.
//
// BF16 and F16 panels: a decode step (at most 3 rows) widens each weight vector to float32 in registers as it is
// loaded, so it streams half the bytes of float32; more rows first widen a panel pair into a float32 scratch once
// per block of rows, so the widening costs one pass per 48 rows and the tile runs at float32 speed. Widening is
// exact, so neither choice changes a bit.
//
// The tile is chosen once for the CPU (AVX2 with FMA and F16C, or portable C). Every output element is the chain
// s = fma(x[k], w[k], s) over k in order from s = 0, in every tile shape and on every path: a fused multiply-add is
// exactly rounded, so the paths agree bit for bit, and a row's result never depends on the rows beside it.
#include "engine/backends/cpu/matmul.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loader/fp8.h"
#include "loader/weights.h"

#define MR 6          // input rows per call of a tile function (the AVX2 tile takes them 3 at a time)
#define NP 2          // panels per tile
#define ROW_BLOCK 48  // input rows whose x stays in L2 while a thread's panels pass over them
#define DIRECT_ROWS 3 // up to this many rows, a path that can widens BF16/F16 weights in registers

static size_t elem_size(st_dtype t) { return t == ST_F32 ? 4 : t == ST_F8_E4M3 ? 1 : 2; }

// An FP8 panel's element widens to its code's value times 2^-8 (what F16C makes of it, below: exact), and its
// row's output is multiplied by scale x 2^8 after the chain - the chain's sums are those of the values exactly
// scaled by 2^-8 (a power of two; nothing here comes near float's underflow), so the result is scale x the chain
// over the values, bit for bit.
#define FP8_WIDENED (1.0f / 256.0f)

static float elem_f32(const void *p, st_dtype t, size_t i) {
    if (t == ST_F32) return ((const float *)p)[i];
    if (t == ST_F8_E4M3) return fp8_e4m3_value(((const uint8_t *)p)[i]) * FP8_WIDENED;
    uint16_t h = ((const uint16_t *)p)[i];
    return t == ST_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

int matrix_pack(packed_matrix *m, const void *w, st_dtype dtype, int d, int k) {
    m->d = d, m->k = k, m->dtype = dtype, m->n_panels = (d + MATMUL_LANES - 1) / MATMUL_LANES, m->scales = NULL;
    m->group_k = k;
    size_t es = elem_size(dtype), panel = (size_t)k * MATMUL_LANES * es;
    m->panels = aligned_alloc(64, (matrix_bytes(m) + 63) & ~(size_t)63);
    if (!m->panels) return -1;
    // Row by row: the source is read in order (it may be a mapped file) and each panel's writes stay in cache.
    for (int j = 0; j < m->n_panels * MATMUL_LANES; j++) {
        unsigned char *dst = (unsigned char *)m->panels + (size_t)(j / MATMUL_LANES) * panel + (size_t)(j % MATMUL_LANES) * es;
        const unsigned char *src = (const unsigned char *)w + (size_t)j * k * es;
        for (int kk = 0; kk < k; kk++, dst += MATMUL_LANES * es) {
            if (j >= d) memset(dst, 0, es);
            else memcpy(dst, src + (size_t)kk * es, es);
        }
    }
    return 0;
}

int matrix_pack_fp8(packed_matrix *m, const void *w, st_dtype dtype, int d, int k, rp_err *err) {
    uint8_t *codes = malloc((size_t)d * k + 1);
    float *row = malloc(sizeof(float) * ((size_t)k + 1)), *scales = malloc(sizeof(float) * ((size_t)d + 1));
    int rc = !codes || !row || !scales ? rp_fail(err, "out of memory quantizing a (%d, %d) matrix to FP8", d, k) : 0;
    for (int j = 0; j < d && !rc; j++) {
        for (int kk = 0; kk < k; kk++) row[kk] = elem_f32(w, dtype, (size_t)j * k + kk);
        if (fp8_quantize_row(row, k, codes + (size_t)j * k, &scales[j], err)) rc = rp_wrap(err, "row %d", j);
    }
    if (!rc && matrix_pack(m, codes, ST_F8_E4M3, d, k)) rc = rp_fail(err, "out of memory packing a (%d, %d) FP8 matrix", d, k);
    if (!rc) m->scales = scales, scales = NULL;
    free(codes), free(row), free(scales);
    return rc;
}

int matrix_groups(const packed_matrix *m) { return (m->k + m->group_k - 1) / m->group_k; }

int matrix_pack_fp8_codes(packed_matrix *m, const uint8_t *codes, int d, int k, const float *scales, int group_k, rp_err *err) {
    for (size_t i = 0; i < (size_t)d * k; i++)
        if ((codes[i] & 0x7f) == 0x7f) return rp_fail(err, "weight [%zu, %zu] is the NaN code", i / k, i % k);
    if (matrix_pack(m, codes, ST_F8_E4M3, d, k)) return rp_fail(err, "out of memory packing a (%d, %d) FP8 matrix", d, k);
    m->group_k = group_k < k ? group_k : k;
    size_t n = (size_t)d * matrix_groups(m);
    m->scales = malloc(sizeof(float) * n);
    if (!m->scales) return matrix_free(m), rp_fail(err, "out of memory for a (%d, %d) FP8 matrix's scales", d, k);
    memcpy(m->scales, scales, sizeof(float) * n);
    return 0;
}

void matrix_free(packed_matrix *m) {
    free(m->panels), free(m->scales);
    m->panels = NULL, m->scales = NULL;
}

size_t matrix_packed_bytes(st_dtype dtype, int d, int k) {
    return (size_t)((d + MATMUL_LANES - 1) / MATMUL_LANES) * k * MATMUL_LANES * elem_size(dtype);
}

size_t matrix_bytes(const packed_matrix *m) {
    return matrix_packed_bytes(m->dtype, m->d, m->k) + (m->scales ? sizeof(float) * (size_t)m->d * matrix_groups(m) : 0);
}

void matrix_row(const packed_matrix *m, int j, float *out) {
    size_t base = (size_t)(j / MATMUL_LANES) * m->k * MATMUL_LANES + j % MATMUL_LANES;
    for (int kk = 0; kk < m->k; kk++) {
        float scale = m->scales ? m->scales[(size_t)j * matrix_groups(m) + kk / m->group_k] / FP8_WIDENED : 1.0f;
        out[kk] = elem_f32(m->panels, m->dtype, base + (size_t)kk * MATMUL_LANES) * scale;
    }
}

// A tile: rows [0, mr) of x (rows of k) against the np panels starting at w0 (elements of dtype), over the inputs
// [kb, ke): out[r * ld + c] for the first `valid` of the tile's columns c.
typedef void tile_fn(float *out, int ld, int valid, const float *x, int k, int kb, int ke, const void *w0, st_dtype dtype,
                     int mr, int np);
// Widens n elements of dtype to float32.
typedef void widen_fn(float *dst, const void *src, st_dtype dtype, size_t n);

static void widen_portable(float *dst, const void *src, st_dtype dtype, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = elem_f32(src, dtype, i);
}

// The portable tile, lane by lane (BF16/F16 panels element by element: slow, and only used when matmul could not
// get the scratch to widen them into).
static void tile_portable(float *out, int ld, int valid, const float *x, int k, int kb, int ke, const void *w0,
                          st_dtype dtype, int mr, int np) {
    float acc[MR][NP][MATMUL_LANES] = {{{0}}}, widened[MATMUL_LANES];
    for (int kk = kb; kk < ke; kk++)
        for (int p = 0; p < np; p++) {
            size_t at = ((size_t)p * k + kk) * MATMUL_LANES;
            const float *wv = (const float *)w0 + at;
            if (dtype != ST_F32) widen_portable(widened, (const unsigned char *)w0 + at * elem_size(dtype), dtype, MATMUL_LANES), wv = widened;
            for (int r = 0; r < mr; r++) {
                float xv = x[(size_t)r * k + kk];
                for (int l = 0; l < MATMUL_LANES; l++) acc[r][p][l] = fmaf(xv, wv[l], acc[r][p][l]);
            }
        }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int l = 0; l < MATMUL_LANES; l++) {
                int c = p * MATMUL_LANES + l;
                if (c < valid) out[(size_t)r * ld + c] = acc[r][p][l];
            }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

// Eight weights from element i, widened to float32 (aligned: i is a multiple of 8). E4M3 codes: a code in the high
// byte of a 16-bit lane, shifted right by one with its sign copied and that copy cleared (bit 14), is the
// half-precision number of the same mantissa with an exponent 8 lower (the biases, 7 and 15, are 8 apart;
// subnormals too), which F16C widens exactly: value x 2^-8 (FP8_WIDENED). (The NaN code would come out as 480 x
// 2^-8: fp8_quantize_row never makes it.)
AVX2 __attribute__((always_inline)) static inline __m256 load8(const void *w, size_t i, st_dtype dtype) {
    if (dtype == ST_F32) return _mm256_load_ps((const float *)w + i);
    if (dtype == ST_F8_E4M3) {
        __m128i h = _mm_unpacklo_epi8(_mm_setzero_si128(), _mm_loadl_epi64((const __m128i *)((const uint8_t *)w + i)));
        return _mm256_cvtph_ps(_mm_andnot_si128(_mm_set1_epi16(0x4000), _mm_srai_epi16(h, 1)));
    }
    __m128i h = _mm_load_si128((const __m128i *)((const uint16_t *)w + i));
    if (dtype == ST_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

// A panel's 16 weights of one input column, widened to two halves of float32 (a0: lanes 0-7, a1: 8-15). FP8 takes
// all 16 codes at once: sign-extended to 16 bits, shifted left by 7 (the sign lands in bit 15, and a copy of it in
// bit 14, cleared; exponent and mantissa in bits 7-13) - the same half-precision numbers as load8's, in 3 operations
// for 16 codes rather than 3 for each 8.
AVX2 __attribute__((always_inline)) static inline void load16(const void *w, size_t i, st_dtype dtype, __m256 *a0, __m256 *a1) {
    if (dtype == ST_F8_E4M3) {
        __m256i h = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)((const uint8_t *)w + i)));
        h = _mm256_andnot_si256(_mm256_set1_epi16(0x4000), _mm256_slli_epi16(h, 7));
        *a0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h)), *a1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
        return;
    }
    *a0 = load8(w, i, dtype), *a1 = load8(w, i + 8, dtype);
}

// AVX2: a panel is two ymm halves; up to 3 rows x 2 panels, 12 ymm sums.
AVX2 __attribute__((always_inline)) static inline void tile256(float *out, int ld, int valid, const float *x, int k, int kb,
                                                               int ke, const void *w0, st_dtype dtype, int mr, int np) {
    __m256 acc[3][NP][2];
    for (int r = 0; r < 3; r++)
        for (int p = 0; p < NP; p++) acc[r][p][0] = acc[r][p][1] = _mm256_setzero_ps();
    size_t panel = (size_t)k * MATMUL_LANES;
    for (int kk = kb; kk < ke; kk++) {
        size_t i = (size_t)kk * MATMUL_LANES;
        __m256 a0, a1, b0, b1;
        load16(w0, i, dtype, &a0, &a1);
        b0 = a0, b1 = a1;
        if (np > 1) load16(w0, panel + i, dtype, &b0, &b1);
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
            int c = p * MATMUL_LANES, n = valid - c < MATMUL_LANES ? valid - c : MATMUL_LANES;
            if (n > 0) memcpy(out + (size_t)r * ld + c, tmp, sizeof(float) * (size_t)n);
        }
}

// AVX2, 4 to 6 rows against one panel: 12 ymm sums, each weight vector loaded once for all the rows. A verifying
// pass of a few rows (speculative decoding) then streams the weights once, as a decode step does, instead of once
// for a 3-row tile and again from L2 for each row left over, which cost a 5-row pass twice a 1-row step.
AVX2 __attribute__((always_inline)) static inline void tile_tall(float *out, int ld, int valid, const float *x, int k, int kb,
                                                                 int ke, const void *w0, st_dtype dtype, int mr) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int kk = kb; kk < ke; kk++) {
        __m256 a0, a1;
        load16(w0, (size_t)kk * MATMUL_LANES, dtype, &a0, &a1);
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_set1_ps(x[(size_t)r * k + kk]);
            acc[r][0] = _mm256_fmadd_ps(xv, a0, acc[r][0]), acc[r][1] = _mm256_fmadd_ps(xv, a1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float tmp[MATMUL_LANES];
        _mm256_storeu_ps(tmp, acc[r][0]), _mm256_storeu_ps(tmp + 8, acc[r][1]);
        int n = valid < MATMUL_LANES ? valid : MATMUL_LANES;
        if (n > 0) memcpy(out + (size_t)r * ld, tmp, sizeof(float) * (size_t)n);
    }
}

// The rows of one call for one dtype known at compile time (so load8 is specialised): up to 3 rows in one tile
// against both panels, 4 to 6 rows in a tall tile per panel; the row count a compile-time constant in each.
AVX2 __attribute__((always_inline)) static inline void tile_avx2_rows(float *out, int ld, int valid, const float *x, int k,
                                                                      int kb, int ke, const void *w0, st_dtype dtype, int mr,
                                                                      int np) {
    switch (mr) {
    case 1: tile256(out, ld, valid, x, k, kb, ke, w0, dtype, 1, np); return;
    case 2: tile256(out, ld, valid, x, k, kb, ke, w0, dtype, 2, np); return;
    case 3: tile256(out, ld, valid, x, k, kb, ke, w0, dtype, 3, np); return;
    }
    size_t panel_bytes = (size_t)k * MATMUL_LANES * elem_size(dtype);
    for (int p = 0; p < np && valid > p * MATMUL_LANES; p++) {
        const void *wp = (const unsigned char *)w0 + p * panel_bytes;
        float *op = out + p * MATMUL_LANES;
        int left = valid - p * MATMUL_LANES;
        if (mr == 4) tile_tall(op, ld, left, x, k, kb, ke, wp, dtype, 4);
        else if (mr == 5) tile_tall(op, ld, left, x, k, kb, ke, wp, dtype, 5);
        else tile_tall(op, ld, left, x, k, kb, ke, wp, dtype, 6);
    }
}

AVX2 static void tile_avx2(float *out, int ld, int valid, const float *x, int k, int kb, int ke, const void *w0,
                           st_dtype dtype, int mr, int np) {
    if (dtype == ST_F32) tile_avx2_rows(out, ld, valid, x, k, kb, ke, w0, ST_F32, mr, np);
    else if (dtype == ST_BF16) tile_avx2_rows(out, ld, valid, x, k, kb, ke, w0, ST_BF16, mr, np);
    else if (dtype == ST_F8_E4M3) tile_avx2_rows(out, ld, valid, x, k, kb, ke, w0, ST_F8_E4M3, mr, np);
    else tile_avx2_rows(out, ld, valid, x, k, kb, ke, w0, ST_F16, mr, np);
}

AVX2 static void widen_avx2(float *dst, const void *src, st_dtype dtype, size_t n) {
    size_t i = 0;   // src is a panel (64-byte aligned), n a multiple of 16
    if (dtype == ST_BF16)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src, i, ST_BF16));
    else if (dtype == ST_F16)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src, i, ST_F16));
    else if (dtype == ST_F8_E4M3)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src, i, ST_F8_E4M3));
    widen_portable(dst + i, (const unsigned char *)src + i * elem_size(dtype), dtype, n - i);
}
#endif

// The paths this CPU can run, best first: AVX2 with FMA (and F16C), portable. All give the same bits. (An AVX-512
// tile is the next step, to land once it has run on a CPU that has AVX-512: the machine this was written on has none.)
typedef struct {
    const char *name;
    tile_fn *tile;
    widen_fn *widen;
    int widens;   // the tile reads BF16/F16 panels at full speed (used for up to DIRECT_ROWS rows; more are widened first)
} matmul_path;
static matmul_path paths[2];
static int n_paths;
static const matmul_path *path_of_cpu;

#if defined(__x86_64__)
// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}
#endif

__attribute__((constructor)) static void choose_path(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
        paths[n_paths++] = (matmul_path){"avx2", tile_avx2, widen_avx2, 1};
#endif
    paths[n_paths++] = (matmul_path){"portable", tile_portable, widen_portable, 0};
    path_of_cpu = &paths[0];
}

int matmul_path_count(void) { return n_paths; }
const char *matmul_path_name(int i) { return i >= 0 && i < n_paths ? paths[i].name : NULL; }
void matmul_use_path(int i) {
    if (i >= 0 && i < n_paths) path_of_cpu = &paths[i];
}

// FP8: rows [0, mr) of x against the np panels from output column j0, a group of inputs at a time: each output is
// (the group's chain) x its scale (and 2^8: FP8_WIDENED), the groups' terms summed in order by fused multiply-adds.
static void scaled_groups(const matmul_path *path, float *out, const float *x, const packed_matrix *w, const void *w0,
                          st_dtype dtype, int j0, int mr, int np) {
    float chain[MR * NP * MATMUL_LANES];
    int d = w->d, k = w->k, groups = matrix_groups(w), ld = NP * MATMUL_LANES, valid = d - j0 < ld ? d - j0 : ld;
    for (int g = 0; g < groups; g++) {
        int kb = g * w->group_k, ke = kb + w->group_k < k ? kb + w->group_k : k;
        path->tile(chain, ld, valid, x, k, kb, ke, w0, dtype, mr, np);
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < valid && c < np * MATMUL_LANES; c++) {
                float term = chain[r * ld + c], scale = w->scales[(size_t)(j0 + c) * groups + g] / FP8_WIDENED;
                float *o = out + (size_t)r * d + j0 + c;
                *o = g ? fmaf(term, scale, *o) : term * scale;
            }
    }
}

// Rows [0, n) against panels [pa, pb), one thread's share. scratch: NP panels of float32, when the panels are to
// be widened before the tile reads them.
static void matmul_panels(const matmul_path *path, float *out, const float *x, const packed_matrix *w, int n, int pa,
                          int pb, float *scratch) {
    int k = w->k, d = w->d;
    size_t panel = (size_t)k * MATMUL_LANES, es = elem_size(w->dtype);
    for (int r0 = 0; r0 < n; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < n ? r0 + ROW_BLOCK : n;
        for (int p = pa; p < pb; p += NP) {
            int np = pb - p < NP ? pb - p : NP;
            const void *w0 = (const unsigned char *)w->panels + p * panel * es;
            st_dtype dtype = w->dtype;
            if (scratch) path->widen(scratch, w0, dtype, np * panel), w0 = scratch, dtype = ST_F32;
            int j0 = p * MATMUL_LANES, valid = d - j0;
            for (int r = r0; r < r1; r += MR) {
                int mr = r1 - r < MR ? r1 - r : MR;
                if (!w->scales) path->tile(out + (size_t)r * d + j0, d, valid, x + (size_t)r * k, k, 0, k, w0, dtype, mr, np);
                else scaled_groups(path, out + (size_t)r * d, x + (size_t)r * k, w, w0, dtype, j0, mr, np);
            }
        }
    }
}

// Each thread's scratch for widened panels, kept from call to call: a fresh allocation of over 128 KiB is a fresh
// mapping, whose page faults cost more than the widening. It grows to the largest k and is freed when its thread
// ends (a pthread key's destructor: OpenMP teams come and go).
static _Thread_local float *thread_scratch;
static _Thread_local size_t thread_scratch_floats;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void make_scratch_key(void) { pthread_key_create(&scratch_key, free); }

static float *scratch_of_thread(size_t floats) {
    if (thread_scratch_floats >= floats) return thread_scratch;
    pthread_once(&scratch_once, make_scratch_key);
    free(thread_scratch);
    thread_scratch = aligned_alloc(64, sizeof(float) * floats);
    thread_scratch_floats = thread_scratch ? floats : 0;
    pthread_setspecific(scratch_key, thread_scratch);
    return thread_scratch;
}

// One thread's share, with the scratch it needs (without it, out of memory, the tile reads the panels as they are).
static void matmul_share(const matmul_path *path, float *out, const float *x, const packed_matrix *w, int n, int pa, int pb) {
    float *scratch = NULL;
    if (w->dtype != ST_F32 && !(path->widens && n <= DIRECT_ROWS)) scratch = scratch_of_thread((size_t)NP * MATMUL_LANES * w->k);
    matmul_panels(path, out, x, w, n, pa, pb, scratch);
}

void matmul_part(float *out, const float *x, const packed_matrix *w, int n, int part, int n_parts) {
    int pairs = (w->n_panels + NP - 1) / NP;
    int a = (int)((long)pairs * part / n_parts) * NP, b = (int)((long)pairs * (part + 1) / n_parts) * NP;
    if (b > w->n_panels) b = w->n_panels;
    if (a < b) matmul_share(path_of_cpu, out, x, w, n, a, b);
}

void matmul(float *out, const float *x, const packed_matrix *w, int n, int n_threads) {
    int pairs = (w->n_panels + NP - 1) / NP;
    int threads = (size_t)n * w->d * w->k > PARALLEL_MIN_WORK ? n_threads : 1;
    if (threads > pairs) threads = pairs;
    if (threads <= 1) {
        matmul_part(out, x, w, n, 0, 1);
        return;
    }
#pragma omp parallel num_threads(threads)
    matmul_part(out, x, w, n, omp_get_thread_num(), omp_get_num_threads());
}
