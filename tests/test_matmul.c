// The CPU matmul: every code path this CPU runs (AVX2, portable) gives the same bits, a row's result does
// not depend on the rows beside it or on the thread count, BF16 and F16 panels give the bits of their float32
// widening, the packing keeps every element, and the sums agree with a double-precision reference.
#include <stdint.h>

#include "engine/backends/cpu/matmul.h"
#include "loader/fp8.h"
#include "loader/weights.h"
#include "tests/test_util.h"

static unsigned rng = 12345;
static float rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *random_floats(size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}

// w (n floats) stored as dtype: the raw elements (returned) and, in w, the float32 values they hold.
static void *stored_as(float *w, size_t n, st_dtype dtype) {
    if (dtype == ST_F32) {
        float *raw = malloc(sizeof(float) * (n ? n : 1));
        memcpy(raw, w, sizeof(float) * n);
        return raw;
    }
    uint16_t *raw = malloc(sizeof(uint16_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        rng = rng * 1664525u + 1013904223u;
        // any bit pattern but inf/nan (F16: up to its largest; BF16: up to 2^7, so sums stay finite): subnormals and
        // signed zeros included
        uint16_t h = (uint16_t)(rng >> 16);
        if (dtype == ST_BF16) h = (uint16_t)((h & 0x807f) | ((((h >> 7) & 0xff) % 0x87) << 7));
        if (dtype == ST_F16 && ((h >> 10) & 0x1f) == 0x1f) h &= 0xbfff;
        if (i % 3 == 0) {   // mostly values of sane size, so sums are meaningful
            float f = w[i];
            uint32_t u;
            memcpy(&u, &f, 4);
            h = dtype == ST_BF16 ? (uint16_t)(u >> 16) : h;
        }
        raw[i] = h;
        w[i] = dtype == ST_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    return raw;
}

static const st_dtype dtypes[] = {ST_F32, ST_BF16, ST_F16};

static void packing_keeps_every_element(void) {
    for (size_t t = 0; t < sizeof dtypes / sizeof *dtypes; t++) {
        int d = 37, k = 19;
        float *w = random_floats((size_t)d * k), row[19];
        void *raw = stored_as(w, (size_t)d * k, dtypes[t]);
        packed_matrix m;
        CHECK(matrix_pack(&m, raw, dtypes[t], d, k) == 0, "pack");
        CHECK(matrix_bytes(&m) == (size_t)3 * 16 * k * st_dtype_size(dtypes[t]), "%s: bytes %zu", st_dtype_name(dtypes[t]), matrix_bytes(&m));
        for (int j = 0; j < d; j++) {
            matrix_row(&m, j, row);
            CHECK(!memcmp(row, w + (size_t)j * k, sizeof row), "%s: row %d read back from the panels", st_dtype_name(dtypes[t]), j);
        }
        matrix_free(&m);
        free(w), free(raw);
    }
}

static void paths_agree_bit_for_bit_and_rows_stand_alone(void) {
    static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 13, 50}, ds[] = {1, 15, 16, 17, 33, 100}, ks[] = {1, 7, 64, 129};
    fprintf(stderr, "  paths on this CPU:");
    for (int p = 0; p < matmul_path_count(); p++) fprintf(stderr, " %s", matmul_path_name(p));
    fprintf(stderr, "\n");
    for (size_t t = 0; t < sizeof dtypes / sizeof *dtypes; t++)
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ds / sizeof *ds; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                int n = ns[a], d = ds[b], k = ks[c];
                float *x = random_floats((size_t)n * k), *w = random_floats((size_t)d * k);
                void *raw = stored_as(w, (size_t)d * k, dtypes[t]);
                float *first = malloc(sizeof(float) * n * d), *out = malloc(sizeof(float) * n * d), *one = malloc(sizeof(float) * d);
                packed_matrix m, m32;
                CHECK(matrix_pack(&m, raw, dtypes[t], d, k) == 0, "pack");
                CHECK(matrix_pack(&m32, w, ST_F32, d, k) == 0, "pack");
                // the float32 packing of the same values: BF16/F16 panels must give its bits exactly
                matmul(first, x, &m32, n, 1);
                for (int p = 0; p < matmul_path_count(); p++) {
                    matmul_use_path(p);
                    for (int threads = 1; threads <= 3; threads += 2) {
                        matmul(out, x, &m, n, threads);
                        CHECK(!memcmp(out, first, sizeof(float) * n * d), "%s n %d d %d k %d: path %s, %d threads differ",
                              st_dtype_name(dtypes[t]), n, d, k, matmul_path_name(p), threads);
                    }
                    for (int r = 0; r < n; r += 3) {   // a row alone: the bits it had in the batch
                        matmul(one, x + (size_t)r * k, &m, 1, 1);
                        CHECK(!memcmp(one, first + (size_t)r * d, sizeof(float) * d), "%s n %d d %d k %d: row %d alone (%s)",
                              st_dtype_name(dtypes[t]), n, d, k, r, matmul_path_name(p));
                    }
                }
                double worst = 0;
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < d; j++) {
                        double s = 0, mag = 0;
                        for (int i = 0; i < k; i++) s += (double)x[(size_t)r * k + i] * w[(size_t)j * k + i], mag += fabs((double)x[(size_t)r * k + i] * w[(size_t)j * k + i]);
                        double e = mag ? fabs(first[(size_t)r * d + j] - s) / mag : fabs(first[(size_t)r * d + j] - s);
                        if (e > worst) worst = e;
                    }
                CHECK(worst < 1e-5, "%s n %d d %d k %d: relative error %.3g against float64", st_dtype_name(dtypes[t]), n, d, k, worst);
                matmul_use_path(0);
                matrix_free(&m), matrix_free(&m32);
                free(x), free(w), free(raw), free(first), free(out), free(one);
            }
}

