// A sweep's results in SQLite: configs, probe items, and one row per (config, probe item), committed as it completes.
//
// Each result is its own transaction in WAL mode: a process killed at any moment (SIGKILL) leaves every completed
// row in the database and no partial one, and a rerun skips exactly the rows present.
#include "tools/sweep/db.h"
#include "loader/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS configs(id INTEGER PRIMARY KEY, label TEXT UNIQUE NOT NULL, schedule TEXT NOT NULL,"
    " i INTEGER, j INTEGER, k INTEGER, visits INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS items(probe TEXT NOT NULL, item TEXT NOT NULL, prompt TEXT NOT NULL, answer TEXT,"
    " PRIMARY KEY(probe, item));"
    "CREATE TABLE IF NOT EXISTS results(config INTEGER NOT NULL REFERENCES configs(id), probe TEXT NOT NULL,"
    " item TEXT NOT NULL, score REAL NOT NULL, reply TEXT, PRIMARY KEY(config, probe, item));"
    "CREATE TABLE IF NOT EXISTS failures(config INTEGER NOT NULL REFERENCES configs(id), probe TEXT NOT NULL,"
    " item TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY(config, probe, item));";

static int fail(sweep_db *d, rp_err *err, const char *what) {
    return rp_fail(err, "%s: %s: %s", d->path, what, sqlite3_errmsg(d->db));
}

int sweep_db_open(sweep_db *d, const char *path, rp_err *err) {
    memset(d, 0, sizeof *d);
    d->path = rp_strdup(path);
    if (sqlite3_open(path, &d->db) != SQLITE_OK) {
        fail(d, err, "cannot open");
        sweep_db_close(d);
        return -1;
    }
    // one writer: an exclusive flock on the file (SQLite's own locks are fcntl locks, independent of it)
    d->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
        if (d->lock_fd >= 0 && errno == EWOULDBLOCK)
            rp_fail(err, "%s is being written by another process (another reprise sweep on the same --out?): one "
                    "writer at a time; wait for it, or stop it (its finished rows are kept)", path);
        else rp_fail(err, "%s: cannot lock: %s", path, strerror(errno));
        sweep_db_close(d);
        return -1;
    }
    sqlite3_busy_timeout(d->db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(d->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        rp_fail(err, "%s: not a reprise sweep database: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sweep_db_close(d);
        return -1;
    }
    if (sqlite3_prepare_v2(d->db, "INSERT INTO results(config, probe, item, score, reply) VALUES(?,?,?,?,?)", -1,
                           &d->insert_result, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, "SELECT 1 FROM results WHERE config=?1 AND probe=?2 AND item=?3 UNION ALL "
                           "SELECT 1 FROM failures WHERE config=?1 AND probe=?2 AND item=?3", -1, &d->has_result,
                           NULL) != SQLITE_OK) {
        fail(d, err, "prepare");
        sweep_db_close(d);
        return -1;
    }
    return 0;
}

// path as a SQLite URI ("file:" and the path with '%', '?' and '#' escaped), then the query.
static char *uri_of(const char *path, const char *query) {
    size_t n = strlen(path);
    char *u = rp_malloc(3 * n + strlen(query) + 8), *o = u + sprintf(u, "file:");
    for (const char *p = path; *p; p++) o += *p == '%' || *p == '?' || *p == '#' ? sprintf(o, "%%%02X", (unsigned char)*p) : (*o = *p, 1);
    strcpy(o, query);
    return u;
}

int sweep_db_open_input(sweep_db *d, const char *path, rp_err *err) {
    memset(d, 0, sizeof *d);
    d->path = rp_strdup(path);
    // With no -wal beside it, every row is in the file: immutable=1 reads it without locks or a -shm file (nothing
    // is created, a read-only directory works). With one (its sweep still running, or killed), mode=ro reads the
    // WAL too, through its -shm.
    char *wal = rp_malloc(strlen(path) + 5);
    sprintf(wal, "%s-wal", path);
    int has_wal = access(wal, F_OK) == 0;
    free(wal);
    char *uri = uri_of(path, has_wal ? "?mode=ro" : "?immutable=1");
    int rc = sqlite3_open_v2(uri, &d->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    free(uri);
    static const char *const tables[] = {"meta", "configs", "items", "results", "failures"};
    sqlite3_stmt *st = NULL;
    int missing = -1;   // -1: unreadable; 0: a sweep's tables are all there; t + 1: table t is not
    if (rc == SQLITE_OK &&
        sqlite3_prepare_v2(d->db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?", -1, &st, NULL) == SQLITE_OK) {
        missing = 0;
        for (int t = 0; t < 5 && !missing; t++) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, tables[t], -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_ROW) missing = -1;
            else if (sqlite3_column_int(st, 0) != 1) missing = t + 1;
        }
    }
    sqlite3_finalize(st);
    if (missing == 0) return 0;
    if (missing > 0) rp_fail(err, "%s: not a reprise sweep database (no table '%s')", path, tables[missing - 1]);
    else
        rp_fail(err, "%s: cannot read as a SQLite database: %s%s", path, d->db ? sqlite3_errmsg(d->db) : "out of memory",
                has_wal ? " (it has a -wal file: its sweep may still run; merge it where it can be written)" : "");
    sweep_db_close(d);
    return -1;
}

void sweep_db_close(sweep_db *d) {
    sqlite3_finalize(d->insert_result);
    sqlite3_finalize(d->has_result);
    if (d->db) sqlite3_close(d->db);
    if (d->lock_fd > 0) close(d->lock_fd);   // releases the flock
    free(d->path);
    memset(d, 0, sizeof *d);
}

static int check_meta(sweep_db *d, const char *source, const char *key, const char *value, rp_err *err) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(st, 0);
        if (strcmp(have, value) != 0 && !source)
            rc = rp_fail(err, "%s holds a sweep with %s '%s', not '%s': use another --out to start a new sweep", d->path,
                         key, have, value);
        else if (strcmp(have, value) != 0)
            rc = rp_fail(err, "%s is another sweep's: its %s is '%s', where the databases merged before it have '%s'; only "
                         "the shards of one sweep merge (the same model, probes, items and flags, all but --shard and "
                         "--out)", source, key, value, have);
    } else {
        sqlite3_stmt *ins;
        sqlite3_prepare_v2(d->db, "INSERT INTO meta(key, value) VALUES(?,?)", -1, &ins, NULL);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, value, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) rc = fail(d, err, "write meta");
        sqlite3_finalize(ins);
    }
    sqlite3_finalize(st);
    return rc;
}

