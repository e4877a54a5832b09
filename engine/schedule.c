// Layer schedules: the ordered list of layers one forward pass visits.
#include "engine/schedule.h"
#include "loader/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Visits beyond this are surely a typo (a 1000-layer model run 100 times over).
#define MAX_VISITS 100000

static void push(schedule *s, int *cap, int layer) {
    if (s->n_visits == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        s->layer = rp_realloc(s->layer, sizeof *s->layer * *cap);
    }
    s->layer[s->n_visits++] = layer;
}

// Parses a non-negative decimal integer spanning exactly [p, end).
static int parse_uint(const char *p, const char *end, long *out) {
    if (p == end) return -1;
    long v = 0;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p)) return -1;
        if (v > (LONG_MAX - 9) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

// One block of a rys: schedule, "I,J" or "I,J,K", spanning [p, e): its numbers into v (K defaults to 2).
static int parse_rys_block(const char *args, const char *p, const char *e, long v[3], rp_err *err) {
    int n = 0;
    while (1) {
        const char *c = memchr(p, ',', (size_t)(e - p));
        if (!c) c = e;
        if (n == 3) return rp_fail(err, "schedule 'rys:%s': too many numbers in '%.*s' (a block is I,J or I,J,K)", args, (int)(e - p), p);
        if (parse_uint(p, c, &v[n]))
            return rp_fail(err, "schedule 'rys:%s': '%.*s' is not a non-negative integer", args, (int)(c - p), p);
        n++;
        if (c == e) break;
        p = c + 1;
    }
    if (n < 2) return rp_fail(err, "schedule 'rys:%s': expected rys:I,J or rys:I,J,K (blocks joined by '+')", args);
    if (n == 2) v[2] = 2;
    return 0;
}

// rys:I,J[,K] runs layers 0..J-1, then the block I..J-1 K-1 more times (K in all, default 2), then J..N-1; K = 0
// skips the block (layers 0..I-1, then J..N-1: a draft for self-speculative decoding). Blocks joined by '+'
// (rys:3,5+7,9,3) each repeat so, in ascending order and apart (a block starts at or after the previous one's J).
static int parse_rys(schedule *s, const char *args, int n_layers, rp_err *err) {
    int cap = 0;
    long next = 0, visits = n_layers;   // next: the first layer not yet visited
    for (const char *p = args;;) {
        const char *e = strchr(p, '+');
        if (!e) e = p + strlen(p);
        long v[3];
        if (p == e) return rp_fail(err, "schedule 'rys:%s': empty block (stray '+'?)", args);
        if (parse_rys_block(args, p, e, v, err)) return -1;
        long i = v[0], j = v[1], k = v[2];
        if (j > n_layers) return rp_fail(err, "schedule 'rys:%s': J=%ld is past the last layer (model has %d layers)", args, j, n_layers);
        if (i >= j) return rp_fail(err, "schedule 'rys:%s': I=%ld must be below J=%ld", args, i, j);
        if (k < 0) return rp_fail(err, "schedule 'rys:%s': K=%ld must be at least 0", args, k);
        if (i < next)
            return rp_fail(err, "schedule 'rys:%s': block %ld,%ld overlaps or precedes the one before it (blocks go in "
                           "ascending order, apart)", args, i, j);
        if (k - 1 > (MAX_VISITS - visits) / (j - i)) return rp_fail(err, "schedule 'rys:%s': more than %d visits", args, MAX_VISITS);
        visits += (j - i) * (k - 1);
        for (long l = next; l < (k ? j : i); l++) push(s, &cap, (int)l);
        for (long r = 1; r < k; r++)
            for (long l = i; l < j; l++) push(s, &cap, (int)l);
        next = j;
        if (!*e) break;
        p = e + 1;
    }
    for (long l = next; l < n_layers; l++) push(s, &cap, (int)l);
    return 0;
}

// The first occurrence of sep in [p, e), or NULL.
static const char *find_in(const char *p, const char *e, const char *sep) {
    size_t n = strlen(sep);
    for (; p + n <= e; p++)
        if (!memcmp(p, sep, n)) return p;
    return NULL;
}

// Comma-separated single layers and inclusive ranges A<sep>B: reprise's `0-51,45-79` (sep "-"), or ExLlamaV3's
// layer_map `0..51,45..79` (sep "..", open_ends: `..B` starts at layer 0, `A..` runs to the last layer).
static int parse_ranges(schedule *s, const char *text, const char *sep, int open_ends, int n_layers, rp_err *err) {
    int cap = 0;
    const char *p = text;
    while (1) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *mid = find_in(p, e, sep), *after = mid ? mid + strlen(sep) : NULL;
        long a, b;
        int bad;
        if (!mid) bad = parse_uint(p, e, &a), b = a;
        else {
            bad = open_ends && mid == p ? (a = 0, 0) : parse_uint(p, mid, &a);
            if (!bad) bad = open_ends && after == e && mid != p ? (b = n_layers - 1, 0) : parse_uint(after, e, &b);
        }
        if (bad) {
            if (p == e) return rp_fail(err, "schedule '%s': empty item (stray comma?)", text);
            return rp_fail(err, "schedule '%s': '%.*s' is not a layer or an inclusive range A%sB", text, (int)(e - p), p, sep);
        }
        if (a >= n_layers || b >= n_layers)
            return rp_fail(err, "schedule '%s': layer %ld in '%.*s' is out of range (model has layers 0-%d)", text,
                           a >= n_layers ? a : b, (int)(e - p), p, n_layers - 1);
        if (b < a) return rp_fail(err, "schedule '%s': range '%.*s' runs backwards", text, (int)(e - p), p);
        if (s->n_visits + (b - a + 1) > MAX_VISITS)
            return rp_fail(err, "schedule '%s': more than %d visits", text, MAX_VISITS);
        for (long l = a; l <= b; l++) push(s, &cap, (int)l);
        if (!*e) break;
        p = e + 1;
    }
    return 0;
}

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

