// tokenizer.json: every case of ../shared/tokenizers/*/cases.jsonl (from the real HF tokenizers) passes exactly,
// ids without and with special tokens and decoded text; streaming detokenization never splits a character.
#include <cjson/cJSON.h>

#include "loader/json_file.h"
#include "loader/tokenizer.h"
#include "loader/utf8.h"
#include "tests/test_util.h"

#define TOK_DIR SHARED_DIR "/tokenizers"

// cJSON strings end at NUL, and one case holds U+0000, so string fields are unescaped here with their length.
static char *json_string_field(const char *line, const char *key, size_t *len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    while (*p && *p != '"') {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        char c = *p++;
        if (c == 'u') {
            uint32_t cp = (uint32_t)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            n += (size_t)utf8_encode(cp, out + n);
        } else
            out[n++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
    }
    out[n] = 0;
    *len = n;
    return out;
}

static int ids_equal(const int *a, int na, const cJSON *want, char *where, size_t wsz) {
    int nw = cJSON_GetArraySize(want);
    for (int i = 0; i < na || i < nw; i++) {
        int w = i < nw ? cJSON_GetArrayItem(want, i)->valueint : -1, g = i < na ? a[i] : -1;
        if (w != g) {
            snprintf(where, wsz, "first difference at index %d: got %d, want %d (lengths %d vs %d)", i, g, w, na, nw);
            return 0;
        }
    }
    return 1;
}

static void run_cases(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", TOK_DIR, name);
    rp_err err;
    tokenizer *t = tokenizer_load(path, &err);
    CHECK(t != NULL, "%s: %s", name, err.msg);
    if (!t) return;
    snprintf(path, sizeof path, "%s/%s/cases.jsonl", TOK_DIR, name);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0, n_fail = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *c = cJSON_Parse(line);
        size_t tl, dl, dsl;
        char *text = json_string_field(line, "text", &tl);
        char *decoded = json_string_field(line, "decoded", &dl);
        char *decoded_sp = json_string_field(line, "decoded_with_special", &dsl);
        for (int special = 0; special < 2; special++) {
            int *ids, n;
            char where[160];
            const cJSON *want = cJSON_GetObjectItem(c, special ? "ids_with_special" : "ids");
            if (tokenizer_encode(t, text, tl, special, &ids, &n, &err)) {
                CHECK(0, "%s case %d: %s", name, n_cases, err.msg);
                n_fail++;
                continue;
            }
            if (!ids_equal(ids, n, want, where, sizeof where)) {
                if (n_fail++ < 8) CHECK(0, "%s case %d (%s) '%.60s': %s", name, n_cases, special ? "with special" : "plain", text, where);
                else test_failures++;
            }
            // decode the expected ids (not ours), so encode and decode are checked independently
            int nw = cJSON_GetArraySize(want);
            int *wids = malloc(sizeof(int) * (nw + 1));
            for (int i = 0; i < nw; i++) wids[i] = cJSON_GetArrayItem(want, i)->valueint;
            char *out;
            size_t ol;
            CHECK(tokenizer_decode(t, wids, nw, 0, &out, &ol, &err) == 0, "%s", err.msg);
            const char *exp = special ? decoded_sp : decoded;
            size_t el = special ? dsl : dl;
            if (ol != el || memcmp(out, exp, el) != 0) {
                if (n_fail++ < 8) CHECK(0, "%s case %d decode: got '%.60s' want '%.60s'", name, n_cases, out, exp);
                else test_failures++;
            }
            // streaming gives the same text, piece by piece
            detok_stream st;
            detok_stream_init(&st, t, 0);
            char *acc = calloc(1, ol + 64 * (nw + 1) + 1);
            size_t al = 0;
            for (int i = 0; i < nw; i++) {
                char *piece = detok_stream_push(&st, wids[i], &err);
                size_t pl = strlen(piece);
                CHECK(utf8_valid_prefix(piece, pl) == pl, "%s case %d: stream printed invalid UTF-8", name, n_cases);
                memcpy(acc + al, piece, pl), al += pl;
                free(piece);
            }
            char *rest = detok_stream_flush(&st, &err);
            memcpy(acc + al, rest, strlen(rest)), al += strlen(rest);
            free(rest);
            // the stream's pieces are NUL-free by construction of strdup; compare up to a NUL in the expected text
            size_t cmp_len = strlen(out) < ol ? strlen(out) : ol;
            if (memchr(out, 0, ol) == NULL && (al != ol || memcmp(acc, out, ol) != 0)) {
                if (n_fail++ < 8) CHECK(0, "%s case %d stream: got '%.60s' want '%.60s'", name, n_cases, acc, out);
                else test_failures++;
            }
            (void)cmp_len;
            free(acc);
            detok_stream_free(&st);
            free(out);
            free(wids);
            free(ids);
        }
        free(text);
        free(decoded);
        free(decoded_sp);
        cJSON_Delete(c);
        n_cases++;
    }
    free(line);
    fclose(f);
    fprintf(stderr, "  %s: %d cases, %d mismatches\n", name, n_cases, n_fail);
    CHECK(n_cases == 174, "%s: %d cases read", name, n_cases);
    tokenizer_free(t);
}