int sweep_db_check_meta(sweep_db *d, const char *key, const char *value, rp_err *err) {
    return check_meta(d, NULL, key, value, err);
}

int sweep_db_check_merged_meta(sweep_db *d, const char *source, const char *key, const char *value, rp_err *err) {
    return check_meta(d, source, key, value, err);
}

int sweep_db_config(sweep_db *d, const char *label, const char *schedule, int i, int j, int k, int visits, int *id, rp_err *err) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "INSERT OR IGNORE INTO configs(label, schedule, i, j, k, visits) VALUES(?,?,?,?,?,?)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, label, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, schedule, -1, SQLITE_TRANSIENT);
    if (i >= 0) sqlite3_bind_int(st, 3, i), sqlite3_bind_int(st, 4, j), sqlite3_bind_int(st, 5, k);
    else sqlite3_bind_null(st, 3), sqlite3_bind_null(st, 4), sqlite3_bind_null(st, 5);
    sqlite3_bind_int(st, 6, visits);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(d, err, "add config");
    sqlite3_finalize(st);
    if (rc) return rc;
    sqlite3_prepare_v2(d->db, "SELECT id, schedule FROM configs WHERE label=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, label, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) rc = fail(d, err, "read config");
    else if (strcmp((const char *)sqlite3_column_text(st, 1), schedule) != 0)
        rc = rp_fail(err, "%s: config '%s' was stored with schedule %s, now %s", d->path, label, sqlite3_column_text(st, 1), schedule);
    else *id = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int sweep_db_item(sweep_db *d, const char *probe, const char *item, const char *prompt, const char *answer, rp_err *err) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "INSERT OR IGNORE INTO items(probe, item, prompt, answer) VALUES(?,?,?,?)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, probe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, item, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, prompt, -1, SQLITE_TRANSIENT);
    if (answer) sqlite3_bind_text(st, 4, answer, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 4);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(d, err, "add item");
    sqlite3_finalize(st);
    if (rc) return rc;
    sqlite3_prepare_v2(d->db, "SELECT prompt, answer FROM items WHERE probe=? AND item=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, probe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, item, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0), *a = (const char *)sqlite3_column_text(st, 1);
        if (strcmp(p, prompt) != 0 || (answer && (!a || strcmp(a, answer) != 0)))
            rc = rp_fail(err, "%s: probe %s item %s differs from the one this sweep started with (another file or seed?)",
                         d->path, probe, item);
    }
    sqlite3_finalize(st);
    return rc;
}

