// Searching a config space without measuring all of it on every item: successive halving, beam search, surrogate.
//
// A grid of 3,240 configs on 50 items is 162,000 rows; most configs are clearly worse than base after a few items.
// Halving spends items where they decide something: all configs on a few items, the better half on twice as many,
// ..., the last few on the full set. Each rung is a sweep of its configs (base always) over the first n items, so
// rows are shared across rungs and a killed search resumes from its database.
#include "tools/sweep/search.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/common/stats.h"
#include "loader/fingerprint.h"
#include "tools/sweep/exchange.h"
#include "tools/sweep/label_set.h"
#include "tools/sweep/report.h"
#include "tools/sweep/surrogate.h"

// The rung's configs ranked on the items the rung measured: each probe's first `items` (a view of the probes; the
// sweep's own are not changed).
static int rank_rung(sweep_run *r, char *const *labels, int n, int items, int *order, rp_err *err) {
    probe *view = rp_malloc(sizeof *view * (size_t)(r->n_probes ? r->n_probes : 1));
    for (int p = 0; p < r->n_probes; p++) {
        view[p] = r->probes[p];
        if (items < view[p].n_items) view[p].n_items = items;
    }
    int rc = sweep_rank_among(r->db, labels, n, view, r->n_probes, order, err);
    free(view);
    return rc;
}

int sweep_halving(sweep_run *r, int start_items, rp_err *err) {
    const config_list *all = r->configs;
    int full = 0, rc = 0;
    for (int p = 0; p < r->n_probes; p++)
        if (r->probes[p].n_items > full) full = r->probes[p].n_items;
    int n_alive = all->n - 1, *alive = rp_malloc(sizeof(int) * (size_t)(all->n ? all->n : 1));   // indices into all (base: 0)
    for (int c = 1; c < all->n; c++) alive[c - 1] = c;
    config_list rung = {rp_malloc(sizeof(sweep_config) * (size_t)all->n), 0};
    int *rung_ids = rp_malloc(sizeof(int) * (size_t)all->n), *order = rp_malloc(sizeof(int) * (size_t)all->n);
    char **labels = rp_malloc(sizeof(char *) * (size_t)all->n);
    for (int items = start_items < full ? start_items : full, k = 1;; k++) {
        rung.n = 0;
        rung.c[rung.n] = all->c[0], rung_ids[rung.n++] = r->config_ids[0];
        for (int a = 0; a < n_alive; a++) rung.c[rung.n] = all->c[alive[a]], rung_ids[rung.n++] = r->config_ids[alive[a]];
        fprintf(stderr, "reprise sweep: halving rung %d: %d configs and base on %d item(s) per probe\n", k, n_alive, items);
        sweep_step step = {&rung, rung_ids, items};   // each probe's first `items` items (all it has, when fewer)
        if ((rc = sweep_run_step(r, &step, err)) || r->timed_out || r->interrupted || items >= full || n_alive <= 1) break;
        for (int a = 0; a < n_alive; a++) labels[a] = all->c[alive[a]].label;
        if ((rc = rank_rung(r, labels, n_alive, items, order, err))) break;
        int keep = (n_alive + 1) / 2, *next = rp_malloc(sizeof(int) * (size_t)keep);
        for (int a = 0; a < keep; a++) next[a] = alive[order[a]];
        memcpy(alive, next, sizeof(int) * (size_t)keep);
        free(next);
        n_alive = keep;
        items = items * 2 < full ? items * 2 : full;
    }
    free(alive), free(rung.c), free(rung_ids), free(order), free(labels);
    return rc;
}

// What a search has measured, in the order it measured them: the path it retraces when resumed.
typedef struct {
    sweep_run *r;
    int budget;
    char **label;
    float *features;   // n x n_layers: per-layer visit counts
    double *score;     // balanced score among the trail's configs (NAN: no rows, every row failed)
    int n, cap;
    label_set seen;    // measured, and what a search has ruled out
} trail;

static void trail_init(trail *t, sweep_run *r, int budget) {
    memset(t, 0, sizeof *t);
    t->r = r, t->budget = budget;
    label_set_init(&t->seen, budget);
}

static void trail_free(trail *t) {
    for (int i = 0; i < t->n; i++) free(t->label[i]);
    free(t->label), free(t->features), free(t->score);
    label_set_free(&t->seen);
}

static int should_stop(const sweep_run *r) { return (r->deadline > 0 && rp_now_s() >= r->deadline) || r->interrupted; }

