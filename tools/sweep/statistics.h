// The sweep's statistics, apart from its database and its pictures: paired deltas against base with their standard
// errors, z-scores across configs, two-sided p-values, Benjamini-Hochberg q-values and the "vs base" score.
#ifndef REPRISE_SWEEP_STATISTICS_H
#define REPRISE_SWEEP_STATISTICS_H

// A config's scores paired with base's on the items both have, accumulated one pair at a time.
typedef struct {
    int n;
    double sum, sum2, config_sum;   // of the differences, their squares, the config's scores
} paired_sum;

void paired_add(paired_sum *s, double config_score, double base_score);
// n pairs: the config's mean score, its mean difference from base (delta) and that difference's standard error
// (the sample standard deviation of the differences over sqrt(n)); NAN where undefined (no pair; SE: fewer than 2).
void paired_result(const paired_sum *s, double *mean, double *delta, double *se);

// z-scores of x over the entries where use[i] (mean and sample standard deviation of those); 0 elsewhere, and
// everywhere when fewer than two are used or they do not vary.
void z_scores(const double *x, const int *use, int n, double *z);

// Two-sided p-value of "no effect" for a delta with standard error se (z = delta / se, normal approximation: the
// paired differences of dozens of items); NAN without a standard error; 1 or 0 when se is 0.
double p_two_sided(double delta, double se);

// Benjamini-Hochberg: q of the r-th smallest of the m p-values that are not NAN = min over r' >= r of p(r') m / r'
// (at most 1); NAN where p is. Configs whose q is below a level form a set whose expected share of false
// discoveries is at most that level.
void bh_adjust(const double *p, double *q, int n);

// A probe's share of "vs base": delta over its paired standard error, clipped to +-VS_BASE_CLIP. A probe with fewer
// than two paired items (no SE) adds nothing; a delta with no spread at all (SE 0) counts as the clip, in its sign.
#define VS_BASE_CLIP 10.0
double t_vs_base(double delta, double se);

#endif
