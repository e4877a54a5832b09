// A set of config labels (by 64-bit fingerprint), open addressing with linear probing, grown at half full.
#include "tools/sweep/label_set.h"
#include "loader/alloc.h"

#include <stdlib.h>

#include "loader/fingerprint.h"

static uint64_t key_of(const char *label) {
    uint64_t h = fingerprint_str(FINGERPRINT_SEED, label);
    return h ? h : 1;   // 0 marks an empty slot
}

void label_set_init(label_set *s, long expected) {
    s->cap = 64;
    while (s->cap < 2 * expected) s->cap *= 2;
    s->slot = rp_calloc((size_t)s->cap, sizeof *s->slot);
    s->n = 0;
}

static long find(const label_set *s, uint64_t k) {
    long i = (long)(k & (uint64_t)(s->cap - 1));
    while (s->slot[i] && s->slot[i] != k) i = (i + 1) & (s->cap - 1);
    return i;
}

int label_set_add(label_set *s, const char *label) {
    uint64_t k = key_of(label);
    long i = find(s, k);
    if (s->slot[i]) return 0;
    s->slot[i] = k, s->n++;
    if (2 * s->n > s->cap) {
        label_set old = *s;
        s->cap *= 2;
        s->slot = rp_calloc((size_t)s->cap, sizeof *s->slot);
        for (long j = 0; j < old.cap; j++)
            if (old.slot[j]) s->slot[find(s, old.slot[j])] = old.slot[j];
        free(old.slot);
    }
    return 1;
}

int label_set_has(const label_set *s, const char *label) { return s->slot[find(s, key_of(label))] != 0; }

void label_set_free(label_set *s) {
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}