// Measures the configs labels[0..n) (new ones: the caller checked t->seen) on every item, as many as the budget
// leaves room for, then scores every config of the trail. Returns how many it measured through *measured.
static int measure(trail *t, char *const *labels, int n, int *measured, rp_err *err) {
    sweep_run *r = t->r;
    int N = r->m->cfg.n_layers, room = t->budget - t->n;
    if (n > room) n = room;
    *measured = n;
    if (n <= 0) return 0;
    config_list rung = {0};
    int rc = sweep_space_add(&rung, "base", "base", N, err);
    for (int i = 0; i < n && !rc; i++) rc = sweep_space_add(&rung, labels[i], labels[i], N, err);
    int *ids = rp_malloc(sizeof(int) * (size_t)(rung.n ? rung.n : 1));
    for (int c = 0; c < rung.n && !rc; c++) rc = sweep_db_add_config(r->db, &rung.c[c], &ids[c], err);
    sweep_step step = {&rung, ids, 0};
    if (!rc) rc = sweep_run_step(r, &step, err);
    if (!rc && t->n + n > t->cap) {
        t->cap = t->n + n > 2 * t->cap ? t->n + n : 2 * t->cap;
        t->label = rp_realloc(t->label, sizeof(char *) * (size_t)t->cap);
        t->features = rp_realloc(t->features, sizeof(float) * (size_t)t->cap * (size_t)N);
        t->score = rp_realloc(t->score, sizeof(double) * (size_t)t->cap);
    }
    for (int i = 0; i < n && !rc; i++) {   // rung.c[1 + i] is labels[i]: labels are new, so none was dropped
        float *f = t->features + (size_t)t->n * (size_t)N;
        for (int l = 0; l < N; l++) f[l] = 0;
        const schedule *s = &rung.c[1 + i].sched;
        for (int v = 0; v < s->n_visits; v++) f[s->layer[v]] += 1;
        label_set_add(&t->seen, labels[i]);
        t->label[t->n++] = rp_strdup(labels[i]);
    }
    if (!rc) rc = sweep_scores_among(r->db, t->label, t->n, r->probes, r->n_probes, t->score, err);
    free(ids);
    sweep_space_free(&rung);
    return rc;
}

// The trail's indices, best score first (no score last; ties: measured first).
static int *trail_order(const trail *t) {
    int *order = rp_malloc(sizeof(int) * (size_t)(t->n > 0 ? t->n : 1));
    for (int i = 0; i < t->n; i++) order[i] = i;
    for (int a = 1; a < t->n; a++)
        for (int b = a; b > 0; b--) {
            double x = t->score[order[b]], y = t->score[order[b - 1]];
            if (!(isnan(y) ? !isnan(x) : x > y)) break;
            int tmp = order[b];
            order[b] = order[b - 1], order[b - 1] = tmp;
        }
    return order;
}

// The seed: the sweep's configs but base, which must fit the budget.
static int measure_seed(trail *t, const char *mode, rp_err *err) {
    sweep_run *r = t->r;
    int n = 0, measured;
    char **labels = rp_malloc(sizeof(char *) * (size_t)r->configs->n);
    for (int c = 0; c < r->configs->n; c++)   // the space is free of duplicates already (sweep_space_build)
        if (strcmp(r->configs->c[c].label, "base")) labels[n++] = r->configs->c[c].label;
    int rc = 0;
    if (n == 0) rc = rp_fail(err, "--search %s: the config space is empty: it starts from the grid or --configs", mode);
    else if (n > t->budget)
        rc = rp_fail(err, "--search %s starts by measuring the config space, %d configs, more than --budget %d: coarsen it "
                     "(--stride, --block-sizes, --i-range, --j-range) or raise --budget", mode, n, t->budget);
    if (!rc) {
        fprintf(stderr, "reprise sweep: %s: measuring the seed, %d configs\n", mode, n);
        rc = measure(t, labels, n, &measured, err);
    }
    free(labels);
    return rc;
}

static void print_best(const trail *t, const char *mode, const char *when) {
    int *order = trail_order(t);
    if (t->n && !isnan(t->score[order[0]]))
        fprintf(stderr, "reprise sweep: %s %s: %d of --budget %d configs measured; best %s (balanced %+.3f)\n", mode, when,
                t->n, t->budget, t->label[order[0]], t->score[order[0]]);
    free(order);
}

// Why a search stopped, on stderr.
static void print_stop(const trail *t, const char *mode, int exhausted) {
    if (t->r->interrupted) return;   // cmd_sweep says how to resume
    if (should_stop(t->r))
        fprintf(stderr, "reprise sweep: %s: --budget-hours spent after %d configs; the same command resumes\n", mode, t->n);
    else if (exhausted) fprintf(stderr, "reprise sweep: %s: nothing new to propose after %d configs\n", mode, t->n);
    else fprintf(stderr, "reprise sweep: %s: --budget of %d configs spent\n", mode, t->budget);
}

