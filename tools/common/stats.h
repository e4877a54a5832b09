// The clock and the summary statistics that the benchmarks, the server and the sweep share.
#ifndef REPRISE_STATS_H
#define REPRISE_STATS_H

// Seconds on the monotonic clock (an arbitrary origin: only differences mean anything).
double rp_now_s(void);

double stats_mean(const double *x, int n);

// The standard deviation with `ddof` degrees of freedom removed: 1 for a sample's (llama-bench's stddev over
// repetitions), 0 for the population's (numpy's default, which vLLM's serving benchmark reports).
double stats_stddev(const double *x, int n, int ddof);

// Sorts x in place, ascending.
void stats_sort(double *x, int n);

// The q-th percentile (0..100) of sorted x, by linear interpolation between the closest ranks (numpy's default);
// 0 for no values.
double stats_percentile(const double *sorted, int n, double q);

// Spearman's rank correlation of x and y (ties get average ranks: scipy.stats.spearmanr); NAN when either is constant.
double stats_spearman(const double *x, const double *y, int n);

#endif