int sweep_db_has_result(sweep_db *d, int config, const char *probe, const char *item) {
    sqlite3_reset(d->has_result);
    sqlite3_bind_int(d->has_result, 1, config);
    sqlite3_bind_text(d->has_result, 2, probe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(d->has_result, 3, item, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(d->has_result) == SQLITE_ROW;
    // reset at once: a statement left on its row keeps a read transaction open, and a database attached to this
    // connection then cannot be detached (a resumed shard's exchange file, written after its rows were found)
    sqlite3_reset(d->has_result);
    return found;
}

int sweep_db_add_result(sweep_db *d, int config, const char *probe, const char *item, double score, const char *reply, rp_err *err) {
    sqlite3_reset(d->insert_result);
    sqlite3_bind_int(d->insert_result, 1, config);
    sqlite3_bind_text(d->insert_result, 2, probe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(d->insert_result, 3, item, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(d->insert_result, 4, score);
    sqlite3_bind_text(d->insert_result, 5, reply ? reply : "", -1, SQLITE_TRANSIENT);
    return sqlite3_step(d->insert_result) == SQLITE_DONE ? 0 : fail(d, err, "add result");
}

int sweep_db_add_failure(sweep_db *d, int config, const char *probe, const char *item, const char *reason, rp_err *err) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO failures(config, probe, item, reason) VALUES(?,?,?,?)", -1, &st, NULL);
    sqlite3_bind_int(st, 1, config);
    sqlite3_bind_text(st, 2, probe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, item, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(d, err, "add failure");
    sqlite3_finalize(st);
    return rc;
}

int sweep_db_forget_failures(sweep_db *d, long *n, rp_err *err) {
    if (sqlite3_exec(d->db, "DELETE FROM failures", NULL, NULL, NULL) != SQLITE_OK) return fail(d, err, "forget failures");
    *n = sqlite3_changes(d->db);
    return 0;
}

// --- reading ---

static const char *text_or_empty(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

long sweep_db_count_rows(sweep_db *d) {
    sqlite3_stmt *st;
    long n = 0;
    sqlite3_prepare_v2(d->db, "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM failures)", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

void sweep_db_scored_probes(sweep_db *d, char ***names, int *n) {
    sqlite3_stmt *st;
    *names = NULL, *n = 0;
    sqlite3_prepare_v2(d->db, "SELECT DISTINCT probe FROM results ORDER BY probe", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        *names = rp_realloc(*names, sizeof **names * (size_t)(*n + 1));
        (*names)[(*n)++] = rp_strdup(text_or_empty(st, 0));
    }
    sqlite3_finalize(st);
}

void sweep_db_scores(sweep_db *d, int config, const char *probe, char ***items, double **scores, int *n) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "SELECT item, score FROM results WHERE config=? AND probe=? ORDER BY item", -1, &st, NULL);
    sqlite3_bind_int(st, 1, config);
    sqlite3_bind_text(st, 2, probe, -1, SQLITE_TRANSIENT);
    int cap = 64;
    *n = 0;
    *items = rp_malloc(sizeof(char *) * cap);
    *scores = rp_malloc(sizeof(double) * cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap *= 2;
            *items = rp_realloc(*items, sizeof(char *) * cap);
            *scores = rp_realloc(*scores, sizeof(double) * cap);
        }
        (*items)[*n] = rp_strdup(text_or_empty(st, 0));
        (*scores)[(*n)++] = sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
}

static int int_or_none(sqlite3_stmt *st, int col) { return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int(st, col); }

void sweep_db_each_config(sweep_db *d, int by_label, void (*fn)(void *ctx, const sweep_db_config_row *row), void *ctx) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, by_label ? "SELECT id, label, schedule, i, j, k, visits FROM configs ORDER BY label"
                                       : "SELECT id, label, schedule, i, j, k, visits FROM configs ORDER BY id", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        sweep_db_config_row row = {sqlite3_column_int(st, 0), text_or_empty(st, 1), text_or_empty(st, 2), int_or_none(st, 3),
                                   int_or_none(st, 4), int_or_none(st, 5), sqlite3_column_int(st, 6)};
        fn(ctx, &row);
    }
    sqlite3_finalize(st);
}

void sweep_db_each_result(sweep_db *d, int by_label, void (*fn)(void *ctx, const sweep_db_result_row *row), void *ctx) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, by_label ? "SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON "
                                         "c.id = r.config ORDER BY c.label, r.probe, r.item"
                                       : "SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON "
                                         "c.id = r.config ORDER BY c.id, r.probe, r.item", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        sweep_db_result_row row = {text_or_empty(st, 0), text_or_empty(st, 1), text_or_empty(st, 2), sqlite3_column_double(st, 3),
                                   text_or_empty(st, 4)};
        fn(ctx, &row);
    }
    sqlite3_finalize(st);
}

void sweep_db_each_failure(sweep_db *d, void (*fn)(void *ctx, const char *label, const char *probe, const char *item,
                                                   const char *reason), void *ctx) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "SELECT c.label, f.probe, f.item, f.reason FROM failures f JOIN configs c ON c.id = f.config "
                              "ORDER BY c.id, f.probe, f.item", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) fn(ctx, text_or_empty(st, 0), text_or_empty(st, 1), text_or_empty(st, 2), text_or_empty(st, 3));
    sqlite3_finalize(st);
}

