// What a sweep found: deltas against base with paired standard errors, z-scores, a ranking, exports and pictures.
#ifndef REPRISE_SWEEP_REPORT_H
#define REPRISE_SWEEP_REPORT_H

#include "tools/sweep/probe.h"
#include "tools/sweep/db.h"

// Reads the database and writes into out_dir: summary.csv, summary.json, results.csv, heatmap_<probe>.png per probe,
// heatmap_combined.png and skyline.png (when the sweep has rys:I,J configs); prints the top_n configs on stdout.
int sweep_report(sweep_db *db, const char *out_dir, const char *model_name, int top_n, rp_err *err);

// The report's balanced score of each config named labels[0..n) (NAN: no rows), over the given probes' first n_items
// items, with z-scores among these configs alone.
int sweep_scores_among(sweep_db *db, char *const *labels, int n, const probe *probes, int n_probes, double *score, rp_err *err);

// Ranks the configs named labels[0..n) by sweep_scores_among (best first; one not in the database last): order[0..n)
// receives indices into labels.
int sweep_rank_among(sweep_db *db, char *const *labels, int n, const probe *probes, int n_probes, int *order, rp_err *err);

// The labels of the top_n configs by balanced score (base excluded), best first, as the report ranks them: fresh
// strings in *labels (free each and the array).
int sweep_top_configs(sweep_db *db, int top_n, char ***labels, int *n_labels, rp_err *err);

#endif
