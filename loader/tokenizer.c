// HuggingFace tokenizer.json: text to token ids and back, for byte-level and SentencePiece-style BPE tokenizers.
//
// Encoding follows the tokenizers pipeline: added tokens are matched in the raw text first (leftmost-longest, over
// a trie); each stretch between them is normalized, pre-tokenized into pieces, and each piece BPE-encoded; the
// post-processor's template adds BOS and the like. Decoding maps ids to token strings and runs the decoder chain.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "loader/tokenizer.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "loader/bpe.h"
#include "loader/json_file.h"
#include "loader/utf8.h"

// ---- growable byte strings and lists of pieces ----

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void buf_add(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = rp_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

// Pieces of text: byte ranges in one arena. at_start marks a piece that begins the whole input text.
typedef struct {
    buf text;
    size_t *off, *len;
    char *at_start;
    int n, cap;
} pieces;

static void pieces_add(pieces *ps, const char *s, size_t n, int at_start) {
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 16;
        ps->off = rp_realloc(ps->off, sizeof *ps->off * ps->cap);
        ps->len = rp_realloc(ps->len, sizeof *ps->len * ps->cap);
        ps->at_start = rp_realloc(ps->at_start, (size_t)ps->cap);
    }
    ps->off[ps->n] = ps->text.n;
    ps->len[ps->n] = n;
    ps->at_start[ps->n] = (char)at_start;
    ps->n++;
    buf_add(&ps->text, s, n);
}

static void pieces_free(pieces *ps) {
    free(ps->text.p);
    free(ps->off);
    free(ps->len);
    free(ps->at_start);
    memset(ps, 0, sizeof *ps);
}

// ---- the components ----

typedef enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;

typedef struct {   // a pattern given as {"String": s} (literal) or {"Regex": r}
    char *literal;
    size_t literal_len;
    pcre2_code *re;
} pattern;

typedef struct {
    enum { N_NFC, N_PREPEND, N_REPLACE } kind;
    char *text;   // Prepend's string, Replace's content
    pattern pat;
} norm_step;

typedef struct {
    enum { P_SPLIT, P_BYTELEVEL, P_METASPACE, P_DIGITS } kind;
    pattern pat;
    split_behavior behavior;
    int invert;
    int add_prefix_space, use_regex;   // ByteLevel
    char replacement[8];               // Metaspace
    prepend_scheme scheme;
    int split;
    int individual_digits;             // Digits
} pretok_step;

typedef struct {
    enum { D_BYTELEVEL, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_METASPACE } kind;
    pattern pat;
    char *content;          // Replace's content
    uint32_t strip_char;    // Strip
    int start, stop;
    char replacement[8];    // Metaspace
    prepend_scheme scheme;
} decode_step;

typedef struct {
    char *content;
    size_t len;
    int id, special, lstrip, rstrip, single_word;
} added_token;

// The added tokens' trie, one node per byte of their text: 12 bytes a node, children as a sibling list (a node
// with 256 child slots would be 1 KiB per byte of an untrusted tokenizer.json's added tokens).
typedef struct trie_node {
    int token;                  // index into added, -1 if none ends here
    int first_child;            // node index, 0 = none (node 0 is the root, nobody's child)
    int next_sibling;           // the parent's next child, 0 = none
    unsigned char byte;         // the byte on the edge from the parent
} trie_node;

// Added tokens' text in all, at most: real tokenizers have well under 1 MB of it.
#define ADDED_TOKENS_MAX_BYTES ((size_t)64 << 20)

struct tokenizer {
    bpe_model bpe;
    norm_step *norm;
    int n_norm;
    pretok_step *pretok;
    int n_pretok;
    decode_step *dec;
    int n_dec, has_decoder;
    added_token *added;
    int n_added;
    trie_node *trie;
    int n_trie, cap_trie;
    int *tmpl;          // post-processor template: ids, with -1 standing for the text's ids
    int n_tmpl, has_tmpl;
    int vocab_size;
    pcre2_code *gpt2_re;
};

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static pcre2_code *compile_re(const char *re, rp_err *err) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        rp_fail(err, "tokenizer.json: regex '%s' does not compile at offset %zu: %s", re, (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);   // best effort: without JIT matching is slower, not different
    return c;
}

static int parse_pattern(const cJSON *o, pattern *p, const char *where, rp_err *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "String"), *r = cJSON_GetObjectItemCaseSensitive(o, "Regex");
    if (cJSON_IsString(s)) {
        p->literal = rp_strdup(s->valuestring);
        p->literal_len = strlen(s->valuestring);
        if (!p->literal_len) return rp_fail(err, "tokenizer.json: %s has an empty pattern", where);
        return 0;
    }
    if (cJSON_IsString(r)) return (p->re = compile_re(r->valuestring, err)) ? 0 : -1;
    return rp_fail(err, "tokenizer.json: %s needs a pattern {\"String\"} or {\"Regex\"}", where);
}

static void free_pattern(pattern *p) {
    free(p->literal);
    if (p->re) pcre2_code_free(p->re);
}

