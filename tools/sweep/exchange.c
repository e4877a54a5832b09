// Sharded searches: each step's configs split over the shards, which trade their rows through a shared directory.
//
// A search decides each step from every row measured before it, so its shards must all hold every row before any
// of them can decide the next step: after measuring its share of a step, a shard writes the share's rows to a
// file of its own in the exchange directory and reads the others'. Files rather than one shared database: shards
// on several machines meet on a network filesystem, where SQLite's locks and WAL cannot be trusted; a file built
// aside and renamed into place is seen whole or not at all, is never written again, and each shard's database
// keeps its one writer. The file is itself a small sweep database (the share's configs, items, results and
// failures, the meta), so reading it is a merge, with the merge's checks.
#include "tools/sweep/exchange.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/common/stats.h"
#include "loader/alloc.h"
#include "loader/fingerprint.h"
#include "loader/json_file.h"
#include "tools/sweep/merge.h"

// What the step is, whoever runs it: its number, the shard count, each probe's items and every config in order.
// Two shards started with the same flags compute the same key at every step.
static void step_key(const sweep_run *r, char *key, size_t cap) {
    char head[64];
    snprintf(head, sizeof head, "step %d of a search in %d shards", r->step, r->shard_n);
    uint64_t h = fingerprint_str(FINGERPRINT_SEED, head);
    for (int p = 0; p < r->n_probes; p++) {
        char n[32];
        snprintf(n, sizeof n, "%d items", r->probes[p].n_items);
        h = fingerprint_str(fingerprint_str(h, r->probes[p].name), n);
    }
    for (int c = 0; c < r->configs->n; c++) h = fingerprint_str(h, r->configs->c[c].label);
    snprintf(key, cap, "%016llx", (unsigned long long)h);
}

static char *step_path(const sweep_run *r, int shard) {
    char name[96];
    snprintf(name, sizeof name, "step-%05d.shard-%d-of-%d.sqlite", r->step, shard, r->shard_n);
    return path_join(r->exchange, name);
}