// FP8 panels (matrix_pack_fp8): each output is its row's scale times the chain of fused multiply-adds over the codes'
// values, bit for bit on every path, thread count and row alone; the codes and scales are fp8_quantize_row's; every
// one of the 254 finite codes widens to its value (one-hot inputs read each back through the tile); a weight that is
// not finite is refused naming its row.
static void fp8_panels_give_the_scaled_chain(void) {
    static const int ns[] = {1, 3, 5, 7, 50}, ds[] = {1, 17, 100}, ks[] = {7, 64, 129};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ds / sizeof *ds; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                int n = ns[a], d = ds[b], k = ks[c];
                float *x = random_floats((size_t)n * k), *w = random_floats((size_t)d * k), *scales = malloc(sizeof(float) * d);
                for (int j = 0; j < d; j++)   // rows of different magnitudes
                    for (int i = 0; i < k; i++) w[(size_t)j * k + i] *= ldexpf(1.0f, j % 9 - 4);
                uint8_t *codes = malloc((size_t)d * k);
                rp_err err;
                for (int j = 0; j < d; j++) fp8_quantize_row(w + (size_t)j * k, k, codes + (size_t)j * k, &scales[j], &err);
                float *want = malloc(sizeof(float) * n * d), *out = malloc(sizeof(float) * n * d), *one = malloc(sizeof(float) * d);
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < d; j++) {
                        float acc = 0.0f;
                        for (int i = 0; i < k; i++) acc = fmaf(x[(size_t)r * k + i], fp8_e4m3_value(codes[(size_t)j * k + i]), acc);
                        want[(size_t)r * d + j] = acc * scales[j];
                    }
                packed_matrix m;
                CHECK(matrix_pack_fp8(&m, w, ST_F32, d, k, &err) == 0, "%s", err.msg);
                for (int p = 0; p < matmul_path_count(); p++) {
                    matmul_use_path(p);
                    for (int threads = 1; threads <= 3; threads += 2) {
                        matmul(out, x, &m, n, threads);
                        CHECK(!memcmp(out, want, sizeof(float) * n * d), "FP8 n %d d %d k %d: path %s, %d threads", n, d, k,
                              matmul_path_name(p), threads);
                    }
                    for (int r = 0; r < n; r += 3) {
                        matmul(one, x + (size_t)r * k, &m, 1, 1);
                        CHECK(!memcmp(one, want + (size_t)r * d, sizeof(float) * d), "FP8 n %d d %d k %d: row %d alone (%s)", n, d,
                              k, r, matmul_path_name(p));
                    }
                }
                matmul_use_path(0);
                float row[129];
                matrix_row(&m, d - 1, row);
                int bad = 0;
                for (int i = 0; i < k; i++) bad += row[i] != fp8_e4m3_value(codes[(size_t)(d - 1) * k + i]) * scales[d - 1];
                CHECK(bad == 0, "FP8 d %d k %d: matrix_row is not value x scale (%d)", d, k, bad);
                matrix_free(&m);
                free(x), free(w), free(scales), free(codes), free(want), free(out), free(one);
            }
    // every finite code through the tiles: a row holding each code's value (448 in it, so the scale is 1)
    int k = 0;
    float all[256];
    for (int c = 0; c < 256; c++)
        if ((c & 0x7f) != 0x7f) all[k++] = fp8_e4m3_value((uint8_t)c);
    float *eye = calloc((size_t)k * k, sizeof(float)), *got = malloc(sizeof(float) * k);
    for (int r = 0; r < k; r++) eye[(size_t)r * k + r] = 1.0f;
    packed_matrix m;
    rp_err err;
    CHECK(matrix_pack_fp8(&m, all, ST_F32, 1, k, &err) == 0 && m.scales[0] == 1.0f, "pack the codes' values");
    for (int p = 0; p < matmul_path_count(); p++) {
        matmul_use_path(p);
        for (int n = 1; n <= k; n += k - 1) {   // 1 row (the tile reads codes) and all (widened first)
            int bad = 0;
            for (int r0 = 0; r0 + n <= k; r0 += n) {
                matmul(got, eye + (size_t)r0 * k, &m, n, 1);
                for (int r = 0; r < n; r++) bad += got[r] != all[r0 + r];   // (-0: a chain from +0 gives +0)
            }
            CHECK(bad == 0, "%s, %d rows a call: %d codes widen to another value", matmul_path_name(p), n, bad);
        }
    }
    matmul_use_path(0);
    matrix_free(&m);
    all[5] = INFINITY;
    CHECK(matrix_pack_fp8(&m, all, ST_F32, 2, k / 2, &err) != 0 && strstr(err.msg, "row 0"), "an infinite weight refused: %s", err.msg);
    free(eye), free(got);
}

