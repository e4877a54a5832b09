// Memory allocation that never returns NULL: on failure it names the size, says reprise is out of memory, and exits.
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n) {
    fprintf(stderr, "reprise: out of memory allocating %zu bytes; exiting\n", n);
    exit(1);
}

void *rp_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *rp_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *rp_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *rp_strdup(const char *s) {
    char *p = strdup(s);
    if (!p) out_of_memory(strlen(s) + 1);
    return p;
}

char *rp_strndup(const char *s, size_t n) {
    char *p = strndup(s, n);
    if (!p) out_of_memory(n + 1);
    return p;
}