static int exec(sqlite3 *db, const char *sql, const char *path, rp_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    int rc = rp_fail(err, "%s: cannot write: %s", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

// Fills the connection's temporary tables with this step's share (config labels) and items (the probes' first
// n_items, which a halving rung lowers).
static int fill_step_tables(sweep_run *r, const config_list *share, rp_err *err) {
    sqlite3 *db = r->db->db;
    if (exec(db, "CREATE TEMP TABLE IF NOT EXISTS exchange_share(label TEXT PRIMARY KEY);"
                 "CREATE TEMP TABLE IF NOT EXISTS exchange_items(probe TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY(probe, item));"
                 "DELETE FROM temp.exchange_share; DELETE FROM temp.exchange_items;", r->db->path, err))
        return -1;
    sqlite3_stmt *sc = NULL, *si = NULL;
    int rc = 0;
    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.exchange_share(label) VALUES(?)", -1, &sc, NULL);
    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.exchange_items(probe, item) VALUES(?, ?)", -1, &si, NULL);
    for (int c = 0; c < share->n && !rc; c++) {
        sqlite3_reset(sc);
        sqlite3_bind_text(sc, 1, share->c[c].label, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(sc) != SQLITE_DONE) rc = rp_fail(err, "%s: %s", r->db->path, sqlite3_errmsg(db));
    }
    for (int p = 0; p < r->n_probes && !rc; p++)
        for (int i = 0; i < r->probes[p].n_items && !rc; i++) {
            sqlite3_reset(si);
            sqlite3_bind_text(si, 1, r->probes[p].name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(si, 2, r->probes[p].items[i].id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(si) != SQLITE_DONE) rc = rp_fail(err, "%s: %s", r->db->path, sqlite3_errmsg(db));
        }
    sqlite3_finalize(sc), sqlite3_finalize(si);
    return rc;
}

// The share's rows on the step's items, with its configs, items and the database's meta, into path: built in
// path.tmp-PID (rollback journal, so nothing is left beside it) and renamed into place once complete.
static int write_share(sweep_run *r, const config_list *share, const char *path, const char *key, rp_err *err) {
    sqlite3 *db = r->db->db;
    char *tmp = rp_malloc(strlen(path) + 32);
    sprintf(tmp, "%s.tmp-%ld", path, (long)getpid());
    unlink(tmp);
    int rc = fill_step_tables(r, share, err);
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
        long long items = 0;
        for (int p = 0; p < r->n_probes; p++) items += r->probes[p].n_items;
        sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM exchange_out.results) + (SELECT count(*) FROM exchange_out.failures),"
                           " (SELECT count(*) FROM exchange_out.configs)", -1, &st, NULL);
        long long rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        if (rows != (long long)share->n * items || sqlite3_column_int64(st, 1) != share->n)
            rc = rp_fail(err, "%s: the share's rows are incomplete (%lld of %lld)", tmp, rows, (long long)share->n * items);
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

// The step key a shard's file was written for.
static int read_key(const char *path, char *key, size_t cap, rp_err *err) {
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

// path's step key must be this step's.
static int check_key(const sweep_run *r, const char *path, int shard, const char *want, rp_err *err) {
    char have[40];
    if (read_key(path, have, sizeof have, err)) return -1;
    if (strcmp(have, want))
        return rp_fail(err, "%s: shard %d's step %d measured other configs or items than this shard's step %d: the "
                       "shards were given different flags (all but --shard and --out must be the same), or %s holds "
                       "another search's files (give each search its own --exchange)",
                       path, shard, r->step, r->step, r->exchange);
    return 0;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int sweep_run_step(sweep_run *r, rp_err *err) {
    if (!r->exchange) return sweep_run_all(r, err);
    r->step++;
    config_list *all = r->configs, share = {rp_malloc(sizeof(sweep_config) * (size_t)(all->n ? all->n : 1)), 0};
    int *all_ids = r->config_ids, *share_ids = rp_malloc(sizeof(int) * (size_t)(all->n ? all->n : 1)), rc = 0;
    for (int c = r->shard_k; c < all->n; c += r->shard_n) share.c[share.n] = all->c[c], share_ids[share.n++] = all_ids[c];
    char key[40];
    step_key(r, key, sizeof key);
    if (mkdir(r->exchange, 0755) && errno != EEXIST)
        rc = rp_fail(err, "--exchange %s: cannot create: %s", r->exchange, strerror(errno));
    if (!rc && share.n) {
        r->configs = &share, r->config_ids = share_ids;
        rc = sweep_run_all(r, err);
        r->configs = all, r->config_ids = all_ids;
    }
    if (rc || r->timed_out || r->interrupted) goto done;   // an unfinished share is not exchanged
    char *mine = step_path(r, r->shard_k);
    if (file_exists(mine)) rc = check_key(r, mine, r->shard_k, key, err);   // a rerun wrote it before
    else rc = write_share(r, &share, mine, key, err);
    free(mine);
    // the other shards' rows of the step
    int *have = rp_calloc((size_t)r->shard_n, sizeof(int)), left = r->shard_n - 1;
    have[r->shard_k] = 1;
    double next_note = rp_now_s() + 2;
    while (!rc && left > 0) {
        for (int q = 0; q < r->shard_n && !rc; q++) {
            if (have[q]) continue;
            char *path = step_path(r, q);
            if (file_exists(path)) {
                long added = 0;
                rc = check_key(r, path, q, key, err);
                if (!rc) rc = sweep_merge_one(r->db, path, &added, err);
                if (!rc) have[q] = 1, left--;
            }
            free(path);
        }
        if (rc || !left) break;
        if (sweep_stop_requested) {
            r->interrupted = 1;
            break;
        }
        if (r->deadline > 0 && rp_now_s() >= r->deadline) {
            r->timed_out = 1;
            break;
        }
        if (r->progress && rp_now_s() >= next_note) {
            fprintf(stderr, "reprise sweep: step %d: shard %d of %d waits for the rows of shard(s)", r->step, r->shard_k, r->shard_n);
            for (int q = 0; q < r->shard_n; q++)
                if (!have[q]) fprintf(stderr, " %d", q);
            fprintf(stderr, " in %s (a shard that stopped resumes with its own command)\n", r->exchange);
            next_note = rp_now_s() + 60;
        }
        sleep_s(0.2);
    }
    free(have);
done:
    free(share.c), free(share_ids);
    return rc;
}