void sweep_db_each_unscored_probe(sweep_db *d, void (*fn)(void *ctx, const char *probe, int failures, const char *reason),
                                  void *ctx) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d->db, "SELECT probe, count(*), min(reason) FROM failures WHERE probe NOT IN (SELECT DISTINCT probe FROM "
                              "results) GROUP BY probe ORDER BY probe", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) fn(ctx, text_or_empty(st, 0), sqlite3_column_int(st, 1), text_or_empty(st, 2));
    sqlite3_finalize(st);
}

// --- merging another database's rows into this one ---

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

int sweep_db_merge(sweep_db *d, const char *path, long *added, rp_err *err) {
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

// --- a sharded search's exchange files ---

static int exec(sqlite3 *db, const char *sql, const char *path, rp_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    int rc = rp_fail(err, "%s: cannot write: %s", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

// Fills the connection's temporary tables with the share's config labels and (probe, item) pairs.
static int fill_step_tables(sweep_db *d, const sweep_db_share *share, rp_err *err) {
    sqlite3 *db = d->db;
    if (exec(db, "CREATE TEMP TABLE IF NOT EXISTS exchange_share(label TEXT PRIMARY KEY);"
                 "CREATE TEMP TABLE IF NOT EXISTS exchange_items(probe TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY(probe, item));"
                 "DELETE FROM temp.exchange_share; DELETE FROM temp.exchange_items;", d->path, err))
        return -1;
    sqlite3_stmt *sc = NULL, *si = NULL;
    int rc = 0;
    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.exchange_share(label) VALUES(?)", -1, &sc, NULL);
    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.exchange_items(probe, item) VALUES(?, ?)", -1, &si, NULL);
    for (int c = 0; c < share->n_labels && !rc; c++) {
        sqlite3_reset(sc);
        sqlite3_bind_text(sc, 1, share->labels[c], -1, SQLITE_TRANSIENT);
        if (sqlite3_step(sc) != SQLITE_DONE) rc = rp_fail(err, "%s: %s", d->path, sqlite3_errmsg(db));
    }
    for (int i = 0; i < share->n_items && !rc; i++) {
        sqlite3_reset(si);
        sqlite3_bind_text(si, 1, share->probe[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(si, 2, share->item[i], -1, SQLITE_TRANSIENT);
        if (sqlite3_step(si) != SQLITE_DONE) rc = rp_fail(err, "%s: %s", d->path, sqlite3_errmsg(db));
    }
    sqlite3_finalize(sc), sqlite3_finalize(si);
    return rc;
}

int sweep_db_write_share(sweep_db *d, const sweep_db_share *share, const char *path, const char *key, rp_err *err) {
    sqlite3 *db = d->db;
    char *tmp = rp_malloc(strlen(path) + 32);
    sprintf(tmp, "%s.tmp-%ld", path, (long)getpid());
    unlink(tmp);
    int rc = fill_step_tables(d, share, err);
    sqlite3_stmt *st = NULL;
    if (!rc) {
        sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS exchange_out", -1, &st, NULL);
        sqlite3_bind_text(st, 1, tmp, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) rc = rp_fail(err, "%s: cannot create: %s", tmp, sqlite3_errmsg(db));
        sqlite3_finalize(st), st = NULL;
    }
    int attached = !rc;
    if (!rc)
        rc = exec(db,
                  "PRAGMA exchange_out.journal_mode=DELETE; BEGIN;"
                  "CREATE TABLE exchange_out.meta AS SELECT key, value FROM main.meta;"
                  "CREATE TABLE exchange_out.configs AS SELECT c.id, c.label, c.schedule, c.i, c.j, c.k, c.visits "
                  " FROM main.configs c JOIN temp.exchange_share s ON s.label = c.label;"
                  "CREATE TABLE exchange_out.results AS SELECT r.config, r.probe, r.item, r.score, r.reply "
                  " FROM main.results r JOIN exchange_out.configs c ON c.id = r.config"
                  " JOIN temp.exchange_items t ON t.probe = r.probe AND t.item = r.item;"
                  "CREATE TABLE exchange_out.failures AS SELECT f.config, f.probe, f.item, f.reason "
                  " FROM main.failures f JOIN exchange_out.configs c ON c.id = f.config"
                  " JOIN temp.exchange_items t ON t.probe = f.probe AND t.item = f.item;"
                  "CREATE TABLE exchange_out.items AS SELECT i.probe, i.item, i.prompt, i.answer "
                  " FROM main.items i JOIN temp.exchange_items t ON t.probe = i.probe AND t.item = i.item;"
                  "CREATE TABLE exchange_out.step(key TEXT NOT NULL);",
                  tmp, err);
    if (!rc) {
        sqlite3_prepare_v2(db, "INSERT INTO exchange_out.step(key) VALUES(?)", -1, &st, NULL);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) rc = rp_fail(err, "%s: cannot write: %s", tmp, sqlite3_errmsg(db));
        sqlite3_finalize(st), st = NULL;
    }
    // every (config, item) of the share has its row: a step is exchanged only once it is complete
    if (!rc) {
        long long items = share->n_items;
        sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM exchange_out.results) + (SELECT count(*) FROM exchange_out.failures),"
                           " (SELECT count(*) FROM exchange_out.configs)", -1, &st, NULL);
        long long rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        if (rows != (long long)share->n_labels * items || sqlite3_column_int64(st, 1) != share->n_labels)
            rc = rp_fail(err, "%s: the share's rows are incomplete (%lld of %lld)", tmp, rows, (long long)share->n_labels * items);
        sqlite3_finalize(st), st = NULL;
    }
    if (attached) {
        if (exec(db, rc ? "ROLLBACK" : "COMMIT", tmp, err) && !rc) rc = -1;
        char *msg = NULL;   // a failed detach would refuse the next step's attach: say it here, naming why
        if (sqlite3_exec(db, "DETACH DATABASE exchange_out", NULL, NULL, &msg) != SQLITE_OK && !rc)
            rc = rp_fail(err, "%s: cannot detach after writing: %s", tmp, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
    }
    if (!rc && rename(tmp, path)) rc = rp_fail(err, "%s: cannot rename into %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

int sweep_db_read_step_key(const char *path, char *key, size_t cap, rp_err *err) {
    sweep_db in;
    if (sweep_db_open_input(&in, path, err)) return -1;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(in.db, "SELECT key FROM step", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
        !sqlite3_column_text(st, 0))
        rc = rp_fail(err, "%s: not a search's exchange file (no step key)", path);
    else snprintf(key, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sweep_db_close(&in);
    return rc;
}
