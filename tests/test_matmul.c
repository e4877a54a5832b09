// The CPU matmul: every code path this CPU runs (AVX2, portable) gives the same bits, a row's result does
// not depend on the rows beside it or on the thread count, the packing keeps every element, and the sums agree
// with a double-precision reference.
#include "engine/matmul.h"
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

static void packing_keeps_every_element(void) {
    int d = 37, k = 19;
    float *w = random_floats((size_t)d * k), row[19];
    packed_matrix m;
    CHECK(matrix_pack(&m, w, d, k) == 0, "pack");
    for (int j = 0; j < d; j++) {
        matrix_row(&m, j, row);
        CHECK(!memcmp(row, w + (size_t)j * k, sizeof row), "row %d read back from the panels", j);
    }
    matrix_free(&m);
    free(w);
}

static void paths_agree_bit_for_bit_and_rows_stand_alone(void) {
    static const int ns[] = {1, 2, 5, 6, 7, 13, 50}, ds[] = {1, 15, 16, 17, 33, 100}, ks[] = {1, 7, 64, 129};
    fprintf(stderr, "  paths on this CPU:");
    for (int p = 0; p < matmul_path_count(); p++) fprintf(stderr, " %s", matmul_path_name(p));
    fprintf(stderr, "\n");
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ds / sizeof *ds; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                int n = ns[a], d = ds[b], k = ks[c];
                float *x = random_floats((size_t)n * k), *w = random_floats((size_t)d * k);
                float *first = malloc(sizeof(float) * n * d), *out = malloc(sizeof(float) * n * d), *one = malloc(sizeof(float) * d);
                packed_matrix m;
                CHECK(matrix_pack(&m, w, d, k) == 0, "pack");
                for (int p = 0; p < matmul_path_count(); p++) {
                    matmul_use_path(p);
                    for (int threads = 1; threads <= 3; threads += 2) {
                        matmul(out, x, &m, n, threads);
                        if (p == 0 && threads == 1) memcpy(first, out, sizeof(float) * n * d);
                        else CHECK(!memcmp(out, first, sizeof(float) * n * d), "n %d d %d k %d: path %s, %d threads differ",
                                   n, d, k, matmul_path_name(p), threads);
                    }
                    for (int r = 0; r < n; r += 3) {   // a row alone: the bits it had in the batch
                        matmul(one, x + (size_t)r * k, &m, 1, 1);
                        CHECK(!memcmp(one, first + (size_t)r * d, sizeof(float) * d), "n %d d %d k %d: row %d alone (%s)", n,
                              d, k, r, matmul_path_name(p));
                    }
                }
                double worst = 0;
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < d; j++) {
                        double s = 0, mag = 0;
                        for (int i = 0; i < k; i++) s += (double)x[(size_t)r * k + i] * w[(size_t)j * k + i], mag += fabs((double)x[(size_t)r * k + i] * w[(size_t)j * k + i]);
                        double e = fabs(first[(size_t)r * d + j] - s) / (mag + 1e-30);
                        if (e > worst) worst = e;
                    }
                CHECK(worst < 1e-5, "n %d d %d k %d: relative error %.3g against float64", n, d, k, worst);
                matmul_use_path(0);
                matrix_free(&m);
                free(x), free(w), free(first), free(out), free(one);
            }
}

int main(void) {
    RUN(packing_keeps_every_element);
    RUN(paths_agree_bit_for_bit_and_rows_stand_alone);
    return test_failures ? 1 : 0;
}
