// The BPE model of a tokenizer.json: vocabulary, ranked merges, and the merge loop that turns one word into ids.
//
// Merge loop (as HF tokenizers' Word::merge_all): the word starts as one symbol per character (or per byte token
// with byte_fallback, or <unk>); a min-heap holds every adjacent pair that has a merge, keyed by (rank, position).
// Pop the best; skip it if either symbol has changed since it was pushed; else merge the two symbols and push the
// new pairs with its neighbours. O(n log n) in the word's length, so a long unsplit text stays fast.
#include "loader/bpe.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/utf8.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

void str_map_init(str_map *m, size_t expected) {
    m->cap = 16;
    while (m->cap < expected * 2) m->cap *= 2;
    m->n = 0;
    m->slots = rp_calloc(m->cap, sizeof *m->slots);
}

void str_map_free(str_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void str_map_grow(str_map *m) {
    str_map bigger;
    bigger.cap = m->cap * 2;
    bigger.n = 0;
    bigger.slots = rp_calloc(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) {
            size_t j = hash_bytes(m->slots[i].key, m->slots[i].len) & (bigger.cap - 1);
            while (bigger.slots[j].key) j = (j + 1) & (bigger.cap - 1);
            bigger.slots[j] = m->slots[i];
            bigger.n++;
        }
    free(m->slots);
    *m = bigger;
}

int str_map_put(str_map *m, const char *key, size_t len, int id) {
    if ((m->n + 1) * 2 > m->cap) str_map_grow(m);
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1))
        if (m->slots[j].len == len && memcmp(m->slots[j].key, key, len) == 0) return -1;
    m->slots[j].key = rp_malloc(len + 1);
    memcpy(m->slots[j].key, key, len);
    m->slots[j].key[len] = 0;
    m->slots[j].len = (uint32_t)len;
    m->slots[j].id = id;
    m->n++;
    return 0;
}

int str_map_get(const str_map *m, const char *key, size_t len) {
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1))
        if (m->slots[j].len == len && memcmp(m->slots[j].key, key, len) == 0) return m->slots[j].id;
    return -1;
}

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_hash(uint64_t k) { return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 17); }

static const struct merge_slot *merge_get(const bpe_model *b, int left, int right) {
    if (!b->merge_cap) return NULL;
    uint64_t k = pair_key(left, right);
    for (size_t j = pair_hash(k) & (b->merge_cap - 1); b->merges[j].id >= 0; j = (j + 1) & (b->merge_cap - 1))
        if (b->merges[j].key == k) return &b->merges[j];
    return NULL;
}

static const char *opt_string(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int load_merges(bpe_model *b, const cJSON *merges, rp_err *err) {
    int n = cJSON_GetArraySize(merges);
    b->merge_cap = 16;
    while (b->merge_cap < (size_t)n * 2 + 2) b->merge_cap *= 2;
    b->merges = rp_malloc(sizeof *b->merges * b->merge_cap);
    for (size_t i = 0; i < b->merge_cap; i++) b->merges[i].id = -1;
    int rank = 0;
    char buf[1024];
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(m)) {   // legacy "left right"
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) return rp_fail(err, "tokenizer.json: merge %d '%s' is not two tokens", rank, m->valuestring);
            l = m->valuestring, ll = (size_t)(sp - l), r = sp + 1, rl = strlen(r);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            l = m->child->valuestring, ll = strlen(l), r = m->child->next->valuestring, rl = strlen(r);
        } else return rp_fail(err, "tokenizer.json: merge %d is neither \"a b\" nor [\"a\", \"b\"]", rank);
        if (ll + rl >= sizeof buf) return rp_fail(err, "tokenizer.json: merge %d is too long", rank);
        int li = str_map_get(&b->vocab, l, ll), ri = str_map_get(&b->vocab, r, rl);
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int id = str_map_get(&b->vocab, buf, ll + rl);
        if (li < 0 || ri < 0 || id < 0)
            return rp_fail(err, "tokenizer.json: merge %d ('%.*s' + '%.*s') uses a token missing from the vocabulary", rank,
                           (int)ll, l, (int)rl, r);
        uint64_t k = pair_key(li, ri);
        size_t j = pair_hash(k) & (b->merge_cap - 1);
        while (b->merges[j].id >= 0 && b->merges[j].key != k) j = (j + 1) & (b->merge_cap - 1);
        if (b->merges[j].id >= 0) continue;   // a repeated merge keeps its first (best) rank, as HF does
        b->merges[j] = (struct merge_slot){.key = k, .rank = rank, .id = id};
    }
    return 0;
}

