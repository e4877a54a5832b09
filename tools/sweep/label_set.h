// A set of config labels (by 64-bit fingerprint): what a search has measured or proposed, so nothing runs twice.
#ifndef REPRISE_SWEEP_LABEL_SET_H
#define REPRISE_SWEEP_LABEL_SET_H

#include <stdint.h>

typedef struct {
    uint64_t *slot;   // 0: empty
    long cap, n;
} label_set;

void label_set_init(label_set *s, long expected);
// Adds label; returns 1 when it was not there yet.
int label_set_add(label_set *s, const char *label);
int label_set_has(const label_set *s, const char *label);
void label_set_free(label_set *s);

#endif
