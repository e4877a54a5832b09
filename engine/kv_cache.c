// The KV cache of one sequence: one slot per visit of its schedule, never shared between two visits.
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

int kv_cache_init(kv_cache *c, backend *be, int n_visits, int capacity, rp_err *err) {
    memset(c, 0, sizeof *c);
    c->slots = calloc((size_t)n_visits, sizeof *c->slots);
    c->capacity = capacity;
    for (int v = 0; v < n_visits; v++) {
        if (be->kv_alloc(be, &c->slots[v], capacity, err)) {
            kv_cache_free(c, be);
            return -1;
        }
        c->n_slots++;
    }
    return 0;
}

void kv_cache_free(kv_cache *c, backend *be) {
    for (int v = 0; v < c->n_slots; v++) be->kv_free(be, &c->slots[v]);
    free(c->slots);
    memset(c, 0, sizeof *c);
}
