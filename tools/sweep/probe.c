// Probe sets for sweeps: loading or generating items, and scoring replies as RYS does (../shared/probes/README.md).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tools/sweep/probe.h"
#include "loader/alloc.h"

#include "loader/fingerprint.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loader/json_file.h"

// ---- math ----

// Exact |A - E| for two digit strings of the same length, as a long double (via decimal subtraction).
static long double abs_diff(const char *a, const char *b, size_t n) {
    const char *hi = strcmp(a, b) >= 0 ? a : b, *lo = hi == a ? b : a;
    char *d = rp_malloc(n + 1);
    int borrow = 0;
    for (size_t i = n; i-- > 0;) {
        int x = (hi[i] - '0') - (lo[i] - '0') - borrow;
        borrow = x < 0;
        d[i] = (char)('0' + (x + 10) % 10);
    }
    long double v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (d[i] - '0');
    free(d);
    return v;
}

static const char *skip_zeros(const char *s) {
    while (s[0] == '0' && s[1]) s++;
    return s;
}

double math_score(const char *actual, const char *estimate) {
    actual = skip_zeros(actual), estimate = skip_zeros(estimate);
    size_t la = strlen(actual), le = strlen(estimate), L = la > le ? la : le, pad = L - (la < le ? la : le);
    if (!la || !le) return 0;
    // right-pad both with zeros to L digits
    char *A = rp_malloc(L + 1), *E = rp_malloc(L + 1);
    memset(A, '0', L), memset(E, '0', L);
    memcpy(A, actual, la), memcpy(E, estimate, le);
    A[L] = E[L] = 0;
    long double a = 0, e = 0;
    for (size_t i = 0; i < L; i++) a = a * 10 + (A[i] - '0'), e = e * 10 + (E[i] - '0');
    long double mx = a > e ? a : e;
    double score = 0;
    if (mx > 0) score = (double)((1 - abs_diff(A, E, L) / mx) * (1 - (long double)pad / L));
    free(A), free(E);
    return score < 0 ? 0 : score > 1 ? 1 : score;
}

double math_reply_score(const char *reply, const char *answer) {
    double best = 0;
    for (const char *p = reply; *p;) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        size_t n = 0;
        while (isdigit((unsigned char)p[n])) n++;
        char *run = rp_strndup(p, n);
        double s = math_score(answer, run);
        if (s > best) best = s;
        free(run);
        p += n;
    }
    return best;
}

// ---- EQ ----

#define REVISE_WEIGHT 0.5   // how a revised section counts against the first pass when both parse

// Parses "<emotion>: <number>" for all four emotions within [from, to); 0 if any is missing.
static int parse_section(const char *from, const char *to, char *const *emotions, double *out) {
    for (int k = 0; k < 4; k++) {
        size_t el = strlen(emotions[k]);
        int found = 0;
        for (const char *p = from; p && p + el < to && !found; p++) {
            if (strncasecmp(p, emotions[k], el) != 0 || (p > from && isalpha((unsigned char)p[-1]))) continue;
            const char *q = p + el;
            while (q < to && (*q == ' ' || *q == '*')) q++;
            if (q >= to || *q != ':') continue;
            q++;
            while (q < to && (*q == ' ' || *q == '*')) q++;
            char *end;
            double v = strtod(q, &end);
            if (end > q && end <= to) out[k] = v, found = 1;
        }
        if (!found) return 0;
    }
    return 1;
}

static const char *find_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0) return s;
    return NULL;
}

