// The clock and the summary statistics that the benchmarks, the server and the sweep share.
#include "tools/common/stats.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

double rp_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double stats_mean(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0;
}

double stats_stddev(const double *x, int n, int ddof) {
    if (n <= ddof) return 0;
    double m = stats_mean(x, n), s = 0;
    for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (n - ddof));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void stats_sort(double *x, int n) {
    if (n > 1) qsort(x, (size_t)n, sizeof *x, cmp_double);
}

double stats_percentile(const double *sorted, int n, double q) {
    if (n == 0) return 0;
    double at = q / 100 * (n - 1);
    int lo = (int)at;
    return lo + 1 < n ? sorted[lo] + (at - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[n - 1];
}

// Average ranks (1-based; ties share the mean of their ranks), as scipy.stats.rankdata does.
static void ranks(const double *x, int n, double *r) {
    int *idx = rp_malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int a = 1; a < n; a++)   // insertion sort by value: n is a search's configs, thousands at most
        for (int b = a; b > 0 && x[idx[b]] < x[idx[b - 1]]; b--) {
            int t = idx[b];
            idx[b] = idx[b - 1], idx[b - 1] = t;
        }
    for (int a = 0; a < n;) {
        int b = a;
        while (b + 1 < n && x[idx[b + 1]] == x[idx[a]]) b++;
        for (int c = a; c <= b; c++) r[idx[c]] = (a + b) / 2.0 + 1;
        a = b + 1;
    }
    free(idx);
}

double stats_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = rp_malloc(sizeof(double) * (size_t)n), *ry = rp_malloc(sizeof(double) * (size_t)n);
    ranks(x, n, rx), ranks(y, n, ry);
    double mx = stats_mean(rx, n), my = stats_mean(ry, n), sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) sxy += (rx[i] - mx) * (ry[i] - my), sxx += (rx[i] - mx) * (rx[i] - mx), syy += (ry[i] - my) * (ry[i] - my);
    free(rx), free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}
