// The configurations a sweep evaluates: a grid of RYS blocks, explicit schedules, or a file of them; base first.
#include "tools/sweep/space.h"
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"

int sweep_space_add(config_list *l, const char *label, const char *text, int n_layers, rp_err *err) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->c[i].label, label)) return 0;
    sweep_config c = {.label = rp_strdup(label), .i = -1, .j = -1, .k = -1};
    if (schedule_parse(&c.sched, text, n_layers, err)) {
        free(c.label);
        return -1;
    }
    int i, j, k, n;
    if (sscanf(text, "rys:%d,%d,%d%n", &i, &j, &k, &n) == 3 && !text[n]) c.i = i, c.j = j, c.k = k;
    else if (sscanf(text, "rys:%d,%d%n", &i, &j, &n) == 2 && !text[n]) c.i = i, c.j = j, c.k = 2;
    l->c = rp_realloc(l->c, sizeof *l->c * (size_t)(l->n + 1));
    l->c[l->n++] = c;
    return 0;
}

static int parse_range(const char *flag, const char *s, int lo, int hi, int *a, int *b, rp_err *err) {
    int n;
    if (!s) return *a = lo, *b = hi, 0;
    if (sscanf(s, "%d:%d%n", a, b, &n) != 2 || s[n] || *a < lo || *b > hi || *a > *b)
        return rp_fail(err, "%s %s: expected A:B with %d <= A <= B <= %d", flag, s, lo, hi);
    return 0;
}

static int size_allowed(const char *list, int size) {
    if (!list) return 1;
    for (const char *p = list; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (v == size) return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

int sweep_space_build(config_list *l, int n_layers, const space_opts *o, rp_err *err) {
    memset(l, 0, sizeof *l);
    if (sweep_space_add(l, "base", "base", n_layers, err)) return -1;
    int explicit = o->configs || o->configs_file;
    int grid = o->i_range || o->j_range || o->block_sizes || o->stride > 1 || !explicit;
    int rc = 0, ia, ib, ja, jb;
    if (o->block_sizes)
        for (const char *p = o->block_sizes; *p && !rc; p++)
            if (!((*p >= '0' && *p <= '9') || *p == ','))
                rc = rp_fail(err, "--block-sizes %s: expected a list of sizes like 1,2,4", o->block_sizes);
    if (!rc && grid && !(rc = parse_range("--i-range", o->i_range, 0, n_layers - 1, &ia, &ib, err)) &&
        !(rc = parse_range("--j-range", o->j_range, 1, n_layers, &ja, &jb, err))) {
        int stride = o->stride > 0 ? o->stride : 1, k = o->repeat >= 0 ? o->repeat : 2;
        for (int i = ia; i <= ib && !rc; i += stride)
            for (int j = ja; j <= jb && !rc; j += stride) {
                if (j <= i || !size_allowed(o->block_sizes, j - i) || (k == 0 && j - i == n_layers)) continue;   // (not every layer skipped)
                char label[64];
                if (k == 2) snprintf(label, sizeof label, "rys:%d,%d", i, j);
                else snprintf(label, sizeof label, "rys:%d,%d,%d", i, j, k);
                rc = sweep_space_add(l, label, label, n_layers, err);
            }
    }
    char *copy = o->configs ? rp_strdup(o->configs) : NULL;
    for (char *save, *t = copy ? strtok_r(copy, ";", &save) : NULL; t && !rc; t = strtok_r(NULL, ";", &save)) {
        char *label = schedule_tidy(t);   // "base; rys:1,3" labels its second config "rys:1,3"
        if (*label && (rc = sweep_space_add(l, label, label, n_layers, err))) rp_wrap(err, "--configs");
        free(label);
    }
    free(copy);
    if (!rc && o->configs_file) {
        FILE *f = fopen(o->configs_file, "r");
        if (!f) rc = rp_fail(err, "--configs-file %s: cannot open", o->configs_file);
        char *line = NULL;
        size_t cap = 0;
        for (int lineno = 1; f && !rc && getline(&line, &cap, f) > 0; lineno++) {
            char *h = strchr(line, '#');
            if (h) *h = 0;
            char *s = line, *e = line + strlen(line);
            while (*s == ' ' || *s == '\t') s++;
            while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
            if (*s && (rc = sweep_space_add(l, s, s, n_layers, err))) rp_wrap(err, "%s line %d", o->configs_file, lineno);
        }
        free(line);
        if (f) fclose(f);
    }
    if (!rc && o->shard_n > 1) {   // keep base and every config whose index is shard_k mod shard_n
        int w = 1;
        for (int i = 1; i < l->n; i++) {
            if ((i - 1) % o->shard_n == o->shard_k) l->c[w++] = l->c[i];
            else free(l->c[i].label), schedule_free(&l->c[i].sched);
        }
        l->n = w;
    }
    if (rc) sweep_space_free(l);
    return rc;
}

void sweep_space_free(config_list *l) {
    for (int i = 0; i < l->n; i++) free(l->c[i].label), schedule_free(&l->c[i].sched);
    free(l->c);
    memset(l, 0, sizeof *l);
}