double eq_reply_score(const char *reply, char *const *emotions, const double *ref, double *confidence) {
    double first[4], revised[4], p[4] = {5, 5, 5, 5}, conf = 0;
    const char *end = reply + strlen(reply);
    const char *f = find_ci(reply, "First pass scores:"), *r = find_ci(reply, "Revised scores:");
    const char *crit = f ? find_ci(f, "Critique:") : NULL;
    int have_first = f && parse_section(f, crit ? crit : (r && r > f ? r : end), emotions, first);
    int have_rev = r && parse_section(r, end, emotions, revised);
    if (have_first && have_rev) {
        conf = 1.0;
        for (int k = 0; k < 4; k++) p[k] = (1 - REVISE_WEIGHT) * first[k] + REVISE_WEIGHT * revised[k];
    } else if (have_rev) {
        conf = 0.9;
        memcpy(p, revised, sizeof p);
    } else if (have_first) {
        conf = 0.8;
        memcpy(p, first, sizeof p);
    } else {   // any numbers from 0 to 10 in the reply, in order
        int n = 0;
        for (const char *q = reply; *q && n < 4;) {
            if (!isdigit((unsigned char)*q) || (q > reply && (isdigit((unsigned char)q[-1]) || q[-1] == '.'))) {
                q++;
                continue;
            }
            char *e;
            double v = strtod(q, &e);
            if (v >= 0 && v <= 10) p[n++] = v;
            q = e > q ? e : q + 1;
        }
        conf = n >= 4 ? 0.5 : n / 8.0;
    }
    double dist = 0;
    for (int k = 0; k < 4; k++) dist += fabs(p[k] - ref[k]);
    double raw = 1 - dist / 40;
    if (raw < 0) raw = 0;
    if (confidence) *confidence = conf;
    return conf * raw + (1 - conf) * 0.5;
}

// ---- jsonl ----

static const char *strip_left(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    return s;
}

int jsonl_match(match_kind m, const char *reply, const char *answer) {
    if (m == MATCH_EXACT) {
        const char *r = strip_left(reply), *a = strip_left(answer);
        size_t al = strlen(a);
        while (al && isspace((unsigned char)a[al - 1])) al--;
        return strncmp(r, a, al) == 0;
    }
    if (m == MATCH_NUMERIC) {   // the first number in the reply equals the answer's
        char *end;
        double want = strtod(answer, &end);
        for (const char *p = reply; *p; p++)
            if (isdigit((unsigned char)*p) || ((*p == '-' || *p == '.') && isdigit((unsigned char)p[1]))) {
                double got = strtod(p, &end);
                return fabs(got - want) <= 1e-9 * (fabs(want) > 1 ? fabs(want) : 1);
            }
        return 0;
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)answer, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (!re) return 0;   // checked at load, so not reached
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int ok = pcre2_match(re, (PCRE2_SPTR)reply, strlen(reply), 0, 0, md, NULL) >= 0;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return ok;
}

// "(X)": the option letter X of a multiple-choice target, else 0.
static char option_letter(const char *s) {
    return s[0] == '(' && s[1] >= 'A' && s[1] <= 'Z' && s[2] == ')' && !s[3] ? s[1] : 0;
}

int bbh_match(const char *reply, const char *target) {
    char want = option_letter(target);
    if (want) {
        for (const char *p = reply; *p; p++)   // the first "(X)"
            if (p[0] == '(' && p[1] >= 'A' && p[1] <= 'Z' && p[2] == ')') return p[1] == want;
        const char *r = strip_left(reply);     // or the bare letter: "B", "B.", "B)"
        return r[0] == want && (!r[1] || r[1] == '.' || r[1] == ')' || isspace((unsigned char)r[1]));
    }
    const char *at = strstr(reply, "answer is");
    const char *r = strip_left(at ? at + 9 : reply);
    size_t n = strcspn(r, "\n");
    while (n && (isspace((unsigned char)r[n - 1]) || r[n - 1] == '.')) n--;
    const char *t = strip_left(target);
    size_t tn = strlen(t);
    while (tn && isspace((unsigned char)t[tn - 1])) tn--;
    return n == tn && !strncmp(r, t, n);
}

double probe_score_reply(const probe *p, const probe_item *it, const char *reply) {
    switch (p->kind) {
    case PROBE_BBH: return bbh_match(reply, it->answer);
    case PROBE_MATH: case PROBE_ARITH: return math_reply_score(reply, it->answer);
    case PROBE_EQ: return eq_reply_score(reply, it->emotions, it->ref, NULL);
    case PROBE_JSONL: return jsonl_match(it->match, reply, it->answer);
    default: return 0;
    }
}

// ---- loading ----