int bpe_load(bpe_model *b, const void *model_json, rp_err *err) {
    const cJSON *m = model_json;
    memset(b, 0, sizeof *b);
    b->unk_id = -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)
        return rp_fail(err, "tokenizer.json: model type '%s' is not supported (supported: BPE)",
                       cJSON_IsString(type) ? type->valuestring : "?");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab)) return rp_fail(err, "tokenizer.json: model.vocab is not an object");
    if (merges && !cJSON_IsArray(merges)) return rp_fail(err, "tokenizer.json: model.merges is not an array");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0) return rp_fail(err, "tokenizer.json: BPE dropout is not supported");
    str_map_init(&b->vocab, (size_t)cJSON_GetArraySize(vocab));
    int max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216 || (int)e->valuedouble != e->valuedouble)
            return rp_fail(err, "tokenizer.json: vocab entry '%s' has no valid id", e->string);
        if (str_map_put(&b->vocab, e->string, strlen(e->string), e->valueint))
            return rp_fail(err, "tokenizer.json: vocab token '%s' appears twice", e->string);
        if (e->valueint > max_id) max_id = e->valueint;
    }
    b->n_vocab = max_id + 1;
    b->id_to_token = rp_calloc((size_t)b->n_vocab + 1, sizeof *b->id_to_token);
    b->token_len = rp_calloc((size_t)b->n_vocab + 1, sizeof *b->token_len);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (b->id_to_token[e->valueint]) return rp_fail(err, "tokenizer.json: vocab id %d is given twice", e->valueint);
        b->id_to_token[e->valueint] = rp_strdup(e->string);
        b->token_len[e->valueint] = (uint32_t)strlen(e->string);
    }
    const char *unk = opt_string(m, "unk_token");
    if (unk && (b->unk_id = str_map_get(&b->vocab, unk, strlen(unk))) < 0)
        return rp_fail(err, "tokenizer.json: unk_token '%s' is not in the vocabulary", unk);
    b->byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "byte_fallback"));
    b->fuse_unk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "fuse_unk"));
    b->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "ignore_merges"));
    const char *cp = opt_string(m, "continuing_subword_prefix"), *es = opt_string(m, "end_of_word_suffix");
    b->cont_prefix = cp ? rp_strdup(cp) : NULL;
    b->end_suffix = es ? rp_strdup(es) : NULL;
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        b->byte_ids[i] = str_map_get(&b->vocab, name, 6);
    }
    return merges ? load_merges(b, merges, err) : 0;
}

void bpe_free(bpe_model *b) {
    str_map_free(&b->vocab);
    for (int i = 0; i < b->n_vocab; i++) free(b->id_to_token[i]);
    free(b->id_to_token);
    free(b->token_len);
    free(b->merges);
    free(b->cont_prefix);
    free(b->end_suffix);
    memset(b, 0, sizeof *b);
}

typedef struct { int id, prev, next, alive; } symbol;
typedef struct { int rank, pos, id; } candidate;

