// The clock and the summary statistics that the benchmarks, the server and the sweep share.
#include "engine/stats.h"

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