// Calls fn(start, end) for every non-overlapping match of the pattern in s[0..n).
typedef void (*match_fn)(void *ctx, size_t a, size_t b);
static void find_all(const pattern *p, const char *s, size_t n, match_fn fn, void *ctx) {
    if (p->literal) {
        for (size_t i = 0; i + p->literal_len <= n;) {
            if (memcmp(s + i, p->literal, p->literal_len) == 0) {
                fn(ctx, i, i + p->literal_len);
                i += p->literal_len;
            } else i++;
        }
        return;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    size_t at = 0;
    while (at <= n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, at, at ? PCRE2_NO_UTF_CHECK : 0, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) {   // empty match: step over one character
            if (ov[0] >= n) break;
            int l = utf8_seq_len((const unsigned char *)s + ov[0], n - ov[0]);
            at = ov[0] + (size_t)(l ? l : 1);
            continue;
        }
        fn(ctx, ov[0], ov[1]);
        at = ov[1];
    }
    pcre2_match_data_free(md);
}

// ---- loading ----

static int parse_scheme(const cJSON *o, prepend_scheme *s) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    *s = PREPEND_ALWAYS;
    if (cJSON_IsString(ps)) {
        if (!strcmp(ps->valuestring, "first")) *s = PREPEND_FIRST;
        else if (!strcmp(ps->valuestring, "never")) *s = PREPEND_NEVER;
        else if (strcmp(ps->valuestring, "always")) return -1;
    } else if (cJSON_IsFalse(aps)) *s = PREPEND_NEVER;
    return 0;
}

static int replacement_char(const cJSON *o, char *out) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "replacement");
    const char *s = cJSON_IsString(r) ? r->valuestring : "\xe2\x96\x81";
    int l = utf8_seq_len((const unsigned char *)s, strlen(s));
    if (!l || s[l]) return -1;
    memcpy(out, s, (size_t)l);
    out[l] = 0;
    return 0;
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "(no type)";
}

// A component is null (absent), a {"type": "Sequence"} whose list under `list_key` holds components (flattened
// here, in order), or one component that load_one reads.
typedef int (*component_loader)(tokenizer *t, const cJSON *o, rp_err *err);
static int load_component(tokenizer *t, const cJSON *o, const char *list_key, component_loader load_one, rp_err *err) {
    if (!o || cJSON_IsNull(o)) return 0;
    if (strcmp(type_of(o), "Sequence") != 0) return load_one(t, o, err);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, list_key);
    for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
        if (load_component(t, e, list_key, load_one, err)) return -1;
    return 0;
}

static int load_normalizer_one(tokenizer *t, const cJSON *o, rp_err *err) {
    const char *type = type_of(o);
    norm_step s = {0};
    if (!strcmp(type, "NFC")) s.kind = N_NFC;
    else if (!strcmp(type, "Prepend")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prepend");
        if (!cJSON_IsString(p)) return rp_fail(err, "tokenizer.json: Prepend normalizer without \"prepend\"");
        s.kind = N_PREPEND;
        s.text = rp_strdup(p->valuestring);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(c)) return rp_fail(err, "tokenizer.json: Replace normalizer without \"content\"");
        if (parse_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s.pat, "Replace normalizer", err)) return -1;
        s.kind = N_REPLACE;
        s.text = rp_strdup(c->valuestring);
    } else return rp_fail(err, "tokenizer.json: normalizer '%s' is not supported (supported: NFC, Prepend, Replace, Sequence)", type);
    t->norm = rp_realloc(t->norm, sizeof *t->norm * (size_t)(t->n_norm + 1));
    t->norm[t->n_norm++] = s;
    return 0;
}

static int load_pretok_one(tokenizer *t, const cJSON *o, rp_err *err) {
    const char *type = type_of(o);
    pretok_step s = {0};
    if (!strcmp(type, "Split")) {
        s.kind = P_SPLIT;
        if (parse_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s.pat, "Split pre-tokenizer", err)) return -1;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "behavior");
        const char *bs = cJSON_IsString(b) ? b->valuestring : "?";
        if (!strcmp(bs, "Isolated")) s.behavior = SPLIT_ISOLATED;
        else if (!strcmp(bs, "Removed")) s.behavior = SPLIT_REMOVED;
        else if (!strcmp(bs, "MergedWithPrevious")) s.behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(bs, "MergedWithNext")) s.behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(bs, "Contiguous")) s.behavior = SPLIT_CONTIGUOUS;
        else return rp_fail(err, "tokenizer.json: Split behavior '%s' is not supported", bs);
        s.invert = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "invert"));
    } else if (!strcmp(type, "ByteLevel")) {
        s.kind = P_BYTELEVEL;
        s.add_prefix_space = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space"));
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
        s.use_regex = !cJSON_IsFalse(ur);
    } else if (!strcmp(type, "Metaspace")) {
        s.kind = P_METASPACE;
        if (replacement_char(o, s.replacement) || parse_scheme(o, &s.scheme))
            return rp_fail(err, "tokenizer.json: Metaspace pre-tokenizer has a bad replacement or prepend_scheme");
        s.split = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "split"));
    } else if (!strcmp(type, "Digits")) {
        s.kind = P_DIGITS;
        s.individual_digits = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "individual_digits"));
    } else return rp_fail(err, "tokenizer.json: pre-tokenizer '%s' is not supported (supported: Split, ByteLevel, Metaspace, Digits, Sequence)", type);
    t->pretok = rp_realloc(t->pretok, sizeof *t->pretok * (size_t)(t->n_pretok + 1));
    t->pretok[t->n_pretok++] = s;
    return 0;
}