// PEFT's layer_replication: a JSON list of [start, end) pairs, `[[0,52],[45,80]]`, each run in turn.
static int parse_replication(schedule *s, const char *text, int n_layers, rp_err *err) {
    int cap = 0;
    const char *p = skip_space(text + 1);   // past the outer '['
    if (*p == ']') return rp_fail(err, "schedule '%s': no [start, end) pairs", text);
    while (1) {
        const char *item = p;
        long v[2];
        if (*p != '[') return rp_fail(err, "schedule '%s': expected '[' at '%.20s' (layer_replication is [[start, end], ...])", text, p);
        p = skip_space(p + 1);
        for (int k = 0; k < 2; k++) {
            const char *d = p;
            while (isdigit((unsigned char)*d)) d++;
            if (parse_uint(p, d, &v[k]))
                return rp_fail(err, "schedule '%s': '%.20s' is not a non-negative integer (in a [start, end) pair)", text, p);
            p = skip_space(d);
            if (*p != (k ? ']' : ','))
                return rp_fail(err, "schedule '%s': expected '%c' at '%.20s' (a pair is [start, end])", text, k ? ']' : ',', p);
            p = skip_space(p + 1);
        }
        int len = (int)(p - item);
        if (v[1] > n_layers)
            return rp_fail(err, "schedule '%s': '%.*s' ends past the last layer (end is exclusive; model has %d layers)", text,
                           len, item, n_layers);
        if (v[0] >= v[1]) return rp_fail(err, "schedule '%s': '%.*s' is empty (start must be below end)", text, len, item);
        if (s->n_visits + (v[1] - v[0]) > MAX_VISITS) return rp_fail(err, "schedule '%s': more than %d visits", text, MAX_VISITS);
        for (long l = v[0]; l < v[1]; l++) push(s, &cap, (int)l);
        if (*p == ']') break;
        if (*p != ',') return rp_fail(err, "schedule '%s': expected ',' or ']' at '%.20s'", text, p);
        p = skip_space(p + 1);
    }
    if (*skip_space(p + 1)) return rp_fail(err, "schedule '%s': text after the closing ']'", text);
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_separator(char c) { return c && strchr(",;+:[]", c) != NULL; }   // not '-' or "..": "0 - 3" stays an error

char *schedule_tidy(const char *text) {
    size_t n = strlen(text);
    char *out = rp_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (!is_blank(text[i])) {
            *o++ = text[i];
            continue;
        }
        size_t j = i;   // a run of blanks: kept only between two characters that are not separators
        while (j < n && is_blank(text[j])) j++;
        if (o > out && j < n && !is_separator(o[-1]) && !is_separator(text[j])) *o++ = ' ';
        i = j - 1;
    }
    *o = 0;
    return out;
}