// A probe file's text, read once: its fingerprint also renames p (whose name holds the spec "KIND:FILE" until now)
// to KIND:BASENAME@FINGERPRINT, so the same file reached by another path, on another machine, is the same probe.
static char *read_probe_file(probe *p, const char *file, size_t *len, rp_err *err) {
    char *text = read_file_all(file, READ_LIMIT_PROBE, "probe file", len, err);
    if (!text) return NULL;
    uint64_t h = fingerprint_bytes(FINGERPRINT_SEED, text, *len);
    const char *base = strrchr(file, '/');
    base = base && base[1] ? base + 1 : file;
    char kind[16];
    snprintf(kind, sizeof kind, "%.*s", (int)strcspn(p->name, ":"), p->name);
    snprintf(p->name, sizeof p->name, "%s:%s@%08llx", kind, base, (unsigned long long)(h >> 32));
    return text;
}

static probe_item *add_item(probe *p) {
    p->items = rp_realloc(p->items, sizeof *p->items * (size_t)(p->n_items + 1));
    probe_item *it = &p->items[p->n_items++];
    memset(it, 0, sizeof *it);
    return it;
}

static char *id_of(int i) {
    char b[16];
    snprintf(b, sizeof b, "%d", i);
    return rp_strdup(b);
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static const char *ANSWER_RULES =
    "Give your guess as an integer value without any other text or commentary. Do not use commas or scientific "
    "notation in your answer! Do not include intermediate results!";

// Square roots, cube roots and products of large integers, as in RYS's math probe; answers are exact integers.
static void generate_math(probe *p, int n, unsigned seed) {
    uint64_t s = 0x9e3779b97f4a7c15ull ^ seed;
    for (int i = 0; i < n; i++) {
        probe_item *it = add_item(p);
        char q[512], a[64];
        unsigned __int128 x;
        switch (i % 3) {
        case 0: {
            uint64_t r = 100000000 + rng_next(&s) % 900000000;   // 9-digit root
            x = (unsigned __int128)r * r + rng_next(&s) % (2 * r);   // not a perfect square: the answer rounds down
            snprintf(a, sizeof a, "%llu", (unsigned long long)r);
            snprintf(q, sizeof q, "What is the square root of %llu? %s", (unsigned long long)x, ANSWER_RULES);
            break;
        }
        case 1: {
            uint64_t r = 100000 + rng_next(&s) % 900000;   // 6-digit root
            x = (unsigned __int128)r * r * r;
            snprintf(a, sizeof a, "%llu", (unsigned long long)r);
            snprintf(q, sizeof q, "What is the cube root of %llu? %s", (unsigned long long)x, ANSWER_RULES);
            break;
        }
        default: {
            uint64_t u = 10000 + rng_next(&s) % 90000, v = 10000 + rng_next(&s) % 90000;
            snprintf(a, sizeof a, "%llu", (unsigned long long)(u * v));
            snprintf(q, sizeof q, "What is %llu multiplied by %llu? %s", (unsigned long long)u, (unsigned long long)v, ANSWER_RULES);
        }
        }
        it->id = id_of(i);
        it->prompt = rp_strdup(q);
        it->answer = rp_strdup(a);
    }
}

// The built-in model's task: "A+B=" and "A*B=", with operands of 1 to 4 (sums) or 1 to 2 (products) digits, never
// 0: an answer of 0 has no digits for RYS's partial credit, which would score even the right reply 0.
static void generate_arith(probe *p, int n, unsigned seed) {
    uint64_t s = 0x51ed270b27a1c2d5ull ^ seed;
    static const uint64_t pow10[] = {1, 10, 100, 1000, 10000};
    for (int i = 0; i < n; i++) {
        probe_item *it = add_item(p);
        int mul = i % 3 == 2, da = 1 + (int)(rng_next(&s) % (mul ? 2 : 4)), db = 1 + (int)(rng_next(&s) % (mul ? 2 : 4));
        uint64_t a = pow10[da - 1] + rng_next(&s) % (pow10[da] - pow10[da - 1]);   // da digits, 1.. for one digit
        uint64_t b = pow10[db - 1] + rng_next(&s) % (pow10[db] - pow10[db - 1]);
        char q[64], ans[32];
        snprintf(q, sizeof q, "%llu%c%llu=", (unsigned long long)a, mul ? '*' : '+', (unsigned long long)b);
        snprintf(ans, sizeof ans, "%llu", (unsigned long long)(mul ? a * b : a + b));
        it->id = id_of(i);
        it->prompt = rp_strdup(q);
        it->answer = rp_strdup(ans);
    }
}

// The raw text of each record's "answer" number (depth 2: {"id": {"answer": N}}), in file order. JSON numbers
// parse to doubles, which keep 15-17 digits; RYS's math_16.json has 28-digit answers, scored digit by digit, so
// the digits come from the text. Returns how many (at most cap) were found.
static int raw_answers(const char *text, size_t len, const char **at, int *n_chars, int cap) {
    int depth = 0, n = 0;
    const char *key = NULL;   // the last string at depth 2, while it may be a key
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            size_t s = ++i;
            while (i < len && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
            key = depth == 2 && i - s == 6 && !memcmp(text + s, "answer", 6) ? text + s : NULL;
            continue;
        }
        if (c == '{' || c == '[') depth++, key = NULL;
        else if (c == '}' || c == ']') depth--, key = NULL;
        else if (c == ':' && key) {
            size_t j = i + 1;
            while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r')) j++;
            size_t k = j;
            while (k < len && strchr("0123456789+-.eE", text[k])) k++;
            if (n < cap && k > j) at[n] = text + j, n_chars[n] = (int)(k - j), n++;
            key = NULL;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') key = NULL;
    }
    return n;
}

static int load_math_file(probe *p, const char *file, rp_err *err) {
    size_t len;
    char *text = read_probe_file(p, file, &len, err);
    cJSON *root = text ? json_parse_text(text, len, file, err) : NULL;
    if (!root) return free(text), -1;
    int rc = cJSON_IsObject(root) ? 0 : rp_fail(err, "%s: expected an object of {\"question\", \"answer\"} records", file);
    int n_rec = cJSON_GetArraySize(root), *n_chars = rp_malloc(sizeof(int) * (size_t)(n_rec > 0 ? n_rec : 1));
    const char **raw = rp_malloc(sizeof(char *) * (size_t)(n_rec > 0 ? n_rec : 1));
    int n_raw = rc ? 0 : raw_answers(text, len, raw, n_chars, n_rec), r = 0;
    if (!rc && n_raw != n_rec)
        rc = rp_fail(err, "%s: %d records but %d \"answer\" numbers in the text", file, n_rec, n_raw);
    for (const cJSON *e = root->child; e && !rc; e = e->next, r++) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(e, "question"), *a = cJSON_GetObjectItemCaseSensitive(e, "answer");
        int digits = 1;
        for (int c = 0; c < n_chars[r]; c++) digits &= raw[r][c] >= '0' && raw[r][c] <= '9';
        if (!cJSON_IsString(q) || !cJSON_IsNumber(a) || !digits) {
            rc = rp_fail(err, "%s: record '%s' needs a string \"question\" and a non-negative integer \"answer\" (digits only, "
                         "no exponent)", file, e->string);
            break;
        }
        probe_item *it = add_item(p);
        it->id = rp_strdup(e->string);
        it->prompt = rp_strdup(q->valuestring);
        it->answer = rp_strndup(raw[r], (size_t)n_chars[r]);
    }
    free(raw), free(n_chars), free(text);
    cJSON_Delete(root);
    return rc;
}