static void gpt2_cases_pass(void) { run_cases("gpt2"); }
static void llama3_cases_pass(void) { run_cases("llama3"); }
static void llama3_1_cases_pass(void) { run_cases("llama3_1"); }
static void qwen3_cases_pass(void) { run_cases("qwen3"); }
static void mistral_cases_pass(void) { run_cases("mistral"); }
static void llama2_cases_pass(void) { run_cases("llama2_reconstructed"); }

// stories260K: HF's ids for its tokenizer cases, and its prompt through text in and text out.
static void stories260k_text_in_and_out(void) {
    const char *dir = SHARED_DIR "/models/stories260K";
    rp_err err;
    tokenizer *t = tokenizer_load(SHARED_DIR "/models/stories260K/tokenizer.json", &err);
    cJSON *exp = json_parse_file(SHARED_DIR "/models/stories260K/expected.json", &err);
    CHECK(t && exp, "%s: %s", dir, err.msg);
    if (!t || !exp) return;
    const cJSON *cases = cJSON_GetObjectItem(cJSON_GetObjectItem(exp, "tokenizer_cases"), "cases");
    int n_cases = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n_cases++) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int *ids, n;
        char where[160];
        CHECK(tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &err) == 0, "%s", err.msg);
        CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids"), where, sizeof where), "stories260K '%s': %s", text, where);
        free(ids);
    }
    CHECK(n_cases >= 29, "%d cases", n_cases);
    const cJSON *g = cJSON_GetObjectItem(exp, "greedy_once_upon_a_time_64");
    const char *prompt = cJSON_GetObjectItem(g, "prompt")->valuestring;
    int *ids, n;
    char where[160];
    CHECK(tokenizer_encode(t, prompt, strlen(prompt), 1, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK(ids_equal(ids, n, cJSON_GetObjectItem(g, "prompt_ids"), where, sizeof where), "prompt: %s", where);
    free(ids);
    const cJSON *all = cJSON_GetObjectItem(g, "ids");
    int na = cJSON_GetArraySize(all);
    int *gen = malloc(sizeof(int) * na);
    for (int i = 0; i < na; i++) gen[i] = cJSON_GetArrayItem(all, i)->valueint;
    char *text;
    size_t tl;
    CHECK(tokenizer_decode(t, gen, na, 1, &text, &tl, &err) == 0, "%s", err.msg);
    CHECK(strcmp(text, cJSON_GetObjectItem(g, "text")->valuestring) == 0, "decoded '%.80s'", text);
    free(text);
    free(gen);
    cJSON_Delete(exp);
    tokenizer_free(t);
}

static void bad_tokenizer_files_are_named(void) {
    char *tmp = make_temp_dir("tok");
    char *p = path_join(tmp, "tokenizer.json");
    struct {
        const char *json, *mention;
    } cases[] = {
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model type 'Unigram'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"NFKD\"}}", "normalizer 'NFKD'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", "pre-tokenizer 'Whitespace'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"decoder\": {\"type\": \"WordPiece\"}}", "decoder 'WordPiece'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"post_processor\": {\"type\": \"BertProcessing\"}}", "post-processor 'BertProcessing'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", "does not compile"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "vocab id 0 is given twice"},
        {"{\"model\": ", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(p, "w");
        fputs(cases[i].json, f);
        fclose(f);
        rp_err err = {{0}};
        tokenizer *t = tokenizer_load(p, &err);
        CHECK(!t && strstr(err.msg, cases[i].mention), "case %zu: '%s' lacks '%s'", i, err.msg, cases[i].mention);
        tokenizer_free(t);
    }
    free(p);
    remove_tree(tmp);
    free(tmp);
}

// An id past the tokenizer's vocabulary (Qwen pads its embedding rows past it, and a model can sample one) decodes
// to a visible placeholder, alone, in text, and streamed; a negative id is still an error.
static void ids_without_a_token_decode_to_a_placeholder(void) {
    rp_err err;
    tokenizer *t = tokenizer_load(FIXTURES_DIR "/bytelevel_tokenizer.json", &err);
    CHECK(t != NULL, "%s", err.msg);
    if (!t) return;
    int *ids, n;
    CHECK(tokenizer_encode(t, "ab", 2, 0, &ids, &n, &err) == 0 && n >= 1, "%s", err.msg);
    int big = tokenizer_vocab_size(t) + 5, seq[4] = {ids[0], big, ids[0], -1};
    char *text;
    size_t len;
    char want[64];
    snprintf(want, sizeof want, "<|reprise:id=%d|>", big);
    CHECK(tokenizer_decode(t, seq, 3, 1, &text, &len, &err) == 0 && strstr(text, want), "decoded '%s'", text);
    free(text);
    detok_stream ds;
    detok_stream_init(&ds, t, 1);
    char *acc = calloc(1, 1);
    for (int i = 0; i < 3; i++) {
        char *piece = detok_stream_push(&ds, seq[i], &err);
        CHECK(piece != NULL, "%s", err.msg);
        acc = realloc(acc, strlen(acc) + (piece ? strlen(piece) : 0) + 1), strcat(acc, piece ? piece : "");
        free(piece);
    }
    char *rest = detok_stream_flush(&ds, &err);
    acc = realloc(acc, strlen(acc) + strlen(rest) + 1), strcat(acc, rest);
    CHECK(strstr(acc, want) != NULL, "streamed '%s'", acc);
    free(rest), free(acc);
    detok_stream_free(&ds);
    CHECK(tokenizer_decode(t, seq + 3, 1, 1, &text, &len, &err) != 0 && strstr(err.msg, "-1"), "negative id: %s", err.msg);
    free(ids);
    tokenizer_free(t);
}

int main(void) {
    RUN(bad_tokenizer_files_are_named);
    RUN(ids_without_a_token_decode_to_a_placeholder);
    if (!file_exists(TOK_DIR "/gpt2/tokenizer.json")) {
        fprintf(stderr, "SKIP: %s is absent (the shared test data is not checked out here)\n", TOK_DIR);
        return TEST_SKIP;
    }
    RUN(gpt2_cases_pass);
    RUN(llama3_cases_pass);
    RUN(llama3_1_cases_pass);
    RUN(qwen3_cases_pass);
    RUN(mistral_cases_pass);
    RUN(llama2_cases_pass);
    RUN(stories260k_text_in_and_out);
    return TEST_EXIT();
}