static int cand_less(const candidate *a, const candidate *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(candidate *h, int *n, candidate c) {
    int i = (*n)++;
    h[i] = c;
    while (i > 0 && cand_less(&h[i], &h[(i - 1) / 2])) {
        candidate t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static candidate heap_pop(candidate *h, int *n) {
    candidate top = h[0];
    h[0] = h[--*n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && cand_less(&h[l], &h[m])) m = l;
        if (r < *n && cand_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        candidate t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

static void push_id(int **ids, int *n, int *cap, int id) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *ids = rp_realloc(*ids, sizeof **ids * (size_t)*cap);
    }
    (*ids)[(*n)++] = id;
}

// Id of one character of the word, with the continuing-subword prefix / end-of-word suffix where configured.
static int char_id(const bpe_model *b, const char *c, int len, int first, int last) {
    char buf[64];
    size_t n = 0, pl = b->cont_prefix && !first ? strlen(b->cont_prefix) : 0, sl = b->end_suffix && last ? strlen(b->end_suffix) : 0;
    if (pl + sl + (size_t)len > sizeof buf) return -1;
    if (pl) memcpy(buf, b->cont_prefix, pl), n += pl;
    memcpy(buf + n, c, (size_t)len), n += (size_t)len;
    if (sl) memcpy(buf + n, b->end_suffix, sl), n += sl;
    return str_map_get(&b->vocab, buf, n);
}

static void add_symbol(symbol *sym, int *ns, int id) {
    sym[*ns] = (symbol){.id = id, .prev = *ns - 1, .next = *ns + 1, .alive = 1};
    (*ns)++;
}

static int has_byte_tokens(const bpe_model *b, const unsigned char *c, int len) {
    for (int k = 0; k < len; k++)
        if (b->byte_ids[c[k]] < 0) return 0;
    return 1;
}

void bpe_encode_word(const bpe_model *b, const char *word, size_t len, int **ids, int *n, int *cap) {
    if (len == 0) return;
    if (b->ignore_merges) {
        int whole = str_map_get(&b->vocab, word, len);
        if (whole >= 0) {
            push_id(ids, n, cap, whole);
            return;
        }
    }
    symbol *sym = rp_malloc(sizeof *sym * (len + 1));
    int ns = 0;
    const unsigned char *p = (const unsigned char *)word;
    for (size_t i = 0; i < len;) {
        int cl = utf8_seq_len(p + i, len - i);
        if (!cl) cl = 1;   // callers pass valid UTF-8; a stray byte is treated as its own character
        int id = char_id(b, word + i, cl, i == 0, i + (size_t)cl == len);
        if (id >= 0) add_symbol(sym, &ns, id);
        else if (b->byte_fallback && has_byte_tokens(b, p + i, cl)) {
            for (int k = 0; k < cl; k++) add_symbol(sym, &ns, b->byte_ids[p[i + k]]);
        } else if (b->unk_id >= 0) {
            if (!(b->fuse_unk && ns > 0 && sym[ns - 1].id == b->unk_id)) add_symbol(sym, &ns, b->unk_id);
        }
        i += (size_t)cl;
    }
    if (ns) sym[ns - 1].next = -1;

    candidate *heap = rp_malloc(sizeof *heap * (size_t)(ns + 1) * 3);   // each merge pushes at most 2
    int nh = 0;
    for (int i = 0; i + 1 < ns; i++) {
        const struct merge_slot *m = merge_get(b, sym[i].id, sym[i + 1].id);
        if (m) heap_push(heap, &nh, (candidate){m->rank, i, m->id});
    }
    while (nh) {
        candidate c = heap_pop(heap, &nh);
        symbol *s = &sym[c.pos];
        if (!s->alive || s->next < 0) continue;
        const struct merge_slot *m = merge_get(b, s->id, sym[s->next].id);
        if (!m || m->rank != c.rank || m->id != c.id) continue;   // stale: a neighbour changed since the push
        symbol *r = &sym[s->next];
        s->id = c.id;
        r->alive = 0;
        s->next = r->next;
        if (r->next >= 0) sym[r->next].prev = c.pos;
        if (s->prev >= 0 && (m = merge_get(b, sym[s->prev].id, s->id))) heap_push(heap, &nh, (candidate){m->rank, s->prev, m->id});
        if (s->next >= 0 && (m = merge_get(b, s->id, sym[s->next].id))) heap_push(heap, &nh, (candidate){m->rank, c.pos, m->id});
    }
    for (int i = 0; i < ns && i >= 0; i = sym[i].next) push_id(ids, n, cap, sym[i].id);
    free(heap);
    free(sym);
}