// A probe file parsed as JSON, at most READ_LIMIT_PROBE bytes.
static cJSON *probe_json(probe *p, const char *file, rp_err *err) {
    size_t len;
    char *text = read_probe_file(p, file, &len, err);
    cJSON *root = text ? json_parse_text(text, len, file, err) : NULL;
    free(text);
    return root;
}

static int load_eq_file(probe *p, const char *file, rp_err *err) {
    cJSON *root = probe_json(p, file, err);
    if (!root) return -1;
    int rc = cJSON_IsObject(root) ? 0 : rp_fail(err, "%s: expected an object of EQ-Bench records", file);
    for (const cJSON *e = root->child; e && !rc; e = e->next) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(e, "prompt"), *ref = cJSON_GetObjectItemCaseSensitive(e, "reference_answer");
        probe_item it = {0};
        int ok = cJSON_IsString(q) && cJSON_IsObject(ref);
        for (int k = 0; ok && k < 4; k++) {
            char key[32];
            snprintf(key, sizeof key, "emotion%d", k + 1);
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(ref, key);
            snprintf(key, sizeof key, "emotion%d_score", k + 1);
            const cJSON *score = cJSON_GetObjectItemCaseSensitive(ref, key);
            ok = cJSON_IsString(name) && cJSON_IsNumber(score);
            if (ok) it.emotions[k] = rp_strdup(name->valuestring), it.ref[k] = score->valuedouble;
        }
        if (!ok) {
            for (int k = 0; k < 4; k++) free(it.emotions[k]);
            rc = rp_fail(err, "%s: record '%s' needs \"prompt\" and reference_answer emotion1..4 with scores", file, e->string);
            break;
        }
        it.id = rp_strdup(e->string);
        it.prompt = rp_strdup(q->valuestring);
        *add_item(p) = it;
    }
    cJSON_Delete(root);
    return rc;
}