int sweep_beam(sweep_run *r, const search_opts *o, rp_err *err) {
    trail t;
    trail_init(&t, r, o->budget);
    int rc = measure_seed(&t, "beam", err), exhausted = 0, cap_moves = 7 * BLOCKS_MAX + o->beam * BLOCKS_MAX;
    blocks *partners = rp_malloc(sizeof(blocks) * (size_t)o->beam), *moves = rp_malloc(sizeof(blocks) * (size_t)cap_moves);
    for (int step = 1; !rc && t.n < t.budget && !should_stop(r); step++) {
        char when[32];
        snprintf(when, sizeof when, "step %d", step - 1);
        print_best(&t, "beam", step == 1 ? "seed" : when);
        int *order = trail_order(&t), n_partners = 0, n_beam = 0, n_new = 0, measured;
        blocks *beam = rp_malloc(sizeof(blocks) * (size_t)o->beam);
        for (int a = 0; a < t.n && (n_beam < o->beam || n_partners < o->beam); a++) {
            blocks b;
            if (isnan(t.score[order[a]]) || blocks_from_label(t.label[order[a]], &b) || !blocks_valid(&b, &o->space)) continue;
            if (n_beam < o->beam) beam[n_beam++] = b;
            if (b.n == 1 && n_partners < o->beam) partners[n_partners++] = b;
        }
        char **labels = NULL;
        for (int a = 0; a < n_beam; a++) {
            int n_moves = blocks_moves(&beam[a], &o->space, partners, n_partners, moves, cap_moves);
            for (int m = 0; m < n_moves; m++) {
                char label[256];
                blocks_label(&moves[m], label, sizeof label);
                if (label_set_has(&t.seen, label)) continue;
                labels = rp_realloc(labels, sizeof(char *) * (size_t)(n_new + 1));
                labels[n_new++] = rp_strdup(label);
                label_set_add(&t.seen, label);   // proposed: not again this step
            }
        }
        if (!n_new) exhausted = 1;
        else {
            fprintf(stderr, "reprise sweep: beam step %d: %d new configs around the best %d\n", step, n_new, n_beam);
            // measure() marks the ones it measures; those past the budget were never measured
            rc = measure(&t, labels, n_new, &measured, err);
        }
        for (int i = 0; i < n_new; i++) free(labels[i]);
        free(labels), free(order), free(beam);
        if (exhausted) break;
    }
    if (!rc) print_best(&t, "beam", "end"), print_stop(&t, "beam", exhausted);
    free(partners), free(moves);
    trail_free(&t);
    return rc;
}

// Spearman's correlation of the surrogate's predictions with the measured scores on the trail's configs whose label
// hashes to 0 mod 5, trained on the others; NAN when either part is too small.
static double held_out_spearman(const trail *t, int N, rp_err *err, int *rc) {
    int n_test = 0, n_train = 0;
    float *xtr = rp_malloc(sizeof(float) * (size_t)(t->n > 0 ? t->n : 1) * (size_t)N), *ytr = rp_malloc(sizeof(float) * (size_t)(t->n > 0 ? t->n : 1));
    float *xte = rp_malloc(sizeof(float) * (size_t)(t->n > 0 ? t->n : 1) * (size_t)N);
    double *yte = rp_malloc(sizeof(double) * (size_t)(t->n > 0 ? t->n : 1));
    for (int i = 0; i < t->n; i++) {
        if (isnan(t->score[i])) continue;
        int test = fingerprint_str(FINGERPRINT_SEED, t->label[i]) % 5 == 0;
        memcpy((test ? xte + (size_t)n_test * N : xtr + (size_t)n_train * N), t->features + (size_t)i * N, sizeof(float) * (size_t)N);
        if (test) yte[n_test++] = t->score[i];
        else ytr[n_train++] = (float)t->score[i];
    }
    double rho = NAN;
    surrogate *s = NULL;
    if (n_test >= 5 && n_train >= 10 && !(*rc = surrogate_fit(&s, xtr, ytr, n_train, N, err))) {
        float *pred = rp_malloc(sizeof(float) * (size_t)n_test);
        double *p = rp_malloc(sizeof(double) * (size_t)n_test);
        if (!(*rc = surrogate_predict(s, xte, n_test, pred, err))) {
            for (int i = 0; i < n_test; i++) p[i] = pred[i];
            rho = stats_spearman(p, yte, n_test);
        }
        free(pred), free(p);
    }
    surrogate_free(s);
    free(xtr), free(ytr), free(xte), free(yte);
    return rho;
}

