// Schedules as repeated blocks (rys:I,J,K joined by '+'): labels, features, the beam's moves and the surrogate's pool.
#include "tools/sweep/blocks.h"
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sweep/label_set.h"

int blocks_visits(const blocks *b, int n_layers) {
    int v = n_layers;
    for (int t = 0; t < b->n; t++) v += (b->j[t] - b->i[t]) * (b->k[t] - 1);
    return v;
}

int blocks_valid(const blocks *b, const block_space *sp) {
    if (b->n < 0 || b->n > sp->max_blocks || b->n > BLOCKS_MAX) return 0;
    for (int t = 0; t < b->n; t++) {
        if (b->i[t] < 0 || b->j[t] > sp->n_layers || b->i[t] >= b->j[t]) return 0;
        if (sp->skips ? b->k[t] != 0 : b->k[t] < 2 || b->k[t] > sp->max_passes) return 0;
        if (t && b->i[t] < b->j[t - 1]) return 0;
    }
    int v = blocks_visits(b, sp->n_layers);
    return v >= 1 && v <= sp->max_visits;
}

void blocks_label(const blocks *b, char *buf, size_t cap) {
    if (!b->n) {
        snprintf(buf, cap, "base");
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "rys:");
    for (int t = 0; t < b->n && n < cap; t++) {
        if (b->k[t] == 2) n += (size_t)snprintf(buf + n, cap - n, "%s%d,%d", t ? "+" : "", b->i[t], b->j[t]);
        else n += (size_t)snprintf(buf + n, cap - n, "%s%d,%d,%d", t ? "+" : "", b->i[t], b->j[t], b->k[t]);
    }
}

int blocks_from_label(const char *label, blocks *b) {
    memset(b, 0, sizeof *b);
    if (!strcmp(label, "base")) return 0;
    if (strncmp(label, "rys:", 4)) return -1;
    for (const char *p = label + 4;;) {
        int i, j, k = 2, used;
        if (b->n == BLOCKS_MAX) return -1;
        if (sscanf(p, "%d,%d%n", &i, &j, &used) != 2) return -1;
        p += used;
        if (*p == ',' && sscanf(p, ",%d%n", &k, &used) == 1) p += used;
        b->i[b->n] = i, b->j[b->n] = j, b->k[b->n] = k, b->n++;
        if (!*p) return 0;
        if (*p++ != '+') return -1;
    }
}

void blocks_features(const blocks *b, int n_layers, float *out) {
    for (int l = 0; l < n_layers; l++) out[l] = 1;
    for (int t = 0; t < b->n; t++)
        for (int l = b->i[t]; l < b->j[t]; l++) out[l] += (float)(b->k[t] - 1);
}

static void push(blocks *out, int *n, int cap, const blocks *c, const block_space *sp) {
    if (*n < cap && blocks_valid(c, sp)) out[(*n)++] = *c;
}

// b with block (i, j, k) inserted in order; n == 0 when it would not lie apart from b's blocks.
static blocks with_block(const blocks *b, int i, int j, int k) {
    blocks c = {0};
    if (b->n == BLOCKS_MAX) return c;
    int t = 0;
    while (t < b->n && b->i[t] < i) t++;
    if ((t > 0 && b->j[t - 1] > i) || (t < b->n && b->i[t] < j)) return c;
    c.n = b->n + 1;
    for (int s = 0, d = 0; d < c.n; d++) {
        if (d == t) c.i[d] = i, c.j[d] = j, c.k[d] = k;
        else c.i[d] = b->i[s], c.j[d] = b->j[s], c.k[d] = b->k[s], s++;
    }
    return c;
}

int blocks_moves(const blocks *b, const block_space *sp, const blocks *partners, int n_partners, blocks *out, int cap) {
    static const int di[6] = {-1, 0, 1, 0, -1, 1}, dj[6] = {0, 1, 0, -1, -1, 1};   // grow, shrink, shift
    int n = 0;
    for (int t = 0; t < b->n; t++) {
        for (int m = 0; m < 6; m++) {
            blocks c = *b;
            c.i[t] += di[m], c.j[t] += dj[m];
            push(out, &n, cap, &c, sp);
        }
        blocks c = *b;
        c.k[t]++;
        if (!sp->skips) push(out, &n, cap, &c, sp);   // (a skipped block has no passes to add)
    }
    for (int p = 0; p < n_partners && b->n < sp->max_blocks; p++)
        for (int t = 0; t < partners[p].n; t++) {
            blocks c = with_block(b, partners[p].i[t], partners[p].j[t], partners[p].k[t]);
            if (c.n) push(out, &n, cap, &c, sp);
        }
    return n;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int blocks_pool(const block_space *sp, int cap, uint64_t seed, blocks **out) {
    int n = 0, N = sp->n_layers;
    blocks *pool = rp_malloc(sizeof *pool * (size_t)(cap > 0 ? cap : 1));
    label_set seen;
    label_set_init(&seen, cap);
    char label[256];
    for (int k = sp->skips ? 0 : 2; k <= (sp->skips ? 0 : sp->max_passes) && sp->max_blocks >= 1; k++)
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j <= N && n < cap; j++) {
                blocks c = {.n = 1, .i = {i}, .j = {j}, .k = {k}};
                if (!blocks_valid(&c, sp)) continue;
                blocks_label(&c, label, sizeof label);
                label_set_add(&seen, label);
                pool[n++] = c;
            }
    // multi-block configs at random: 2..max_blocks blocks, each anywhere with any pass count; misses (overlaps, too
    // many visits, repeats) are redrawn, up to 50 draws per slot so that a small space ends when it is exhausted
    long tries = 50L * (cap > 0 ? cap : 1);
    for (uint64_t s = seed; sp->max_blocks >= 2 && n < cap && tries-- > 0;) {
        blocks c = {.n = 2 + (int)(splitmix(&s) % (uint64_t)(sp->max_blocks - 1))};
        for (int t = 0; t < c.n; t++) {
            c.i[t] = (int)(splitmix(&s) % (uint64_t)N);
            c.j[t] = c.i[t] + 1 + (int)(splitmix(&s) % (uint64_t)(N - c.i[t]));
            c.k[t] = sp->skips ? 0 : 2 + (int)(splitmix(&s) % (uint64_t)(sp->max_passes - 1));
        }
        for (int a = 1; a < c.n; a++)   // blocks in ascending order
            for (int b = a; b > 0 && c.i[b] < c.i[b - 1]; b--) {
                int ti = c.i[b], tj = c.j[b], tk = c.k[b];
                c.i[b] = c.i[b - 1], c.j[b] = c.j[b - 1], c.k[b] = c.k[b - 1];
                c.i[b - 1] = ti, c.j[b - 1] = tj, c.k[b - 1] = tk;
            }
        if (!blocks_valid(&c, sp)) continue;
        blocks_label(&c, label, sizeof label);
        if (label_set_add(&seen, label)) pool[n++] = c;
    }
    label_set_free(&seen);
    *out = pool;
    return n;
}