static int load_decoder_one(tokenizer *t, const cJSON *o, rp_err *err) {
    const char *type = type_of(o);
    decode_step s = {0};
    if (!strcmp(type, "ByteLevel")) s.kind = D_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) s.kind = D_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) s.kind = D_FUSE;
    else if (!strcmp(type, "Replace")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(c)) return rp_fail(err, "tokenizer.json: Replace decoder without \"content\"");
        if (parse_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s.pat, "Replace decoder", err)) return -1;
        s.kind = D_REPLACE;
        s.content = rp_strdup(c->valuestring);
    } else if (!strcmp(type, "Strip")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content"), *a = cJSON_GetObjectItemCaseSensitive(o, "start"),
                    *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
        int l = cJSON_IsString(c) ? utf8_seq_len((const unsigned char *)c->valuestring, strlen(c->valuestring)) : 0;
        if (!l || c->valuestring[l] || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valueint < 0 || b->valueint < 0)
            return rp_fail(err, "tokenizer.json: Strip decoder needs one character of content and start/stop counts");
        s.kind = D_STRIP;
        s.strip_char = utf8_decode((const unsigned char *)c->valuestring, l);
        s.start = a->valueint;
        s.stop = b->valueint;
    } else if (!strcmp(type, "Metaspace")) {
        s.kind = D_METASPACE;
        if (replacement_char(o, s.replacement) || parse_scheme(o, &s.scheme))
            return rp_fail(err, "tokenizer.json: Metaspace decoder has a bad replacement or prepend_scheme");
    } else return rp_fail(err, "tokenizer.json: decoder '%s' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", type);
    t->dec = rp_realloc(t->dec, sizeof *t->dec * (size_t)(t->n_dec + 1));
    t->dec[t->n_dec++] = s;
    return 0;
}

// TemplateProcessing "single": SpecialToken items become their ids, the Sequence item (the text) becomes -1.
static int load_template(tokenizer *t, const cJSON *o, rp_err *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    if (!cJSON_IsArray(single)) return rp_fail(err, "tokenizer.json: TemplateProcessing without \"single\"");
    t->has_tmpl = 1;
    for (const cJSON *e = single->child; e; e = e->next) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            t->tmpl = rp_realloc(t->tmpl, sizeof(int) * (size_t)(t->n_tmpl + 1));
            t->tmpl[t->n_tmpl++] = -1;
            continue;
        }
        const cJSON *name = sp ? cJSON_GetObjectItemCaseSensitive(sp, "id") : NULL;
        const cJSON *def = cJSON_IsString(name) ? cJSON_GetObjectItemCaseSensitive(specials, name->valuestring) : NULL;
        const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL;
        if (!cJSON_IsArray(ids)) return rp_fail(err, "tokenizer.json: TemplateProcessing names a special token it does not define");
        for (const cJSON *i = ids->child; i; i = i->next) {
            if (!cJSON_IsNumber(i) || i->valueint < 0) return rp_fail(err, "tokenizer.json: TemplateProcessing has a bad id");
            t->tmpl = rp_realloc(t->tmpl, sizeof(int) * (size_t)(t->n_tmpl + 1));
            t->tmpl[t->n_tmpl++] = i->valueint;
        }
    }
    return 0;
}

static int load_post_one(tokenizer *t, const cJSON *o, rp_err *err) {
    const char *type = type_of(o);
    if (!strcmp(type, "ByteLevel")) return 0;   // only adjusts offsets, which reprise does not report
    if (!strcmp(type, "TemplateProcessing")) return load_template(t, o, err);
    return rp_fail(err, "tokenizer.json: post-processor '%s' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)", type);
}

// The child of node along byte c, or 0.
static int trie_child(const tokenizer *t, int node, unsigned char c) {
    for (int k = t->trie[node].first_child; k; k = t->trie[k].next_sibling)
        if (t->trie[k].byte == c) return k;
    return 0;
}

static void trie_insert(tokenizer *t, const char *s, size_t n, int token) {
    int node = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int next = trie_child(t, node, c);
        if (!next) {
            if (t->n_trie == t->cap_trie) {   // doubling: n inserts cost O(n) copies, not O(n^2)
                t->cap_trie *= 2;
                t->trie = rp_realloc(t->trie, sizeof *t->trie * (size_t)t->cap_trie);
            }
            next = t->n_trie++;
            t->trie[next] = (trie_node){.token = -1, .next_sibling = t->trie[node].first_child, .byte = c};
            t->trie[node].first_child = next;
        }
        node = next;
    }
    if (t->trie[node].token < 0) t->trie[node].token = token;
}

static int load_added(tokenizer *t, const cJSON *list, rp_err *err) {
    t->cap_trie = 64;
    t->trie = rp_calloc((size_t)t->cap_trie, sizeof *t->trie);
    t->trie[0].token = -1;
    t->n_trie = 1;
    size_t text_bytes = 0;
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list)) return rp_fail(err, "tokenizer.json: added_tokens is not an array");
    t->added = rp_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *t->added);
    for (const cJSON *e = list->child; e; e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valuedouble > 16777216 || !cJSON_IsString(c) || !c->valuestring[0])
            return rp_fail(err, "tokenizer.json: added token %d has no valid id or content", t->n_added);
        size_t len = strlen(c->valuestring);
        if ((text_bytes += len) > ADDED_TOKENS_MAX_BYTES)
            return rp_fail(err, "tokenizer.json: added tokens hold more than %zu MiB of text (real ones: under 1 MB)",
                           ADDED_TOKENS_MAX_BYTES >> 20);
        added_token *a = &t->added[t->n_added];
        a->content = rp_strdup(c->valuestring);
        a->len = len;
        a->id = id->valueint;
        a->special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        a->lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip"));
        a->rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip"));
        a->single_word = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "single_word"));
        trie_insert(t, a->content, a->len, t->n_added);
        if (a->id >= t->vocab_size) t->vocab_size = a->id + 1;
        t->n_added++;
    }
    return 0;
}