int schedule_parse(schedule *s, const char *given, int n_layers, rp_err *err) {
    s->n_visits = 0;
    s->layer = NULL;
    int rc;
    char *text = schedule_tidy(given ? given : "");
    if (!text || !*text) rc = rp_fail(err, "schedule is empty");
    else if (strcmp(text, "base") == 0) {
        schedule_base(s, n_layers);
        free(text);
        return 0;
    } else if (strncmp(text, "rys:", 4) == 0) rc = parse_rys(s, text + 4, n_layers, err);
    else if (*skip_space(text) == '[') rc = parse_replication(s, skip_space(text), n_layers, err);
    else if (strstr(text, "..")) rc = parse_ranges(s, text, "..", 1, n_layers, err);
    else rc = parse_ranges(s, text, "-", 0, n_layers, err);
    if (!rc && s->n_visits == 0) rc = rp_fail(err, "schedule '%s' has no visits", text);
    if (rc) schedule_free(s);
    free(text);
    return rc;
}

void schedule_base(schedule *s, int n_layers) {
    s->n_visits = n_layers;
    s->layer = rp_malloc(sizeof *s->layer * (n_layers ? n_layers : 1));
    for (int l = 0; l < n_layers; l++) s->layer[l] = l;
}

void schedule_free(schedule *s) {
    free(s->layer);
    s->layer = NULL;
    s->n_visits = 0;
}

int schedule_copy(schedule *dst, const schedule *src) {
    dst->n_visits = src->n_visits;
    dst->layer = rp_malloc(sizeof *dst->layer * (src->n_visits ? src->n_visits : 1));
    memcpy(dst->layer, src->layer, sizeof *dst->layer * src->n_visits);
    return 0;
}

int schedule_unique_layers(const schedule *s, int n_layers) {
    char *seen = rp_calloc((size_t)n_layers, 1);
    int n = 0;
    for (int v = 0; v < s->n_visits; v++)
        if (!seen[s->layer[v]]++) n++;
    free(seen);
    return n;
}

char *schedule_text(const schedule *s) {
    int n = schedule_format(s, NULL, 0);
    char *t = rp_malloc((size_t)n + 1);
    schedule_format(s, t, n + 1);
    return t;
}

int schedule_format(const schedule *s, char *buf, int cap) {
    int n = 0;
    for (int v = 0; v < s->n_visits;) {
        int w = v;
        while (w + 1 < s->n_visits && s->layer[w + 1] == s->layer[w] + 1) w++;
        int room = cap - n > 0 ? cap - n : 0;
        if (w == v) n += snprintf(room ? buf + n : NULL, (size_t)room, "%s%d", v ? "," : "", s->layer[v]);
        else n += snprintf(room ? buf + n : NULL, (size_t)room, "%s%d-%d", v ? "," : "", s->layer[v], s->layer[w]);
        v = w + 1;
    }
    return n;
}
