// Memory allocation that never returns NULL: on failure it names the size, says reprise is out of memory, and exits.
// The few allocations whose failure is an expected, recoverable error (weights, KV slots, a benchmark's request
// table) call malloc themselves and report it through rp_err.
#ifndef REPRISE_ALLOC_H
#define REPRISE_ALLOC_H

#include <stddef.h>

void *rp_malloc(size_t n);
void *rp_calloc(size_t n, size_t size);
void *rp_realloc(void *p, size_t n);   // p is kept (not freed) only when rp_realloc returns, which it always does
char *rp_strdup(const char *s);
char *rp_strndup(const char *s, size_t n);

#endif