tokenizer *tokenizer_load(const char *path, rp_err *err) {
    size_t len;
    char *text = read_file_all(path, READ_LIMIT_TOKENIZER, "tokenizer.json", &len, err);
    if (!text) return NULL;
    tokenizer *t = tokenizer_load_text(text, len, path, err);
    free(text);
    return t;
}

tokenizer *tokenizer_load_text(const char *json, size_t len, const char *path, rp_err *err) {
    cJSON *root = json_parse_text(json, len, path, err);
    if (!root) return NULL;
    tokenizer *t = rp_calloc(1, sizeof *t);
    int rc = 0;
    if (!cJSON_IsObject(root)) rc = rp_fail(err, "%s: not a JSON object", path);
    if (!rc) rc = bpe_load(&t->bpe, cJSON_GetObjectItemCaseSensitive(root, "model"), err);
    t->vocab_size = t->bpe.n_vocab;
    if (!rc) rc = load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err);
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    t->has_decoder = decoder && !cJSON_IsNull(decoder);
    if (!rc) rc = load_component(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", load_normalizer_one, err);
    if (!rc) rc = load_component(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers", load_pretok_one, err);
    if (!rc) rc = load_component(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "processors", load_post_one, err);
    if (!rc) rc = load_component(t, decoder, "decoders", load_decoder_one, err);
    if (!rc && !(t->gpt2_re = compile_re(GPT2_PATTERN, err))) rc = -1;
    for (int i = 0; !rc && i < t->n_tmpl; i++)
        if (t->tmpl[i] >= t->vocab_size) rc = rp_fail(err, "tokenizer.json: template id %d is outside the vocabulary", t->tmpl[i]);
    cJSON_Delete(root);
    if (rc) {
        if (strncmp(err->msg, path, strlen(path)) != 0) rp_wrap(err, "%s", path);
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    bpe_free(&t->bpe);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].text), free_pattern(&t->norm[i].pat);
    for (int i = 0; i < t->n_pretok; i++) free_pattern(&t->pretok[i].pat);
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].content), free_pattern(&t->dec[i].pat);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    if (t->gpt2_re) pcre2_code_free(t->gpt2_re);
    free(t->norm);
    free(t->pretok);
    free(t->dec);
    free(t->added);
    free(t->trie);
    free(t->tmpl);
    free(t);
}

int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }

int tokenizer_token_id(const tokenizer *t, const char *text) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, text)) return t->added[i].id;
    return str_map_get(&t->bpe.vocab, text, strlen(text));
}

int tokenizer_is_special(const tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id && t->added[i].special) return 1;
    return 0;
}

// ---- encoding ----

typedef struct {
    buf *out;
    const char *src;
    size_t last;
    const char *with;
    size_t with_len;
} replace_ctx;

static void on_replace(void *c, size_t a, size_t b) {
    replace_ctx *r = c;
    buf_add(r->out, r->src + r->last, a - r->last);
    buf_add(r->out, r->with, r->with_len);
    r->last = b;
}

// Replaces every match of pat in s with `with`; returns a new heap buffer.
static buf replace_all(const pattern *pat, const char *s, size_t n, const char *with) {
    buf out = {0};
    buf_add(&out, "", 0);
    replace_ctx r = {&out, s, 0, with, strlen(with)};
    find_all(pat, s, n, on_replace, &r);
    buf_add(&out, s + r.last, n - r.last);
    return out;
}

static buf normalize(const tokenizer *t, const char *s, size_t n) {
    buf cur = {0};
    buf_add(&cur, s, n);
    for (int i = 0; i < t->n_norm; i++) {
        const norm_step *st = &t->norm[i];
        buf next = {0};
        if (st->kind == N_NFC) {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)cur.p, (utf8proc_ssize_t)cur.n, &dst,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m >= 0) buf_add(&next, dst, (size_t)m);
            else buf_add(&next, cur.p, cur.n);   // input is validated UTF-8 before this, so this does not happen
            free(dst);
        } else if (st->kind == N_PREPEND) {
            if (cur.n) buf_add(&next, st->text, strlen(st->text));
            buf_add(&next, cur.p, cur.n);
        } else next = replace_all(&st->pat, cur.p, cur.n, st->text);
        free(cur.p);
        cur = next;
        if (!cur.p) buf_add(&cur, "", 0);
    }
    return cur;
}

typedef struct {
    size_t *a, *b;
    int n, cap;
} spans;

static void on_span(void *c, size_t a, size_t b) {
    spans *s = c;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->a = rp_realloc(s->a, sizeof *s->a * s->cap);
        s->b = rp_realloc(s->b, sizeof *s->b * s->cap);
    }
    s->a[s->n] = a;
    s->b[s->n] = b;
    s->n++;
}

