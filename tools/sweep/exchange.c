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
#include "tools/sweep/db.h"

// What the step is, whoever runs it: its number, the shard count, each probe's items and every config in order.
// Two shards started with the same flags compute the same key at every step.
static void step_key(const sweep_run *r, const sweep_step *st, char *key, size_t cap) {
    char head[64];
    snprintf(head, sizeof head, "step %d of a search in %d shards", r->step, r->shard_n);
    uint64_t h = fingerprint_str(FINGERPRINT_SEED, head);
    for (int p = 0; p < r->n_probes; p++) {
        char n[32];
        snprintf(n, sizeof n, "%d items", sweep_step_items(r, st, p));
        h = fingerprint_str(fingerprint_str(h, r->probes[p].name), n);
    }
    for (int c = 0; c < st->configs->n; c++) h = fingerprint_str(h, st->configs->c[c].label);
    snprintf(key, cap, "%016llx", (unsigned long long)h);
}

static char *step_path(const sweep_run *r, int shard) {
    char name[96];
    snprintf(name, sizeof name, "step-%05d.shard-%d-of-%d.sqlite", r->step, shard, r->shard_n);
    return path_join(r->exchange, name);
}

// The share's rows on the step's items (each probe's first ones, as many as a halving rung measures) into path.
static int write_share(sweep_run *r, const sweep_step *st, const config_list *share, const char *path, const char *key,
                       rp_err *err) {
    int n_items = 0;
    for (int p = 0; p < r->n_probes; p++) n_items += sweep_step_items(r, st, p);
    const char **labels = rp_malloc(sizeof(char *) * (size_t)(share->n ? share->n : 1));
    const char **probe = rp_malloc(sizeof(char *) * (size_t)(n_items ? n_items : 1));
    const char **item = rp_malloc(sizeof(char *) * (size_t)(n_items ? n_items : 1));
    for (int c = 0; c < share->n; c++) labels[c] = share->c[c].label;
    for (int p = 0, k = 0; p < r->n_probes; p++)
        for (int i = 0; i < sweep_step_items(r, st, p); i++, k++) probe[k] = r->probes[p].name, item[k] = r->probes[p].items[i].id;
    sweep_db_share s = {labels, share->n, probe, item, n_items};
    int rc = sweep_db_write_share(r->db, &s, path, key, err);
    free(labels), free(probe), free(item);
    return rc;
}

// path's step key must be this step's.
static int check_key(const sweep_run *r, const char *path, int shard, const char *want, rp_err *err) {
    char have[40];
    if (sweep_db_read_step_key(path, have, sizeof have, err)) return -1;
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

int sweep_run_step(sweep_run *r, const sweep_step *step, rp_err *err) {
    if (!r->exchange) return sweep_run_all(r, step, err);
    r->step++;
    const config_list *all = step->configs;
    config_list share = {rp_malloc(sizeof(sweep_config) * (size_t)(all->n ? all->n : 1)), 0};
    int *share_ids = rp_malloc(sizeof(int) * (size_t)(all->n ? all->n : 1)), rc = 0;
    for (int c = r->shard_k; c < all->n; c += r->shard_n) share.c[share.n] = all->c[c], share_ids[share.n++] = step->config_ids[c];
    char key[40];
    step_key(r, step, key, sizeof key);
    if (mkdir(r->exchange, 0755) && errno != EEXIST)
        rc = rp_fail(err, "--exchange %s: cannot create: %s", r->exchange, strerror(errno));
    sweep_step mine_step = {&share, share_ids, step->items};
    if (!rc && share.n) rc = sweep_run_all(r, &mine_step, err);
    if (rc || r->timed_out || r->interrupted) goto done;   // an unfinished share is not exchanged
    char *mine = step_path(r, r->shard_k);
    if (file_exists(mine)) rc = check_key(r, mine, r->shard_k, key, err);   // a rerun wrote it before
    else rc = write_share(r, step, &share, mine, key, err);
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
                if (!rc) rc = sweep_db_merge(r->db, path, &added, err);
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