int sweep_surrogate(sweep_run *r, const search_opts *o, rp_err *err) {
    trail t;
    trail_init(&t, r, o->budget);
    int N = r->m->cfg.n_layers, rc = measure_seed(&t, "surrogate", err), exhausted = 0;
    blocks *pool = NULL;
    int n_pool = rc ? 0 : blocks_pool(&o->space, o->pool, o->seed, &pool);
    if (!rc) fprintf(stderr, "reprise sweep: surrogate: a pool of %d candidate configs\n", n_pool);
    float *pool_x = rp_malloc(sizeof(float) * (size_t)(n_pool > 0 ? n_pool : 1) * (size_t)N);
    float *pred = rp_malloc(sizeof(float) * (size_t)(n_pool > 0 ? n_pool : 1));
    int *open = rp_malloc(sizeof(int) * (size_t)(n_pool > 0 ? n_pool : 1));
    for (int c = 0; c < n_pool; c++) blocks_features(&pool[c], N, pool_x + (size_t)c * N);
    for (int round = 1; !rc && t.n < t.budget && !should_stop(r); round++) {
        // training rows: the measured configs with a score
        int n_train = 0;
        float *x = rp_malloc(sizeof(float) * (size_t)t.n * (size_t)N), *y = rp_malloc(sizeof(float) * (size_t)t.n);
        for (int i = 0; i < t.n; i++)
            if (!isnan(t.score[i])) {
                memcpy(x + (size_t)n_train * N, t.features + (size_t)i * N, sizeof(float) * (size_t)N);
                y[n_train++] = (float)t.score[i];
            }
        double rho = held_out_spearman(&t, N, err, &rc);
        surrogate *s = NULL;
        if (!rc && n_train < 2)
            rc = rp_fail(err, "--search surrogate: %d measured config(s) with a score; it trains on at least 2", n_train);
        if (!rc) rc = surrogate_fit(&s, x, y, n_train, N, err);
        // the open pool: what is not measured yet, ranked by prediction (ties: pool order)
        int n_open = 0;
        char label[256];
        for (int c = 0; c < n_pool && !rc; c++) {
            blocks_label(&pool[c], label, sizeof label);
            if (!label_set_has(&t.seen, label)) open[n_open++] = c;
        }
        float *ox = rp_malloc(sizeof(float) * (size_t)(n_open > 0 ? n_open : 1) * (size_t)N);
        for (int a = 0; a < n_open; a++) memcpy(ox + (size_t)a * N, pool_x + (size_t)open[a] * N, sizeof(float) * (size_t)N);
        if (!rc) rc = surrogate_predict(s, ox, n_open, pred, err);
        free(ox);
        int want = o->round < n_open ? o->round : n_open;
        for (int a = 0; a < want && !rc; a++) {   // partial selection sort: the best `want` to the front
            int best = a;
            for (int b = a + 1; b < n_open; b++)
                if (pred[b] > pred[best]) best = b;
            int ti = open[a];
            float tp = pred[a];
            open[a] = open[best], pred[a] = pred[best], open[best] = ti, pred[best] = tp;
        }
        if (!rc) {
            if (isnan(rho))
                fprintf(stderr, "reprise sweep: surrogate round %d: trained on %d configs (too few to hold a fifth out)\n", round, n_train);
            else
                fprintf(stderr, "reprise sweep: surrogate round %d: trained on %d configs; Spearman %.3f on the fifth held out\n",
                        round, n_train, rho);
            if (!want) exhausted = 1;
        }
        char **labels = rp_malloc(sizeof(char *) * (size_t)(want > 0 ? want : 1));
        int n_labels = 0;
        for (int a = 0; a < want && !rc; a++) {
            blocks_label(&pool[open[a]], label, sizeof label);
            labels[n_labels++] = rp_strdup(label);
        }
        int measured = 0, first = t.n;
        if (!rc && want) rc = measure(&t, labels, want, &measured, err);
        if (!rc && measured >= 5) {   // how well it ranked what it chose, now measured
            double *p = rp_malloc(sizeof(double) * (size_t)measured), *m = rp_malloc(sizeof(double) * (size_t)measured);
            for (int a = 0; a < measured; a++) p[a] = pred[a], m[a] = t.score[first + a];
            fprintf(stderr, "reprise sweep: surrogate round %d: measured %d configs; Spearman %.3f of predicted and measured\n",
                    round, measured, stats_spearman(p, m, measured));
            free(p), free(m);
        }
        for (int a = 0; a < n_labels; a++) free(labels[a]);
        free(labels), free(x), free(y);
        surrogate_free(s);
        char when[32];
        snprintf(when, sizeof when, "round %d", round);
        if (!rc) print_best(&t, "surrogate", when);
        if (exhausted) break;
    }
    if (!rc) print_stop(&t, "surrogate", exhausted);
    free(pool), free(pool_x), free(pred), free(open);
    trail_free(&t);
    return rc;
}