// The objects of a jsonl text (blank lines skipped) as a cJSON array, and each one's line number in *lines (malloc'd);
// a line that is not JSON is an error naming it. The text's newlines become NULs.
static cJSON *jsonl_parse(char *text, size_t len, const char *file, int **lines, rp_err *err) {
    cJSON *all = cJSON_CreateArray();
    int n = 0, lineno = 0;
    *lines = NULL;
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        if (nl) *nl = 0;
        lineno++;
        if (!*strip_left(line)) continue;
        char what[600];
        snprintf(what, sizeof what, "%s line %d", file, lineno);
        cJSON *o = json_parse_text(line, strlen(line), what, err);
        if (!o) {
            cJSON_Delete(all), free(*lines), *lines = NULL;
            return NULL;
        }
        cJSON_AddItemToArray(all, o);
        *lines = rp_realloc(*lines, sizeof **lines * (size_t)(n + 1));
        (*lines)[n++] = lineno;
    }
    return all;
}

// BIG-Bench Hard: a task file {"canary", "examples": [{"input", "target"}]} as the BIG-Bench-Hard repository
// publishes it, or a jsonl of the same objects. A multiple-choice item (target "(X)") keeps its options' letters,
// "(A)", "(B)", ... from the input's "(X) ..." lines, for the log-likelihood view. With max_items, a subset of that
// many drawn with seed (a 50-item subset is the same every run; ids are the examples' indices).
static int load_bbh(probe *p, const char *file, int max_items, unsigned seed, rp_err *err) {
    size_t len;
    char *text = read_probe_file(p, file, &len, err);
    if (!text) return -1;
    // a task file is one object with "examples" (cJSON reads only the first value: a jsonl's first line is an object
    // too, without them)
    cJSON *root = cJSON_ParseWithLength(text, len), *examples = NULL, *owned = NULL;
    if (root && cJSON_IsObject(root)) examples = cJSON_GetObjectItemCaseSensitive(root, "examples");
    if (!examples) {   // jsonl: the lines' objects as one array
        int *lines;
        if (!(owned = jsonl_parse(text, len, file, &lines, err))) return cJSON_Delete(root), free(text), -1;
        free(lines);
        examples = owned;
    }
    int n = cJSON_IsArray(examples) ? cJSON_GetArraySize(examples) : -1, rc = 0;
    if (n < 0) rc = rp_fail(err, "%s: expected BIG-Bench Hard's {\"examples\": [{\"input\", \"target\"}, ...]} or a jsonl of them", file);
    // which examples: all, or max_items of them drawn with seed, in file order
    int *pick = rp_malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), n_pick = n > 0 ? n : 0;
    for (int i = 0; i < n_pick; i++) pick[i] = i;
    if (max_items > 0 && n_pick > max_items) {
        uint64_t s = 0xbb4ull ^ ((uint64_t)seed << 20);
        for (int i = 0; i < max_items; i++) {   // a partial Fisher-Yates shuffle, then the chosen in order
            int j = i + (int)(rng_next(&s) % (uint64_t)(n_pick - i)), t = pick[i];
            pick[i] = pick[j], pick[j] = t;
        }
        n_pick = max_items;
        for (int a = 1; a < n_pick; a++)
            for (int b = a; b > 0 && pick[b] < pick[b - 1]; b--) {
                int t = pick[b];
                pick[b] = pick[b - 1], pick[b - 1] = t;
            }
    }
    for (int k = 0; k < n_pick && !rc; k++) {
        const cJSON *e = cJSON_GetArrayItem(examples, pick[k]);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "input"), *tg = cJSON_GetObjectItemCaseSensitive(e, "target");
        if (!cJSON_IsString(in) || !cJSON_IsString(tg) || !*strip_left(tg->valuestring)) {
            rc = rp_fail(err, "%s: example %d needs a string \"input\" and a non-empty string \"target\"", file, pick[k]);
            break;
        }
        int mc = option_letter(tg->valuestring) != 0;
        const char *ask = mc ? "\nAnswer with the letter of the right option in parentheses, e.g. (A)."
                             : "\nGive only the final answer.";
        probe_item *it = add_item(p);
        char id[16];
        snprintf(id, sizeof id, "%d", pick[k]);
        it->id = rp_strdup(id);
        it->prompt = rp_malloc(strlen(in->valuestring) + strlen(ask) + 1);
        strcat(strcpy(it->prompt, in->valuestring), ask);
        it->answer = rp_strdup(tg->valuestring);
        for (const char *l = in->valuestring; mc && l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
            if (l[0] == '(' && l[1] >= 'A' && l[1] <= 'Z' && l[2] == ')') {
                it->options = rp_realloc(it->options, sizeof *it->options * (size_t)(it->n_options + 1));
                char opt[4] = {'(', l[1], ')', 0};
                it->options[it->n_options++] = rp_strdup(opt);
            }
    }
    free(pick);
    cJSON_Delete(owned), cJSON_Delete(root), free(text);
    return rc;
}

