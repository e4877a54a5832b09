// Searching a config space without measuring all of it on every item: successive halving.
//
// A grid of 3,240 configs on 50 items is 162,000 rows; most configs are clearly worse than base after a few items.
// Halving spends items where they decide something: all configs on a few items, the better half on twice as many,
// ..., the last few on the full set. Each rung is a sweep of its configs (base always) over the first n items, so
// rows are shared across rungs and a killed search resumes from its database.
#include "tools/sweep/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sweep/report.h"

int sweep_halving(sweep_run *r, int start_items, rp_err *err) {
    config_list *all = r->configs;
    int *all_ids = r->config_ids, full = 0, rc = 0;
    int *saved = malloc(sizeof(int) * (size_t)(r->n_probes ? r->n_probes : 1));
    for (int p = 0; p < r->n_probes; p++) {
        saved[p] = r->probes[p].n_items;
        if (saved[p] > full) full = saved[p];
    }
    int n_alive = all->n - 1, *alive = malloc(sizeof(int) * (size_t)(all->n ? all->n : 1));   // indices into all (base: 0)
    for (int c = 1; c < all->n; c++) alive[c - 1] = c;
    config_list rung = {malloc(sizeof(sweep_config) * (size_t)all->n), 0};
    int *rung_ids = malloc(sizeof(int) * (size_t)all->n), *order = malloc(sizeof(int) * (size_t)all->n);
    char **labels = malloc(sizeof(char *) * (size_t)all->n);
    for (int items = start_items < full ? start_items : full, k = 1;; k++) {
        rung.n = 0;
        rung.c[rung.n] = all->c[0], rung_ids[rung.n++] = all_ids[0];
        for (int a = 0; a < n_alive; a++) rung.c[rung.n] = all->c[alive[a]], rung_ids[rung.n++] = all_ids[alive[a]];
        for (int p = 0; p < r->n_probes; p++) r->probes[p].n_items = items < saved[p] ? items : saved[p];
        fprintf(stderr, "reprise sweep: halving rung %d: %d configs and base on %d item(s) per probe\n", k, n_alive, items);
        r->configs = &rung, r->config_ids = rung_ids;
        if ((rc = sweep_run_all(r, err)) || items >= full || n_alive <= 1) break;
        for (int a = 0; a < n_alive; a++) labels[a] = all->c[alive[a]].label;
        if ((rc = sweep_rank_among(r->db, labels, n_alive, r->probes, r->n_probes, order, err))) break;
        int keep = (n_alive + 1) / 2, *next = malloc(sizeof(int) * (size_t)keep);
        for (int a = 0; a < keep; a++) next[a] = alive[order[a]];
        memcpy(alive, next, sizeof(int) * (size_t)keep);
        free(next);
        n_alive = keep;
        items = items * 2 < full ? items * 2 : full;
    }
    for (int p = 0; p < r->n_probes; p++) r->probes[p].n_items = saved[p];
    r->configs = all, r->config_ids = all_ids;
    free(saved), free(alive), free(rung.c), free(rung_ids), free(order), free(labels);
    return rc;
}
