// A sweep's results in SQLite: configs, probe items, and one row per (config, probe item), committed as it completes.
#ifndef REPRISE_SWEEP_DB_H
#define REPRISE_SWEEP_DB_H

#include <sqlite3.h>
#include <stddef.h>

#include "loader/error.h"

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *insert_result, *has_result;
    char *path;
    int lock_fd;   // > 0: the file, flock'ed exclusively while this writer has it open
} sweep_db;

// Opens (creating) a database to write. One writer at a time: a second process opening the same file is refused
// (an exclusive flock held until sweep_db_close), so two sweeps on one --out never interleave.
int sweep_db_open(sweep_db *d, const char *path, rp_err *err);
// Opens someone else's database to read (a shard to merge): read-only, never changed (no journal switch, no new
// table), and refused unless it holds a reprise sweep's tables. Works on a read-only file or directory.
int sweep_db_open_input(sweep_db *d, const char *path, rp_err *err);
void sweep_db_close(sweep_db *d);

// meta: key -> value. sweep_db_check_meta sets it when absent, and fails naming the key when it differs, so
// that resuming a sweep with another model or other probes is refused instead of mixing results.
int sweep_db_check_meta(sweep_db *d, const char *key, const char *value, rp_err *err);
// The same for a database being merged in (a shard's, an exchange file): the difference is named by source, the
// file whose rows are refused, with a merge's way out.
int sweep_db_check_merged_meta(sweep_db *d, const char *source, const char *key, const char *value, rp_err *err);

// The config's id (adding it when new). i, j, k: the rys block, or -1 for a general schedule.
int sweep_db_config(sweep_db *d, const char *label, const char *schedule, int i, int j, int k, int visits, int *id, rp_err *err);

// The item as stored, or adds it; a stored item whose prompt or answer differs is an error.
int sweep_db_item(sweep_db *d, const char *probe, const char *item, const char *prompt, const char *answer, rp_err *err);

// Whether the row is done: a result, or a recorded failure (not retried unless forgotten).
int sweep_db_has_result(sweep_db *d, int config, const char *probe, const char *item);
int sweep_db_add_result(sweep_db *d, int config, const char *probe, const char *item, double score, const char *reply, rp_err *err);

// A (config, item) that could not be evaluated, with its reason (a prompt longer than the context, non-finite
// logits, ...): it has no score, is listed in the summary, and a rerun skips it; --retry-failed forgets them all.
int sweep_db_add_failure(sweep_db *d, int config, const char *probe, const char *item, const char *reason, rp_err *err);
int sweep_db_forget_failures(sweep_db *d, long *n, rp_err *err);

// Merges the database at path (opened read-only, never changed; someone else's: NULL columns and missing tables are
// errors naming them) into d: its meta, items, configs, results and failures; rows d has already are skipped, and a
// meta value or item that differs is refused, as a resumed sweep's would be. *added counts the results added.
int sweep_db_merge(sweep_db *d, const char *path, long *added, rp_err *err);

// A share of a sharded search's step (exchange.c): these configs' rows on these (probe, item) pairs.
typedef struct {
    const char *const *labels;
    int n_labels;
    const char *const *probe, *const *item;   // (n_items) pairs
    int n_items;
} sweep_db_share;
// Writes the share's rows, with its configs, items and d's meta, and the step's key, into a small sweep database at
// path: built in path.tmp-PID (rollback journal, so nothing is left beside it) and renamed into place once every
// (config, item) has its row, so a reader sees it whole or not at all.
int sweep_db_write_share(sweep_db *d, const sweep_db_share *share, const char *path, const char *key, rp_err *err);
// The step key an exchange file was written for.
int sweep_db_read_step_key(const char *path, char *key, size_t cap, rp_err *err);

// --- reading (the report, the searches, the benchmarks) ---

// Rows done: results and recorded failures.
long sweep_db_count_rows(sweep_db *d);
// The probes that have results, sorted by name (the caller frees each and the array).
void sweep_db_scored_probes(sweep_db *d, char ***names, int *n);
// One config's scores on one probe, sorted by item (the caller frees the items, the array and the scores).
void sweep_db_scores(sweep_db *d, int config, const char *probe, char ***items, double **scores, int *n);

typedef struct {
    int id;
    const char *label, *schedule;
    int i, j, k;   // the rys block, or -1 for a general schedule
    int visits;
} sweep_db_config_row;
// Every config, by id or (by_label) by label: fn(ctx, row) for each (the row's strings live until fn returns).
void sweep_db_each_config(sweep_db *d, int by_label, void (*fn)(void *ctx, const sweep_db_config_row *row), void *ctx);

typedef struct {
    const char *label, *probe, *item;
    double score;
    const char *reply;   // "" when none
} sweep_db_result_row;
// Every result with its config's label, ordered by config (id, or label when by_label), probe and item.
void sweep_db_each_result(sweep_db *d, int by_label, void (*fn)(void *ctx, const sweep_db_result_row *row), void *ctx);
// Every failure (config label, probe, item, reason), ordered by config id, probe and item.
void sweep_db_each_failure(sweep_db *d, void (*fn)(void *ctx, const char *label, const char *probe, const char *item,
                                                   const char *reason), void *ctx);
// The probes no row of which has a result (every row failed): their failures' count and first reason, by name.
void sweep_db_each_unscored_probe(sweep_db *d, void (*fn)(void *ctx, const char *probe, int failures, const char *reason),
                                  void *ctx);

#endif
