// A sweep's results in SQLite: configs, probe items, and one row per (config, probe item), committed as it completes.
#ifndef REPRISE_SWEEP_DB_H
#define REPRISE_SWEEP_DB_H

#include <sqlite3.h>

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

#endif
