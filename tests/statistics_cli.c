// The sweep's statistics (tools/sweep/statistics.c) on numbers from stdin, for tests/test_statistics.py to compare
// with numpy. Input, one case per line: "paired N c1 b1 ... cN bN", "z N x1 use1 ... xN useN", "bh N p1 ... pN",
// "t delta se" (nan allowed). Output: one line per case, the results as %.17g.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sweep/statistics.h"

static double next(void) {
    char w[64];
    if (scanf("%63s", w) != 1) exit(2);
    return strtod(w, NULL);   // "nan" too
}

int main(void) {
    char kind[16];
    while (scanf("%15s", kind) == 1) {
        if (!strcmp(kind, "t")) {
            double d = next(), se = next();
            printf("%.17g %.17g\n", t_vs_base(d, se), p_two_sided(d, se));
            continue;
        }
        int n = (int)next();
        double *x = calloc((size_t)n + 1, sizeof(double)), *y = calloc((size_t)n + 1, sizeof(double));
        int *use = calloc((size_t)n + 1, sizeof(int));
        if (!strcmp(kind, "paired")) {
            paired_sum s = {0};
            for (int i = 0; i < n; i++) x[i] = next(), y[i] = next(), paired_add(&s, x[i], y[i]);
            double mean, delta, se;
            paired_result(&s, &mean, &delta, &se);
            printf("%.17g %.17g %.17g\n", mean, delta, se);
        } else if (!strcmp(kind, "z")) {
            for (int i = 0; i < n; i++) x[i] = next(), use[i] = (int)next();
            z_scores(x, use, n, y);
            for (int i = 0; i < n; i++) printf("%.17g%c", y[i], i + 1 < n ? ' ' : '\n');
        } else if (!strcmp(kind, "bh")) {
            for (int i = 0; i < n; i++) x[i] = next();
            bh_adjust(x, y, n);
            for (int i = 0; i < n; i++) printf("%.17g%c", y[i], i + 1 < n ? ' ' : '\n');
        } else return 2;
        if (n == 0 && strcmp(kind, "paired")) printf("\n");   // an empty list's line
        free(x), free(y), free(use);
    }
    return 0;
}
