// Merging sweep databases: another database's rows, read-only, into this one, checked as a resumed sweep's are.
#include "tools/sweep/merge.h"

#include <stddef.h>

// Column i of st's row as text; NULL (a database someone else wrote may hold one) is an error naming the column.
static const char *need_text(sqlite3_stmt *st, int i, const char *path, rp_err *err, int *rc) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (!t && !*rc) *rc = rp_fail(err, "%s: a row with no %s", path, sqlite3_column_name(st, i));
    return t ? t : "";
}

// The id, in the merged database, of the config in columns 0-5 (label, schedule, i, j, k, visits) of st's row.
static int merged_config(sweep_db *d, sqlite3_stmt *st, const char *path, int *id, rp_err *err) {
    int rc = 0, ci = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);
    const char *label = need_text(st, 0, path, err, &rc), *sched = need_text(st, 1, path, err, &rc);
    return rc ? rc : sweep_db_config(d, label, sched, ci, sqlite3_column_int(st, 3), sqlite3_column_int(st, 4),
                                     sqlite3_column_int(st, 5), id, err);
}

// A query on someone else's database: one whose tables lack a sweep's columns fails here, naming why.
static int query(sweep_db *in, const char *sql, sqlite3_stmt **st, rp_err *err) {
    if (sqlite3_prepare_v2(in->db, sql, -1, st, NULL) == SQLITE_OK) return 0;
    return rp_fail(err, "%s: not a reprise sweep database: %s", in->path, sqlite3_errmsg(in->db));
}

int sweep_merge_one(sweep_db *d, const char *path, long *added, rp_err *err) {
    sweep_db in;
    if (sweep_db_open_input(&in, path, err)) return -1;
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (query(&in, "SELECT key, value FROM meta", &st, err)) return sweep_db_close(&in), -1;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const char *k = need_text(st, 0, path, err, &rc), *v = need_text(st, 1, path, err, &rc);
        if (!rc) rc = sweep_db_check_merged_meta(d, path, k, v, err);
    }
    sqlite3_finalize(st), st = NULL;
    if (!rc) rc = query(&in, "SELECT probe, item, prompt, answer FROM items", &st, err);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const char *pr = need_text(st, 0, path, err, &rc), *it = need_text(st, 1, path, err, &rc);
        const char *prompt = need_text(st, 2, path, err, &rc);
        if (!rc) rc = sweep_db_item(d, pr, it, prompt, (const char *)sqlite3_column_text(st, 3), err);
    }
    sqlite3_finalize(st), st = NULL;
    if (!rc) rc = query(&in, "SELECT c.label, c.schedule, c.i, c.j, c.k, c.visits, r.probe, r.item, r.score, r.reply "
                             "FROM results r JOIN configs c ON c.id = r.config", &st, err);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int id;
        rc = merged_config(d, st, path, &id, err);
        const char *probe = need_text(st, 6, path, err, &rc), *item = need_text(st, 7, path, err, &rc);
        if (!rc && !sweep_db_has_result(d, id, probe, item)) {
            rc = sweep_db_add_result(d, id, probe, item, sqlite3_column_double(st, 8), (const char *)sqlite3_column_text(st, 9), err);
            ++*added;
        }
    }
    sqlite3_finalize(st), st = NULL;
    // failed rows travel too, so the merged summary lists them
    if (!rc) rc = query(&in, "SELECT c.label, c.schedule, c.i, c.j, c.k, c.visits, f.probe, f.item, f.reason "
                             "FROM failures f JOIN configs c ON c.id = f.config", &st, err);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int id;
        rc = merged_config(d, st, path, &id, err);
        const char *probe = need_text(st, 6, path, err, &rc), *item = need_text(st, 7, path, err, &rc);
        const char *reason = need_text(st, 8, path, err, &rc);
        if (!rc && !sweep_db_has_result(d, id, probe, item)) rc = sweep_db_add_failure(d, id, probe, item, reason, err);
    }
    sqlite3_finalize(st), st = NULL;
    sweep_db_close(&in);
    return rc;
}