// Splits piece s by the matches, with HF's SplitDelimiterBehavior semantics: the piece is cut into segments
// (gaps and matches, in order; `invert` swaps which are delimiters), and delimiters are kept alone, dropped, or
// glued to the segment before or after them.
static void split_piece(pieces *out, const char *s, size_t n, int at_start, const spans *m, split_behavior beh, int invert) {
    int cap = 2 * m->n + 2, k = 0;
    size_t *a = rp_malloc(sizeof *a * cap), *b = rp_malloc(sizeof *b * cap);
    char *delim = rp_malloc((size_t)cap);
    size_t prev = 0;
    for (int i = 0; i <= m->n; i++) {
        size_t ma = i < m->n ? m->a[i] : n, mb = i < m->n ? m->b[i] : n;
        if (ma > prev) a[k] = prev, b[k] = ma, delim[k++] = (char)invert;
        if (mb > ma) a[k] = ma, b[k] = mb, delim[k++] = (char)!invert;
        prev = mb;
    }
    // merge in place: `w` segments kept so far
    int w = 0;
    if (beh == SPLIT_MERGED_NEXT) {   // walk backwards, gluing a delimiter onto the segment after it
        int prev_delim = 0;
        for (int i = k - 1; i >= 0; i--) {
            if (delim[i] && !prev_delim && w) a[w - 1] = a[i];
            else a[w] = a[i], b[w] = b[i], w++;
            prev_delim = delim[i];
        }
        for (int i = 0; i < w / 2; i++) {   // back to text order
            size_t ta = a[i], tb = b[i];
            a[i] = a[w - 1 - i], b[i] = b[w - 1 - i];
            a[w - 1 - i] = ta, b[w - 1 - i] = tb;
        }
    } else {
        int prev_delim = 0;
        for (int i = 0; i < k; i++) {
            int glue = (beh == SPLIT_MERGED_PREV && delim[i] && !prev_delim && w) ||
                       (beh == SPLIT_CONTIGUOUS && w && delim[i] == prev_delim);
            if (beh == SPLIT_REMOVED && delim[i]) continue;
            if (glue) b[w - 1] = b[i];
            else a[w] = a[i], b[w] = b[i], w++;
            prev_delim = delim[i];
        }
    }
    for (int i = 0; i < w; i++) pieces_add(out, s + a[i], b[i] - a[i], at_start && a[i] == 0);
    free(a);
    free(b);
    free(delim);
}

static void pretok_split(const pattern *pat, pieces *ps, split_behavior beh, int invert) {
    pieces out = {0};
    for (int i = 0; i < ps->n; i++) {
        spans m = {0};
        const char *s = ps->text.p + ps->off[i];
        find_all(pat, s, ps->len[i], on_span, &m);
        split_piece(&out, s, ps->len[i], ps->at_start[i], &m, beh, invert);
        free(m.a);
        free(m.b);
    }
    pieces_free(ps);
    *ps = out;
}

static void pretok_bytelevel(const tokenizer *t, const pretok_step *st, pieces *ps) {
    if (st->add_prefix_space) {
        pieces out = {0};
        for (int i = 0; i < ps->n; i++) {
            const char *s = ps->text.p + ps->off[i];
            if (ps->len[i] && s[0] != ' ') {
                buf b = {0};
                buf_add(&b, " ", 1);
                buf_add(&b, s, ps->len[i]);
                pieces_add(&out, b.p, b.n, ps->at_start[i]);
                free(b.p);
            } else pieces_add(&out, s, ps->len[i], ps->at_start[i]);
        }
        pieces_free(ps);
        *ps = out;
    }
    if (st->use_regex) {
        pattern gpt2 = {.re = t->gpt2_re};
        pretok_split(&gpt2, ps, SPLIT_ISOLATED, 0);
    }
    pieces out = {0};
    buf b = {0};
    for (int i = 0; i < ps->n; i++) {
        b.n = 0;
        const unsigned char *s = (const unsigned char *)ps->text.p + ps->off[i];
        for (size_t k = 0; k < ps->len[i]; k++) {
            char enc[4];
            buf_add(&b, enc, (size_t)utf8_encode(byte_to_unicode(s[k]), enc));
        }
        pieces_add(&out, b.p ? b.p : "", b.n, ps->at_start[i]);
    }
    free(b.p);
    pieces_free(ps);
    *ps = out;
}

static void pretok_metaspace(const pretok_step *st, pieces *ps) {
    pieces out = {0};
    pattern space = {.literal = " ", .literal_len = 1}, repl = {.literal = (char *)st->replacement, .literal_len = strlen(st->replacement)};
    for (int i = 0; i < ps->n; i++) {
        buf r = replace_all(&space, ps->text.p + ps->off[i], ps->len[i], st->replacement);
        int prepend = st->scheme == PREPEND_ALWAYS || (st->scheme == PREPEND_FIRST && ps->at_start[i]);
        if (prepend && (r.n < repl.literal_len || memcmp(r.p, repl.literal, repl.literal_len) != 0)) {
            buf p = {0};
            buf_add(&p, repl.literal, repl.literal_len);
            buf_add(&p, r.p, r.n);
            free(r.p);
            r = p;
        }
        if (st->split) {
            spans m = {0};
            find_all(&repl, r.p, r.n, on_span, &m);
            split_piece(&out, r.p, r.n, ps->at_start[i], &m, SPLIT_MERGED_NEXT, 0);
            free(m.a);
            free(m.b);
        } else pieces_add(&out, r.p, r.n, ps->at_start[i]);
        free(r.p);
    }
    pieces_free(ps);
    *ps = out;
}

