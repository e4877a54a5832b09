// The sweep's statistics (statistics.h says each rule); tests/test_statistics.py checks them against numpy.
#include "tools/sweep/statistics.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>

void paired_add(paired_sum *s, double config_score, double base_score) {
    double d = config_score - base_score;
    s->sum += d, s->sum2 += d * d, s->config_sum += config_score, s->n++;
}

void paired_result(const paired_sum *s, double *mean, double *delta, double *se) {
    int k = s->n;
    *mean = k ? s->config_sum / k : NAN;
    *delta = k ? s->sum / k : NAN;
    *se = k > 1 ? sqrt(fmax(0, (s->sum2 - s->sum * s->sum / k) / (k - 1)) / k) : NAN;
}

void z_scores(const double *x, const int *use, int n, double *z) {
    double m = 0, m2 = 0;
    int cnt = 0;
    for (int i = 0; i < n; i++)
        if (use[i]) m += x[i], m2 += x[i] * x[i], cnt++;
    double mean = cnt ? m / cnt : 0, sd = cnt > 1 ? sqrt(fmax(0, (m2 - m * m / cnt) / (cnt - 1))) : 0;
    for (int i = 0; i < n; i++) z[i] = use[i] && sd > 0 ? (x[i] - mean) / sd : 0;
}

double p_two_sided(double delta, double se) {
    if (isnan(delta) || isnan(se)) return NAN;
    if (se == 0) return delta == 0 ? 1 : 0;
    return erfc(fabs(delta / se) / sqrt(2.0));
}

typedef struct {
    double p;
    int at;
} p_at;

static int by_p(const void *a, const void *b) {
    double x = ((const p_at *)a)->p, y = ((const p_at *)b)->p;
    return (x > y) - (x < y);
}

void bh_adjust(const double *p, double *q, int n) {
    p_at *order = rp_malloc(sizeof *order * (n > 0 ? (size_t)n : 1));
    int m = 0;
    for (int i = 0; i < n; i++) {
        q[i] = NAN;
        if (!isnan(p[i])) order[m++] = (p_at){p[i], i};
    }
    qsort(order, (size_t)m, sizeof *order, by_p);
    double run = 1;
    for (int r = m - 1; r >= 0; r--) {
        double v = order[r].p * m / (r + 1);
        if (v < run) run = v;
        q[order[r].at] = run;
    }
    free(order);
}

double t_vs_base(double delta, double se) {
    if (isnan(delta) || delta == 0 || isnan(se)) return 0;
    double t = se == 0 ? copysign(VS_BASE_CLIP, delta) : delta / se;
    return t > VS_BASE_CLIP ? VS_BASE_CLIP : t < -VS_BASE_CLIP ? -VS_BASE_CLIP : t;
}