// A checkpoint's FP8 codes with a scale per row and group of inputs (128 x 128 blocks, groups of 32): each output
// is the groups' scaled chains added in order by fused multiply-adds, whatever the path, the threads, the rows.
static void fp8_groups_add_their_scaled_chains_in_order(void) {
    static const int ns[] = {1, 4, 50}, ds[] = {5, 40}, ks[] = {24, 100}, group_ks[] = {8, 32, 200};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 2; c++)
                for (size_t g = 0; g < 3; g++) {
                    int n = ns[a], d = ds[b], k = ks[c], gk = group_ks[g] < k ? group_ks[g] : k, groups = (k + gk - 1) / gk;
                    float *x = random_floats((size_t)n * k), *scales = random_floats((size_t)d * groups);
                    uint8_t *codes = malloc((size_t)d * k);
                    for (int i = 0; i < d * k; i++) codes[i] = (uint8_t)(rand() % 256);
                    for (int i = 0; i < d * k; i++)
                        if ((codes[i] & 0x7f) == 0x7f) codes[i] = 0x3c;   // no NaN code
                    for (int i = 0; i < d * groups; i++) scales[i] = fabsf(scales[i]) + 0.01f;
                    float *want = malloc(sizeof(float) * n * d), *out = malloc(sizeof(float) * n * d), *one = malloc(sizeof(float) * d);
                    for (int r = 0; r < n; r++)
                        for (int j = 0; j < d; j++) {
                            float total = 0.0f;
                            for (int q = 0; q < groups; q++) {
                                float chain = 0.0f;
                                for (int i = q * gk; i < (q + 1) * gk && i < k; i++)
                                    chain = fmaf(x[(size_t)r * k + i], fp8_e4m3_value(codes[(size_t)j * k + i]), chain);
                                total = q ? fmaf(chain, scales[(size_t)j * groups + q], total) : chain * scales[(size_t)j * groups];
                            }
                            want[(size_t)r * d + j] = total;
                        }
                    packed_matrix m;
                    rp_err err;
                    CHECK(matrix_pack_fp8_codes(&m, codes, d, k, scales, gk, &err) == 0, "%s", err.msg);
                    for (int p = 0; p < matmul_path_count(); p++) {
                        matmul_use_path(p);
                        for (int threads = 1; threads <= 3; threads += 2) {
                            matmul(out, x, &m, n, threads);
                            CHECK(!memcmp(out, want, sizeof(float) * n * d), "groups of %d: n %d d %d k %d: path %s, %d threads",
                                  gk, n, d, k, matmul_path_name(p), threads);
                        }
                        matmul(one, x + (size_t)(n - 1) * k, &m, 1, 1);
                        CHECK(!memcmp(one, want + (size_t)(n - 1) * d, sizeof(float) * d), "groups of %d: the last row alone (%s)",
                              gk, matmul_path_name(p));
                    }
                    matmul_use_path(0);
                    matrix_free(&m);
                    free(x), free(scales), free(codes), free(want), free(out), free(one);
                }
    uint8_t nan_row[4] = {1, 2, 0xff, 3};
    float scale = 1.0f;
    packed_matrix m;
    rp_err err;
    CHECK(matrix_pack_fp8_codes(&m, nan_row, 1, 4, &scale, 4, &err) == -1 && strstr(err.msg, "[0, 2] is the NaN code"),
          "a NaN code is refused by place: %s", err.msg);
}

int main(void) {
    RUN(packing_keeps_every_element);
    RUN(paths_agree_bit_for_bit_and_rows_stand_alone);
    RUN(fp8_panels_give_the_scaled_chain);
    RUN(fp8_groups_add_their_scaled_chains_in_order);
    return test_failures ? 1 : 0;
}