// One JSON object per line; blank lines are skipped; a bad line is an error naming its number.
static int load_jsonl(probe *p, const char *file, int mc, rp_err *err) {
    size_t len;
    int *lines, k = 0, rc = 0;
    char *text = read_probe_file(p, file, &len, err);
    cJSON *all = text ? jsonl_parse(text, len, file, &lines, err) : NULL;
    free(text);
    if (!all) return -1;
    for (cJSON *o = all->child; o && !rc; o = o->next, k++) {
        char what[600];
        snprintf(what, sizeof what, "%s line %d", file, lines[k]);
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "prompt"), *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        probe_item it = {0};
        if (!cJSON_IsString(q)) rc = rp_fail(err, "%s: needs a string \"prompt\"", what);
        else if (mc) {
            const cJSON *opts = cJSON_GetObjectItemCaseSensitive(o, "options");
            int n = cJSON_IsArray(opts) ? cJSON_GetArraySize(opts) : 0;
            if (n < 2 || !cJSON_IsNumber(a) || a->valueint < 0 || a->valueint >= n || a->valuedouble != a->valueint)
                rc = rp_fail(err, "%s: needs \"options\" (at least 2 strings) and \"answer\", the index of the right one", what);
            for (int k = 0; !rc && k < n; k++)
                if (!cJSON_IsString(cJSON_GetArrayItem(opts, k))) rc = rp_fail(err, "%s: option %d is not a string", what, k);
            if (!rc) {
                it.options = rp_calloc((size_t)n, sizeof *it.options);
                it.n_options = n;
                for (int k = 0; k < n; k++) it.options[k] = rp_strdup(cJSON_GetArrayItem(opts, k)->valuestring);
                char ans[16];
                snprintf(ans, sizeof ans, "%d", a->valueint);
                it.answer = rp_strdup(ans);
            }
        } else {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "match");
            const char *ms = cJSON_IsString(m) ? m->valuestring : "exact";
            if (!cJSON_IsString(a)) rc = rp_fail(err, "%s: needs a string \"answer\"", what);
            else if (!strcmp(ms, "exact")) it.match = MATCH_EXACT;
            else if (!strcmp(ms, "numeric")) it.match = MATCH_NUMERIC;
            else if (!strcmp(ms, "regex")) {
                int code;
                PCRE2_SIZE off;
                pcre2_code *re = pcre2_compile((PCRE2_SPTR)a->valuestring, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
                if (!re) rc = rp_fail(err, "%s: \"answer\" is not a valid regex (at offset %zu)", what, (size_t)off);
                pcre2_code_free(re);
                it.match = MATCH_REGEX;
            } else rc = rp_fail(err, "%s: \"match\" must be exact, numeric or regex, not '%s'", what, ms);
            if (!rc) it.answer = rp_strdup(a->valuestring);
            if (!rc && !strcmp(ms, "numeric")) {
                char *end;
                strtod(a->valuestring, &end);
                if (end == a->valuestring) rc = rp_fail(err, "%s: a numeric \"answer\" must be a number", what);
            }
        }
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "max_tokens");
        if (!rc && mt && !mc && (!cJSON_IsNumber(mt) || mt->valuedouble != (int)mt->valuedouble || mt->valuedouble < 1 ||
                                 mt->valuedouble > 1 << 20))
            rc = rp_fail(err, "%s: \"max_tokens\" must be an integer from 1 to %d", what, 1 << 20);
        if (!rc && mt && !mc) it.max_new = (int)mt->valuedouble;
        if (!rc) {
            it.id = id_of(p->n_items);
            it.prompt = rp_strdup(q->valuestring);
            *add_item(p) = it;
        } else free(it.answer), free(it.options);
    }
    cJSON_Delete(all), free(lines);
    if (!rc && p->n_items == 0) rc = rp_fail(err, "%s: no items", file);
    return rc;
}

