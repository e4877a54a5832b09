// The KV cache of one sequence: one slot per visit of its schedule, never shared between two visits.
#ifndef REPRISE_KV_CACHE_H
#define REPRISE_KV_CACHE_H

#include "engine/backend.h"

typedef struct {
    int n_slots;
    kv_slot *slots;   // (n_slots) slot v belongs to visit v
    int capacity;     // positions each slot holds (the context length)
    int n_past;       // positions filled, the same in every slot
} kv_cache;

int kv_cache_init(kv_cache *c, backend *be, int n_visits, int capacity, rp_err *err);
void kv_cache_free(kv_cache *c, backend *be);

#endif
