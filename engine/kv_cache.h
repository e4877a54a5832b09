// The KV cache of one sequence: one slot per visit of its schedule, never shared between two visits.
#ifndef REPRISE_KV_CACHE_H
#define REPRISE_KV_CACHE_H

#include "engine/backend.h"

typedef struct {
    int n_slots;
    kv_slot *slots;   // (n_slots) slot v belongs to visit v
    int capacity;     // positions each slot holds (the context length)
    int n_past;       // positions filled, the same in every slot
    int borrowed;     // the slots belong to a kv_pool, which frees them
} kv_cache;

int kv_cache_init(kv_cache *c, backend *be, int n_visits, int capacity, rp_err *err);
// A cache over slots taken from a pool (kv_pool_take); freeing the cache leaves them to the pool.
void kv_cache_init_borrowed(kv_cache *c, kv_slot *slots, int n_visits);
void kv_cache_free(kv_cache *c, backend *be);
// Makes an owned cache's slots hold a larger capacity, keeping the n_past positions it holds (a server grows a
// request's cache as it generates instead of reserving its whole context up front), one slot at a time: in place by
// the backend's kv_grow where it has one, else moved into larger slots. On failure
// the cache holds what it held at its capacity (some slots may be larger already; a later call finishes them).
int kv_cache_grow(kv_cache *c, backend *be, int capacity, rp_err *err);

// Slots allocated once and lent again and again: a sweep holds the base's and a batch of configs' slots for one
// item, then the next item reuses the same device memory (no allocation per item). Taking is a bump of `used`;
// giving back is setting it to an earlier value.
typedef struct {
    kv_slot *slots;   // (n)
    int n, used;
    int capacity;     // positions of every slot
} kv_pool;

int kv_pool_init(kv_pool *p, backend *be, int n_slots, int capacity, rp_err *err);
// The next n slots, or NULL (with an error naming the pool's size) when fewer are left.
kv_slot *kv_pool_take(kv_pool *p, int n, rp_err *err);
void kv_pool_free(kv_pool *p, backend *be);

#endif