static void pretok_digits(const pretok_step *st, pieces *ps) {
    pieces out = {0};
    for (int i = 0; i < ps->n; i++) {
        const unsigned char *s = (const unsigned char *)ps->text.p + ps->off[i];
        spans m = {0};
        size_t n = ps->len[i];
        for (size_t k = 0; k < n;) {
            int l = utf8_seq_len(s + k, n - k);
            if (!l) l = 1;
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)utf8_decode(s + k, l));
            int digit = cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
            if (digit) {
                if (!st->individual_digits && m.n && m.b[m.n - 1] == k) m.b[m.n - 1] = k + (size_t)l;
                else on_span(&m, k, k + (size_t)l);
            }
            k += (size_t)l;
        }
        split_piece(&out, (const char *)s, n, ps->at_start[i], &m, SPLIT_ISOLATED, 0);
        free(m.a);
        free(m.b);
    }
    pieces_free(ps);
    *ps = out;
}

static void push(int **ids, int *n, int *cap, int id) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *ids = rp_realloc(*ids, sizeof **ids * (size_t)*cap);
    }
    (*ids)[(*n)++] = id;
}

// Normalizes, pre-tokenizes and BPE-encodes one stretch of text between added tokens.
static void encode_stretch(const tokenizer *t, const char *s, size_t n, int at_start, int **ids, int *nids, int *cap) {
    buf norm = normalize(t, s, n);
    pieces ps = {0};
    pieces_add(&ps, norm.p, norm.n, at_start);
    free(norm.p);
    for (int i = 0; i < t->n_pretok; i++) {
        const pretok_step *st = &t->pretok[i];
        switch (st->kind) {
        case P_SPLIT: pretok_split(&st->pat, &ps, st->behavior, st->invert); break;
        case P_BYTELEVEL: pretok_bytelevel(t, st, &ps); break;
        case P_METASPACE: pretok_metaspace(st, &ps); break;
        case P_DIGITS: pretok_digits(st, &ps); break;
        }
    }
    for (int i = 0; i < ps.n; i++) bpe_encode_word(&t->bpe, ps.text.p + ps.off[i], ps.len[i], ids, nids, cap);
    pieces_free(&ps);
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int is_word_byte(const char *s, size_t n, size_t at, int before) {
    // the character just before `at` (before) or at `at`: a letter, digit or underscore?
    if (before) {
        if (at == 0) return 0;
        size_t k = at - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
        at = k;
    } else if (at >= n) return 0;
    int l = utf8_seq_len((const unsigned char *)s + at, n - at);
    if (!l) return 0;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)utf8_decode((const unsigned char *)s + at, l));
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || c == UTF8PROC_CATEGORY_ND || s[at] == '_';
}

// The longest added token starting at s[i], honouring single_word; its span grows over whitespace for lstrip/rstrip.
static int match_added(const tokenizer *t, const char *s, size_t n, size_t i, size_t *end) {
    int node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < n; k++) {
        node = trie_child(t, node, (unsigned char)s[k]);
        if (!node) break;
        int tok = t->trie[node].token;
        if (tok >= 0 && (!t->added[tok].single_word || (!is_word_byte(s, n, i, 1) && !is_word_byte(s, n, k + 1, 0))))
            best = tok, best_end = k + 1;
    }
    if (best >= 0) {
        if (t->added[best].rstrip)
            while (best_end < n && is_space((unsigned char)s[best_end])) best_end++;
        *end = best_end;
    }
    return best;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special, int **ids, int *n, rp_err *err) {
    size_t bad = utf8_valid_prefix(text, len);
    if (bad < len) return rp_fail(err, "text is not valid UTF-8 (byte %zu)", bad);
    int cap = 0, nids = 0;
    int *out = NULL;
    size_t stretch = 0;   // start of the text not yet encoded
    for (size_t i = 0; i < len;) {
        size_t end;
        int tok = t->n_added ? match_added(t, text, len, i, &end) : -1;
        if (tok < 0) {
            i++;
            continue;
        }
        size_t stop = i;
        if (t->added[tok].lstrip)
            while (stop > stretch && is_space((unsigned char)text[stop - 1])) stop--;
        if (stop > stretch) encode_stretch(t, text + stretch, stop - stretch, stretch == 0, &out, &nids, &cap);
        push(&out, &nids, &cap, t->added[tok].id);
        i = stretch = end;
    }
    if (len > stretch) encode_stretch(t, text + stretch, len - stretch, stretch == 0, &out, &nids, &cap);
    if (add_special && t->has_tmpl) {
        int *full = NULL, nf = 0, cf = 0;
        for (int k = 0; k < t->n_tmpl; k++) {
            if (t->tmpl[k] >= 0) push(&full, &nf, &cf, t->tmpl[k]);
            else
                for (int j = 0; j < nids; j++) push(&full, &nf, &cf, out[j]);
        }
        free(out);
        out = full, nids = nf;
    }
    *ids = out ? out : rp_malloc(sizeof(int));
    *n = nids;
    return 0;
}

// ---- decoding ----

typedef struct {
    char **s;
    size_t *n;
    int count, cap;
} strlist;