static void item_free(probe_item *it) {
    free(it->id), free(it->prompt), free(it->answer);
    for (int k = 0; k < it->n_options; k++) free(it->options[k]);
    free(it->options);
    for (int k = 0; k < 4; k++) free(it->emotions[k]);
}

int probe_load(probe *p, const char *spec, int max_items, int n_generate, unsigned seed, rp_err *err) {
    memset(p, 0, sizeof *p);
    const char *colon = strchr(spec, ':');
    size_t kl = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *file = colon ? colon + 1 : NULL;
    int rc;
    if (snprintf(p->name, sizeof p->name, "%s", spec) >= (int)sizeof p->name)
        return rp_fail(err, "--probe: the spec is %zu bytes, more than the %d a probe's name holds", strlen(spec), PROBE_NAME_MAX - 1);
    if (kl == 4 && !strncmp(spec, "math", 4)) {
        p->kind = PROBE_MATH, p->max_new = 64;
        rc = file ? load_math_file(p, file, err) : (generate_math(p, n_generate, seed), 0);
    } else if (kl == 5 && !strncmp(spec, "arith", 5)) {
        if (file) return rp_fail(err, "--probe arith: generated only (no file)");
        p->kind = PROBE_ARITH, p->max_new = 12;
        generate_arith(p, n_generate, seed);
        rc = 0;
    } else if (kl == 2 && !strncmp(spec, "eq", 2)) {
        p->kind = PROBE_EQ, p->max_new = 96;
        rc = file ? load_eq_file(p, file, err) : rp_fail(err, "--probe eq needs a file: eq:FILE");
    } else if (kl == 2 && !strncmp(spec, "mc", 2)) {
        p->kind = PROBE_MC, p->max_new = 0;
        rc = file ? load_jsonl(p, file, 1, err) : rp_fail(err, "--probe mc needs a file: mc:FILE");
    } else if (kl == 5 && !strncmp(spec, "jsonl", 5)) {
        p->kind = PROBE_JSONL, p->max_new = 64;
        rc = file ? load_jsonl(p, file, 0, err) : rp_fail(err, "--probe jsonl needs a file: jsonl:FILE");
    } else if (kl == 3 && !strncmp(spec, "bbh", 3)) {
        p->kind = PROBE_BBH, p->max_new = 48;
        rc = file ? load_bbh(p, file, max_items, seed, err) : rp_fail(err, "--probe bbh needs a task file: bbh:FILE");
    } else rc = rp_fail(err, "--probe %s: unknown kind (math, eq, mc, jsonl, arith, bbh)", spec);
    if (!rc && p->n_items == 0) rc = rp_fail(err, "--probe %s: no items", spec);
    if (rc) {
        probe_free(p);
        return -1;
    }
    p->n_available = p->n_items;
    if (max_items > 0 && p->n_items > max_items) {
        for (int i = max_items; i < p->n_items; i++) item_free(&p->items[i]);
        p->n_items = max_items;
    }
    return 0;
}

