// The KV cache of one sequence: one slot per visit of its schedule, never shared between two visits.
#include "engine/kv_cache.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

int kv_cache_init(kv_cache *c, backend *be, int n_visits, int capacity, rp_err *err) {
    memset(c, 0, sizeof *c);
    c->slots = rp_calloc((size_t)n_visits, sizeof *c->slots);
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

void kv_cache_init_borrowed(kv_cache *c, kv_slot *slots, int n_visits) {
    memset(c, 0, sizeof *c);
    c->slots = slots;
    c->n_slots = n_visits;
    c->capacity = n_visits ? slots[0].capacity : 0;
    c->borrowed = 1;
}

void kv_cache_free(kv_cache *c, backend *be) {
    if (!c->borrowed) {
        for (int v = 0; v < c->n_slots; v++) be->kv_free(be, &c->slots[v]);
        free(c->slots);
    }
    memset(c, 0, sizeof *c);
}

int kv_cache_grow(kv_cache *c, backend *be, int capacity, rp_err *err) {
    if (c->borrowed) return rp_fail(err, "a KV cache borrowed from a pool cannot grow");
    if (capacity <= c->capacity) return 0;
    // slot by slot: in place where the backend can (the CUDA backend's pages); else moved, so that the device holds
    // one slot twice at a time, not the whole cache, a slot's old memory given back as soon as its copy is queued
    // (the copies run in order on the backend's stream, so a slot made later in that memory is written after the read)
    for (int v = 0; v < c->n_slots; v++) {
        if (c->slots[v].capacity >= capacity) continue;   // grown by an earlier call that failed further on
        if (be->kv_grow) {   // in place: nothing moves
            if (be->kv_grow(be, &c->slots[v], capacity, err)) return -1;
            continue;
        }
        kv_slot bigger;
        memset(&bigger, 0, sizeof bigger);
        if (be->kv_alloc(be, &bigger, capacity, err)) return -1;   // the slots before it grown, the cache's capacity not
        be->kv_copy(be, &bigger, &c->slots[v], c->n_past);
        be->kv_free(be, &c->slots[v]);
        c->slots[v] = bigger;
    }
    c->capacity = capacity;
    return 0;
}

int kv_pool_init(kv_pool *p, backend *be, int n_slots, int capacity, rp_err *err) {
    memset(p, 0, sizeof *p);
    p->slots = rp_calloc((size_t)(n_slots ? n_slots : 1), sizeof *p->slots);
    p->capacity = capacity;
    for (; p->n < n_slots; p->n++)
        if (be->kv_alloc(be, &p->slots[p->n], capacity, err)) {
            kv_pool_free(p, be);
            return -1;
        }
    return 0;
}

kv_slot *kv_pool_take(kv_pool *p, int n, rp_err *err) {
    if (p->used + n > p->n) {
        rp_fail(err, "KV pool exhausted: %d slots asked for, %d of %d free", n, p->n - p->used, p->n);
        return NULL;
    }
    p->used += n;
    return p->slots + p->used - n;
}

void kv_pool_free(kv_pool *p, backend *be) {
    for (int v = 0; v < p->n; v++) be->kv_free(be, &p->slots[v]);
    free(p->slots);
    memset(p, 0, sizeof *p);
}