static void sl_add(strlist *l, const char *s, size_t n) {
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->s = rp_realloc(l->s, sizeof *l->s * l->cap);
        l->n = rp_realloc(l->n, sizeof *l->n * l->cap);
    }
    l->s[l->count] = rp_malloc(n + 1);
    memcpy(l->s[l->count], s, n);
    l->s[l->count][n] = 0;
    l->n[l->count++] = n;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->count; i++) free(l->s[i]);
    free(l->s);
    free(l->n);
    memset(l, 0, sizeof *l);
}

static void sl_fuse(strlist *l) {
    buf all = {0};
    buf_add(&all, "", 0);
    for (int i = 0; i < l->count; i++) buf_add(&all, l->s[i], l->n[i]);
    sl_free(l);
    sl_add(l, all.p, all.n);
    free(all.p);
}

static int byte_token(const char *s, size_t n) {   // "<0xAB>" -> 0xAB, else -1
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void decode_step_run(const decode_step *d, strlist *l) {
    strlist out = {0};
    switch (d->kind) {
    case D_BYTELEVEL: {
        buf bytes = {0};
        buf_add(&bytes, "", 0);
        for (int i = 0; i < l->count; i++) {
            const unsigned char *s = (const unsigned char *)l->s[i];
            size_t start = bytes.n;
            int all_mapped = 1;
            for (size_t k = 0; k < l->n[i];) {
                int cl = utf8_seq_len(s + k, l->n[i] - k);
                int b = cl ? unicode_to_byte(utf8_decode(s + k, cl)) : -1;
                if (b < 0) {
                    all_mapped = 0;
                    break;
                }
                unsigned char c = (unsigned char)b;
                buf_add(&bytes, &c, 1);
                k += (size_t)cl;
            }
            if (!all_mapped) {   // a token that is not byte-level text (an added token) stands for its own bytes
                bytes.n = start;
                buf_add(&bytes, s, l->n[i]);
            }
        }
        char *fixed;
        size_t fn = utf8_lossy(bytes.p, bytes.n, &fixed);
        sl_add(&out, fixed, fn);
        free(fixed);
        free(bytes.p);
        break;
    }
    case D_REPLACE:
        for (int i = 0; i < l->count; i++) {
            buf r = replace_all(&d->pat, l->s[i], l->n[i], d->content);
            sl_add(&out, r.p, r.n);
            free(r.p);
        }
        break;
    case D_BYTEFALLBACK: {
        buf pend = {0};
        for (int i = 0; i <= l->count; i++) {
            int b = i < l->count ? byte_token(l->s[i], l->n[i]) : -1;
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                buf_add(&pend, &c, 1);
                continue;
            }
            if (pend.n) {
                if (utf8_valid_prefix(pend.p, pend.n) == pend.n) sl_add(&out, pend.p, pend.n);
                else
                    for (size_t k = 0; k < pend.n; k++) sl_add(&out, "\xef\xbf\xbd", 3);
                pend.n = 0;
            }
            if (i < l->count) sl_add(&out, l->s[i], l->n[i]);
        }
        free(pend.p);
        break;
    }
    case D_FUSE: sl_fuse(l); return;
    case D_STRIP:
        for (int i = 0; i < l->count; i++) {
            const unsigned char *s = (const unsigned char *)l->s[i];
            size_t a = 0, b = l->n[i];
            for (int k = 0; k < d->start && a < b; k++) {
                int cl = utf8_seq_len(s + a, b - a);
                if (!cl || utf8_decode(s + a, cl) != d->strip_char) break;
                a += (size_t)cl;
            }
            for (int k = 0; k < d->stop && b > a; k++) {
                size_t c = b - 1;
                while (c > a && (s[c] & 0xc0) == 0x80) c--;
                int cl = utf8_seq_len(s + c, b - c);
                if (!cl || utf8_decode(s + c, cl) != d->strip_char) break;
                b = c;
            }
            sl_add(&out, (const char *)s + a, b - a);
        }
        break;
    case D_METASPACE:
        for (int i = 0; i < l->count; i++) {
            pattern repl = {.literal = (char *)d->replacement, .literal_len = strlen(d->replacement)};
            buf r = replace_all(&repl, l->s[i], l->n[i], " ");
            size_t skip = i == 0 && d->scheme != PREPEND_NEVER && r.n && r.p[0] == ' ';
            sl_add(&out, r.p + skip, r.n - skip);
            free(r.p);
        }
        break;
    }
    sl_free(l);
    *l = out;
}

static const char *token_text(const tokenizer *t, int id, size_t *len, int *special) {
    *special = 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) {
            *special = t->added[i].special;
            *len = t->added[i].len;
            return t->added[i].content;
        }
    if (id < t->bpe.n_vocab && t->bpe.id_to_token[id]) {
        *len = t->bpe.token_len[id];
        return t->bpe.id_to_token[id];
    }
    return NULL;
}