void probe_set_max_new(probe *p, int max_new) {
    if (p->kind != PROBE_MC && !p->loglik) p->max_new = max_new;
}

void probe_free(probe *p) {
    for (int i = 0; i < p->n_items; i++) item_free(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof *p);
}

int probe_use_loglik(probe *p, rp_err *err) {
    if (p->kind == PROBE_MC) return 0;
    if (p->kind == PROBE_EQ) return rp_fail(err, "--score loglik: %s has no reference answer text (EQ-Bench scores emotions)", p->name);
    for (int i = 0; i < p->n_items; i++)
        if (p->kind == PROBE_JSONL && p->items[i].match == MATCH_REGEX)
            return rp_fail(err, "--score loglik: %s item %s is matched by a regex, which has no text to score", p->name, p->items[i].id);
    // BBH's multiple-choice tasks: the option letters by log-likelihood (an mc view of the same items)
    int all_mc = p->kind == PROBE_BBH;
    for (int i = 0; i < p->n_items && all_mc; i++) {
        const probe_item *it = &p->items[i];
        int right = -1;
        for (int o = 0; o < it->n_options; o++)
            if (!strcmp(it->options[o], it->answer)) right = o;
        all_mc = right >= 0 && it->n_options >= 2;
    }
    char name[sizeof p->name];
    int n = snprintf(name, sizeof name, "loglik:%s", p->name);
    if (all_mc) {
        if (n >= (int)sizeof name) return rp_fail(err, "--score loglik: the probe name '%s' is too long", p->name);
        for (int i = 0; i < p->n_items; i++) {   // the answer becomes the right option's index, as mc has it
            probe_item *it = &p->items[i];
            for (int o = 0; o < it->n_options; o++)
                if (!strcmp(it->options[o], it->answer)) {
                    char idx[16];
                    snprintf(idx, sizeof idx, "%d", o);
                    free(it->answer);
                    it->answer = rp_strdup(idx);
                    break;
                }
        }
        memcpy(p->name, name, sizeof name);
        p->kind = PROBE_MC, p->max_new = 0;
        return 0;
    }
    if (n >= (int)sizeof name) return rp_fail(err, "--score loglik: the probe name '%s' is too long", p->name);
    memcpy(p->name, name, sizeof name);
    p->loglik = 1;
    return 0;
}

int probe_use_acceptance(probe *p, const char *target, int k, int timed, rp_err *err) {
    if (p->kind == PROBE_MC) return rp_fail(err, "--score acceptance: %s is multiple choice, scored without a reply to draft", p->name);
    char name[sizeof p->name];
    int n = snprintf(name, sizeof name, "accept[%s,%d%s]:%s", target, k, timed ? ",timed" : "", p->name);
    if (n >= (int)sizeof name) return rp_fail(err, "--score acceptance: the probe name '%s' is too long", p->name);
    memcpy(p->name, name, sizeof name);
    p->acceptance = 1;
    return 0;
}

void probe_describe(const probe *p, char *out, size_t cap) {
    uint64_t h = FINGERPRINT_SEED;
    int head[4] = {(int)p->kind, p->max_new, p->loglik, p->n_items};
    h = fingerprint_bytes(h, head, sizeof head);
    if (p->acceptance) h = fingerprint_bytes(h, &p->acceptance, sizeof p->acceptance);   // (absent: the old fingerprint)
    for (int i = 0; i < p->n_items; i++) {
        const probe_item *it = &p->items[i];
        h = fingerprint_str(fingerprint_str(fingerprint_str(h, it->id), it->prompt), it->answer);
        h = fingerprint_bytes(h, &it->match, sizeof it->match);
        for (int o = 0; o < it->n_options; o++) h = fingerprint_str(h, it->options[o]);
        for (int e = 0; e < 4; e++) h = fingerprint_bytes(fingerprint_str(h, it->emotions[e]), &it->ref[e], sizeof it->ref[e]);
        if (it->max_new) h = fingerprint_bytes(h, &it->max_new, sizeof it->max_new);   // (absent: the old fingerprint)
    }
    snprintf(out, cap, "%d items, fingerprint %016llx", p->n_items, (unsigned long long)h);
}
