// What a layer does to the hidden state, from the states at every visit boundary, accumulated token by token.
//
// Per token, the Gram matrix of its states (B^2 / 2 dot products of dim) gives every metric: cosines, norms, and
// the updates' norms and correlations (<h_{a+1} - h_a, h_{a+2} - h_{a+1}> expands into Gram entries). Dot products
// are summed in double: updates are small next to the states, and their norms come from differences of Gram entries.
#include "tools/profile/metrics.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void profile_acc_init(profile_acc *p, int n_states, int dim) {
    size_t bb = (size_t)n_states * (size_t)n_states;
    p->n_states = n_states, p->dim = dim, p->tokens = 0;
    p->gram = rp_calloc(bb, sizeof(double)), p->cos_sum = rp_calloc(bb, sizeof(double)), p->ang_sum = rp_calloc(bb, sizeof(double));
    p->sum = rp_calloc((size_t)n_states * (size_t)dim, sizeof(double));
    p->upd_norm = rp_calloc((size_t)n_states, sizeof(double)), p->upd_rel = rp_calloc((size_t)n_states, sizeof(double));
    p->upd_corr = rp_calloc((size_t)n_states, sizeof(double));
}

void profile_acc_free(profile_acc *p) {
    free(p->gram), free(p->cos_sum), free(p->ang_sum), free(p->sum), free(p->upd_norm), free(p->upd_rel), free(p->upd_corr);
    memset(p, 0, sizeof *p);
}

static double dot(const float *x, const float *y, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

static double cos_of(double xy, double xx, double yy) {
    double c = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

void profile_acc_add(profile_acc *p, const float *const *h) {
    int B = p->n_states, d = p->dim;
    double *g = rp_malloc(sizeof(double) * (size_t)B * (size_t)B);
    for (int a = 0; a < B; a++)
        for (int b = a; b < B; b++) g[(size_t)a * B + b] = g[(size_t)b * B + a] = dot(h[a], h[b], d);
    for (int a = 0; a < B; a++) {
        for (int b = 0; b < B; b++) {
            double gab = g[(size_t)a * B + b], c = cos_of(gab, g[(size_t)a * B + a], g[(size_t)b * B + b]);
            p->gram[(size_t)a * B + b] += gab;
            p->cos_sum[(size_t)a * B + b] += c;
            p->ang_sum[(size_t)a * B + b] += acos(c) / M_PI;
        }
        for (int i = 0; i < d; i++) p->sum[(size_t)a * d + i] += h[a][i];
    }
#define G(a, b) g[(size_t)(a) * B + (b)]
    for (int a = 0; a + 1 < B; a++) {   // |u_a|^2 with u_a = h_{a+1} - h_a
        double uu = fmax(0, G(a + 1, a + 1) - 2 * G(a, a + 1) + G(a, a)), hh = G(a, a);
        p->upd_norm[a] += sqrt(uu);
        p->upd_rel[a] += hh > 0 ? sqrt(uu / hh) : 0;
        if (a + 2 < B) {
            double vv = fmax(0, G(a + 2, a + 2) - 2 * G(a + 1, a + 2) + G(a + 1, a + 1));
            double uv = G(a + 1, a + 2) - G(a + 1, a + 1) - G(a, a + 2) + G(a, a + 1);
            p->upd_corr[a] += cos_of(uv, uu, vv);
        }
    }
#undef G
    p->tokens++;
    free(g);
}

// Sum of m over the square [lo, hi) x [lo, hi), from the 2-D prefix sums P ((B+1) x (B+1)).
static double square(const double *P, int B, int lo, int hi) {
    int W = B + 1;
    return P[hi * W + hi] - P[lo * W + hi] - P[hi * W + lo] + P[lo * W + lo];
}

void profile_finish(const profile_acc *p, profile_metrics *m) {
    int B = p->n_states, d = p->dim;
    double T = p->tokens > 0 ? (double)p->tokens : 1;
    size_t bb = (size_t)B * (size_t)B;
    m->n_states = B;
    m->angular = rp_malloc(sizeof(double) * bb), m->influence = rp_malloc(sizeof(double) * bb), m->centred = rp_malloc(sizeof(double) * bb);
    m->update_norm = rp_calloc((size_t)B, sizeof(double)), m->update_rel = rp_calloc((size_t)B, sizeof(double));
    m->update_corr = rp_calloc((size_t)B, sizeof(double));
    double *cg = rp_malloc(sizeof(double) * bb);   // centred Gram: sum_t <h_a - m_a, h_b - m_b>
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += p->sum[(size_t)a * d + i] * p->sum[(size_t)b * d + i];
            cg[(size_t)a * B + b] = p->gram[(size_t)a * B + b] - s / T;
        }
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++) {
            size_t ab = (size_t)a * B + b;
            m->angular[ab] = p->tokens ? p->ang_sum[ab] / T : NAN;
            m->influence[ab] = p->tokens ? 1 - p->cos_sum[ab] / T : NAN;
            double aa = cg[(size_t)a * B + a], bb_ = cg[(size_t)b * B + b];
            m->centred[ab] = aa > 0 && bb_ > 0 ? cg[ab] / sqrt(aa * bb_) : NAN;
        }
    for (int a = 0; a + 1 < B; a++) m->update_norm[a] = p->upd_norm[a] / T, m->update_rel[a] = p->upd_rel[a] / T;
    for (int a = 0; a + 2 < B; a++) m->update_corr[a] = p->upd_corr[a] / T;
    free(cg);
    // zones: three runs [0, s), [s, e), [e, B) maximising the same-run sum of (centred - mean off-diagonal)
    m->zone_start = m->zone_end = 0;
    if (B < 4) return;
    double mean = 0;
    int cnt = 0;
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++)
            if (a != b && !isnan(m->centred[(size_t)a * B + b])) mean += m->centred[(size_t)a * B + b], cnt++;
    mean = cnt ? mean / cnt : 0;
    int W = B + 1;
    double *P = rp_calloc((size_t)W * (size_t)W, sizeof(double));
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++) {
            double v = m->centred[(size_t)a * B + b];
            v = isnan(v) ? 0 : v - mean;
            P[(a + 1) * W + b + 1] = v + P[a * W + b + 1] + P[(a + 1) * W + b] - P[a * W + b];
        }
    double best = -INFINITY;
    for (int s = 1; s < B - 1; s++)
        for (int e = s + 1; e < B; e++) {
            double v = square(P, B, 0, s) + square(P, B, s, e) + square(P, B, e, B);
            if (v > best) best = v, m->zone_start = s, m->zone_end = e;
        }
    free(P);
}

void profile_metrics_free(profile_metrics *m) {
    free(m->angular), free(m->influence), free(m->centred), free(m->update_norm), free(m->update_rel), free(m->update_corr);
    memset(m, 0, sizeof *m);
}