int tokenizer_decode(const tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, rp_err *err) {
    strlist l = {0};
    for (int i = 0; i < n; i++) {
        size_t tl;
        int special;
        if (ids[i] < 0) {
            sl_free(&l);
            return rp_fail(err, "token id %d is not a token id", ids[i]);
        }
        char placeholder[40];   // ASCII without spaces, so that every decoder passes it through unchanged
        const char *s = token_text(t, ids[i], &tl, &special);
        if (!s) {
            tl = (size_t)snprintf(placeholder, sizeof placeholder, "<|reprise:id=%d|>", ids[i]);
            s = placeholder, special = 0;
        }
        if (skip_special && special) continue;
        sl_add(&l, s, tl);
    }
    if (t->has_decoder)
        for (int i = 0; i < t->n_dec; i++) decode_step_run(&t->dec[i], &l);
    buf all = {0};
    buf_add(&all, "", 0);
    for (int i = 0; i < l.count; i++) {
        if (!t->has_decoder && i) buf_add(&all, " ", 1);   // HF joins undecoded tokens with spaces
        buf_add(&all, l.s[i], l.n[i]);
    }
    sl_free(&l);
    // decoders that pass token text through could still leave invalid UTF-8 only from a malformed vocabulary
    *len = utf8_lossy(all.p, all.n, out);
    free(all.p);
    return 0;
}

// ---- streaming ----

void detok_stream_init(detok_stream *s, const tokenizer *t, int skip_special) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->skip_special = skip_special;
}

// Where the window of context that decides how the next token reads begins: its last few tokens (a SentencePiece
// decoder strips a leading space only at the start of what it decodes, and a character split over byte tokens
// needs its first bytes), reaching back past special tokens a skip_special decode drops (a chat template's
// closing tokens) to one that has text.
static int context_start(const tokenizer *t, const int *context, int n_context, int skip_special) {
    int start = n_context > 6 ? n_context - 6 : 0, floor = n_context > 256 ? n_context - 256 : 0, visible = 0;
    for (int i = start; i < n_context && !visible; i++) visible = !skip_special || !tokenizer_is_special(t, context[i]);
    while (!visible && start > floor) visible = !tokenizer_is_special(t, context[--start]);
    return start;
}

void detok_stream_init_after(detok_stream *s, const tokenizer *t, int skip_special, const int *context, int n_context) {
    detok_stream_init(s, t, skip_special);
    int start = context_start(t, context, n_context, skip_special);
    s->n = s->cap = n_context - start;
    if (s->n) {
        s->ids = rp_malloc(sizeof *s->ids * (size_t)s->cap);
        memcpy(s->ids, context + start, sizeof *s->ids * (size_t)s->n);
    }
    s->read_start = s->n;
}

// The text of ids[0..n_all) and where it parts from the text of ids[0..n_prefix) (*common bytes are shared; the
// whole text normally extends the prefix's, but a character completed by a later byte token replaces the U+FFFD the
// prefix ended with). *full is a heap string.
static int decode_pair(const tokenizer *t, const int *ids, int n_prefix, int n_all, int skip_special, char **full,
                       size_t *fl, size_t *pl, size_t *common, rp_err *err) {
    char *prefix;
    if (tokenizer_decode(t, ids, n_prefix, skip_special, &prefix, pl, err)) return -1;
    if (tokenizer_decode(t, ids, n_all, skip_special, full, fl, err)) return free(prefix), -1;
    for (*common = 0; *common < *pl && *common < *fl && (*full)[*common] == prefix[*common];) ++*common;
    free(prefix);
    return 0;
}

int tokenizer_decode_after(const tokenizer *t, const int *context, int n_context, const int *ids, int n, int skip_special,
                           char **out, size_t *len, rp_err *err) {
    int start = context_start(t, context, n_context, skip_special), nc = n_context - start;
    int *all = rp_malloc(sizeof *all * (size_t)(nc + n + 1));
    memcpy(all, context + start, sizeof *all * (size_t)nc);
    memcpy(all + nc, ids, sizeof *all * (size_t)n);
    char *full;
    size_t fl, pl, common;
    int rc = decode_pair(t, all, nc, nc + n, skip_special, &full, &fl, &pl, &common, err);
    free(all);
    if (rc) return -1;
    *len = fl - common;
    *out = rp_strdup(full + common);
    free(full);
    return 0;
}

void detok_stream_free(detok_stream *s) { free(s->ids); }

int tokenizer_text_incomplete(const char *s, size_t n) { return n >= 3 && !memcmp(s + n - 3, "\xef\xbf\xbd", 3); }

char *detok_stream_push(detok_stream *s, int id, rp_err *err) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->ids = rp_realloc(s->ids, sizeof *s->ids * (size_t)s->cap);
    }
    s->ids[s->n++] = id;
    char *full, *out;
    size_t fl, pl, common;
    if (decode_pair(s->t, s->ids + s->prefix_start, s->read_start - s->prefix_start, s->n - s->prefix_start, s->skip_special,
                    &full, &fl, &pl, &common, err))
        return NULL;
    if (fl > pl && !tokenizer_text_incomplete(full, fl)) {
        out = rp_strdup(full + common);
        s->prefix_start = s->read_start;
        s->read_start = s->n;
    } else out = rp_strdup("");
    free(full);
    return out;
}

char *detok_stream_flush(detok_stream *s, rp_err *err) {
    if (s->read_start == s->n) return rp_strdup("");
    char *full;
    size_t fl, pl, common;
    if (decode_pair(s->t, s->ids + s->prefix_start, s->read_start - s->prefix_start, s->n - s->prefix_start, s->skip_special,
                    &full, &fl, &pl, &common, err))
        return NULL;
    char *out = rp_strdup(full + common);
    s->prefix_start = s->read_start = s->n;
    free(full);
    return out;
}
