// `reprise bench --serve URL`: requests arrive at vLLM's benchmark_serving times (gamma-distributed gaps; Poisson at
// burstiness 1), wait for a slot under --max-concurrency, and stream from the server; one thread drives every
// connection through libcurl's multi interface, timing each chunk as it arrives. The figures: bench_serve_report.c.
#include "tools/bench/bench_serve.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tools/common/stats.h"
#include "loader/json_file.h"
#include "loader/tokenizer.h"

// --- the requests: prompts, lengths and arrival times, all from --seed ----------------------------------------------

typedef struct {
    int *ids, n_ids;   // a token-id prompt (a jsonl line's list; the random dataset's are drawn when sent)
    char *text;        // a text prompt (a jsonl line's string)
    int max_tokens;
    int line;          // its line in the jsonl file
    uint64_t seed;     // the random dataset: n_ids ids drawn from this seed, below vocab, when the request is sent
    int vocab;
} prompt_spec;

static uint64_t next_u64(uint64_t *s) {   // splitmix64
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) {   // in (0, 1)
    return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double gamma_sample(uint64_t *s, double shape) {   // Marsaglia and Tsang; shape < 1 by the boost U^(1/shape)
    if (shape < 1) return gamma_sample(s, shape + 1) * pow(uniform01(s), 1 / shape);
    double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = sqrt(-2 * log(uniform01(s))) * cos(2 * M_PI * uniform01(s)), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        if (log(uniform01(s)) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

// Request i is sent at arrival[i] seconds (or later, when --max-concurrency holds it back): the first at once, then
// gaps of mean 1/rate drawn from a gamma distribution of shape `burstiness` (vLLM's get_request).
static void arrival_times(const serve_bench_opts *o, uint64_t *rng, double *arrival, int n) {
    double t = 0;
    for (int i = 0; i < n; i++) {
        arrival[i] = t;
        if (!isinf(o->request_rate)) t += gamma_sample(rng, o->burstiness) / (o->request_rate * o->burstiness);
    }
}

static int length_near(uint64_t *rng, int len, double ratio) {   // uniform in [len(1-r), len(1+r)], at least 1
    int lo = (int)floor(len * (1 - ratio)), hi = (int)floor(len * (1 + ratio));
    if (lo < 1) lo = 1;
    if (hi < lo) hi = lo;
    return lo + (int)(next_u64(rng) % (uint64_t)(hi - lo + 1));
}

// Lengths now, token ids when sent (a million prompts of 1024 ids would be 4 GB held for the whole run).
static void random_prompts(const serve_bench_opts *o, uint64_t *rng, int vocab, prompt_spec *p, int n) {
    for (int i = 0; i < n; i++) {
        p[i].n_ids = length_near(rng, o->random_input_len, o->random_range_ratio);
        p[i].max_tokens = length_near(rng, o->random_output_len, o->random_range_ratio);
        p[i].seed = next_u64(rng), p[i].vocab = vocab;
    }
}

// A JSONL file, a request per line: {"prompt": "text" or [ids], "output_len": N (optional; also "max_tokens")}.
// Reads up to n lines into p; the number read, or -1. (Fewer lines than prompts: the caller uses them again.)
static int jsonl_prompts(const serve_bench_opts *o, prompt_spec *p, int n, rp_err *err) {
    size_t len;
    char *data = read_file_all(o->dataset_path, READ_LIMIT_DATASET, "dataset", &len, err);
    if (!data) return -1;
    int have = 0, line_no = 0, rc = 0;
    for (char *line = data, *next; line && *line && have < n && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        cJSON *j = cJSON_Parse(line);
        cJSON *pr = j ? cJSON_GetObjectItem(j, "prompt") : NULL;
        cJSON *ol = j ? cJSON_GetObjectItem(j, "output_len") : NULL;
        if (j && !ol) ol = cJSON_GetObjectItem(j, "max_tokens");
        prompt_spec *s = &p[have];
        s->max_tokens = o->random_output_len;
        if (!cJSON_IsObject(j)) rc = rp_fail(err, "%s:%d: not a JSON object", o->dataset_path, line_no);
        else if (ol && (!cJSON_IsNumber(ol) || ol->valuedouble < 1 || ol->valuedouble > 1e7 ||
                        ol->valuedouble != (int)ol->valuedouble))
            rc = rp_fail(err, "%s:%d: \"output_len\" is not a positive integer", o->dataset_path, line_no);
        else if (cJSON_IsString(pr)) s->text = rp_strdup(pr->valuestring);
        else if (cJSON_IsArray(pr) && cJSON_GetArraySize(pr) > 0) {
            s->n_ids = cJSON_GetArraySize(pr);
            s->ids = rp_malloc((size_t)s->n_ids * sizeof(int));
            int k = 0;
            for (cJSON *e = pr->child; e && !rc; e = e->next, k++) {
                if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 || e->valuedouble != (int)e->valuedouble)
                    rc = rp_fail(err, "%s:%d: \"prompt\" item %d is not a token id", o->dataset_path, line_no, k);
                else s->ids[k] = (int)e->valuedouble;
            }
        } else rc = rp_fail(err, "%s:%d: no \"prompt\" (a string or a list of token ids)", o->dataset_path, line_no);
        if (!rc && ol) s->max_tokens = (int)ol->valuedouble;
        s->line = line_no;
        if (!rc) have++;
        cJSON_Delete(j);
    }
    free(data);
    if (rc) return -1;
    if (!have) return rp_fail(err, "%s: no request in it", o->dataset_path);
    if (have < n)
        fprintf(stderr, "bench: %s holds %d request%s for %d prompts: the lines are used again, in order\n",
                o->dataset_path, have, have == 1 ? "" : "s", n);
    return have;
}

#ifndef REPRISE_HAVE_CURL

int bench_serve(const serve_bench_opts *o) {
    (void)o, (void)arrival_times, (void)random_prompts, (void)jsonl_prompts;
    fprintf(stderr, "reprise bench --serve: this reprise is built without libcurl: install libcurl4-openssl-dev "
                    "(tools/install_deps.sh) and build again\n");
    return 1;
}

#else

#include <curl/curl.h>

#define MAX_STREAM_LINE ((size_t)16 << 20)   // an SSE line longer than this is a broken server
#define MAX_TEXT ((size_t)64 << 20)          // a reply longer than this is a broken server
#define MAX_ERROR_BODY 65536                 // of a failed response, what is kept to name the error

// One request in flight: its connection, what it sent, and the state of reading its event stream.
typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    int chat;
    double start, last;           // when it was sent; when its last chunk came
    int chunks, done;             // chunks that carried choices; [DONE] seen
    int usage_prompt, usage_completion;   // from the usage chunk (-1: none)
    long status;
    char *line;                   // the SSE line being read
    size_t line_len, line_cap;
    char *error_body;             // a non-200 response's body
    size_t error_len;
    size_t text_len, text_cap;
    int itl_cap;
    char curl_error[CURL_ERROR_SIZE];
    serve_result *res;
} live_request;

static void fail_request(live_request *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_request(live_request *q, const char *fmt, ...) {
    if (q->res->error) return;   // the first cause is the one to name
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    q->res->error = rp_strdup(msg);
}

static int grow(void *pp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*(void **)pp, c * elem);
    if (!p) return -1;
    *(void **)pp = p, *cap = c;
    return 0;
}

// A chunk with choices: the first gives TTFT, each later one a gap (vLLM counts every chunk with choices, even one
// whose text is empty, and so does this).
static void on_chunk(live_request *q, const char *text, double t) {
    serve_result *r = q->res;
    if (!q->chunks) r->ttft = t - q->start;
    else {
        size_t cap = (size_t)q->itl_cap;
        if (grow(&r->itl, &cap, (size_t)r->n_itl + 1, sizeof(double))) return fail_request(q, "out of memory");
        q->itl_cap = (int)cap;
        r->itl[r->n_itl++] = t - q->last;
    }
    q->last = t, q->chunks++;
    size_t n = text ? strlen(text) : 0;
    if (q->text_len + n > MAX_TEXT) return fail_request(q, "the reply is longer than %zu MiB", MAX_TEXT >> 20);
    if (grow(&r->text, &q->text_cap, q->text_len + n + 1, 1)) return fail_request(q, "out of memory");
    memcpy(r->text + q->text_len, text ? text : "", n + 1);
    q->text_len += n;
}

// One line of the event stream: "data: {json}", "data: [DONE]", or what SSE lets a server add (comments, fields).
static void on_line(live_request *q, char *s, size_t len, double t) {
    if (len && s[len - 1] == '\r') s[--len] = 0;
    if (q->res->error || strncmp(s, "data:", 5)) return;
    s += 5 + (s[5] == ' ');
    if (!strcmp(s, "[DONE]")) {
        q->done = 1;
        return;
    }
    cJSON *j = cJSON_Parse(s);
    if (!cJSON_IsObject(j)) {
        fail_request(q, "a stream event is not a JSON object: %.120s", s);
        cJSON_Delete(j);
        return;
    }
    cJSON *e = cJSON_GetObjectItem(j, "error");
    if (e && !cJSON_IsNull(e)) {
        cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItem(e, "message") : e;
        fail_request(q, "the server's error mid-stream: %.500s", cJSON_IsString(m) ? m->valuestring : "(no message)");
    }
    cJSON *choices = cJSON_GetObjectItem(j, "choices");
    if (!q->res->error && cJSON_IsArray(choices) && cJSON_GetArraySize(choices) > 0) {
        cJSON *c0 = cJSON_GetArrayItem(choices, 0), *text;
        if (q->chat) {
            cJSON *d = cJSON_GetObjectItem(c0, "delta");
            text = d ? cJSON_GetObjectItem(d, "content") : NULL;
        } else text = cJSON_GetObjectItem(c0, "text");
        on_chunk(q, cJSON_IsString(text) ? text->valuestring : NULL, t);
    }
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    if (cJSON_IsObject(u)) {
        cJSON *pt = cJSON_GetObjectItem(u, "prompt_tokens"), *ct = cJSON_GetObjectItem(u, "completion_tokens");
        if (cJSON_IsNumber(pt)) q->usage_prompt = pt->valueint;
        if (cJSON_IsNumber(ct)) q->usage_completion = ct->valueint;
    }
    cJSON_Delete(j);
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *user) {
    live_request *q = user;
    size_t n = size * nmemb;
    double t = rp_now_s();
    if (!q->status) curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
    if (q->status != 200) {   // keep the start of the body, to name the error
        size_t keep = q->error_len + n > MAX_ERROR_BODY ? MAX_ERROR_BODY - q->error_len : n;
        char *b = rp_realloc(q->error_body, q->error_len + keep + 1);
        if (!b) return 0;
        memcpy(b + q->error_len, data, keep);
        q->error_len += keep;
        b[q->error_len] = 0;
        q->error_body = b;
        return n;
    }
    for (size_t at = 0; at < n;) {
        char *nl = memchr(data + at, '\n', n - at);
        size_t piece = nl ? (size_t)(nl - (data + at)) : n - at;
        if (q->line_len + piece + 1 > MAX_STREAM_LINE) {
            fail_request(q, "a stream line longer than %zu MiB", MAX_STREAM_LINE >> 20);
            return 0;
        }
        if (grow(&q->line, &q->line_cap, q->line_len + piece + 1, 1)) return 0;
        memcpy(q->line + q->line_len, data + at, piece);
        q->line_len += piece;
        q->line[q->line_len] = 0;
        at += piece;
        if (nl) {
            on_line(q, q->line, q->line_len, t);
            q->line_len = 0, at++;
        }
    }
    return n;
}

// The body of a request: token ids or text; the schedule when --schedule was given.
static char *request_body(const serve_bench_opts *o, const char *model, const prompt_spec *p, int schedule, int chat) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", model);
    if (chat) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", p->text);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "messages"), m);
    } else if (p->text) cJSON_AddStringToObject(j, "prompt", p->text);
    else if (p->ids) cJSON_AddItemToObject(j, "prompt", cJSON_CreateIntArray(p->ids, p->n_ids));
    else {   // the random dataset: the ids drawn now, the same every time from the prompt's seed
        int *ids = rp_malloc((size_t)p->n_ids * sizeof(int));
        uint64_t rng = p->seed;
        for (int k = 0; ids && k < p->n_ids; k++) ids[k] = (int)(next_u64(&rng) % (uint64_t)p->vocab);
        if (ids) cJSON_AddItemToObject(j, "prompt", cJSON_CreateIntArray(ids, p->n_ids));
        free(ids);
    }
    cJSON_AddNumberToObject(j, chat ? "max_completion_tokens" : "max_tokens", p->max_tokens);
    cJSON_AddNumberToObject(j, "temperature", o->temperature);
    cJSON_AddTrueToObject(j, "stream");
    cJSON_AddTrueToObject(cJSON_AddObjectToObject(j, "stream_options"), "include_usage");
    if (o->ignore_eos) cJSON_AddTrueToObject(j, "ignore_eos");
    if (schedule >= 0) cJSON_AddStringToObject(j, "layer_schedule", o->schedules[schedule]);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static char *url_of(const char *base, const char *path) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    char *u = rp_malloc(n + strlen(path) + 2);
    sprintf(u, "%.*s%s%s", (int)n, base, path[0] == '/' ? "" : "/", path);
    return u;
}

static struct curl_slist *auth_headers(const serve_bench_opts *o, int json) {
    struct curl_slist *h = NULL;
    if (json) h = curl_slist_append(h, "Content-Type: application/json");
    if (o->api_key) {
        char line[1100];
        snprintf(line, sizeof line, "Authorization: Bearer %.1000s", o->api_key);
        h = curl_slist_append(h, line);
    }
    return h;
}

static void start_request(const serve_bench_opts *o, CURLM *multi, live_request *q, const char *url) {
    q->easy = curl_easy_init();
    q->headers = auth_headers(o, 1);
    q->usage_prompt = q->usage_completion = -1;
    curl_easy_setopt(q->easy, CURLOPT_URL, url);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->headers);
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->curl_error);
    curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)(o->request_timeout_s * 1e3));
    curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    q->start = rp_now_s();
    curl_multi_add_handle(multi, q->easy);
}

// The request's outcome, once its transfer is over.
static void finish_request(live_request *q, CURLcode code, int sent_ids) {
    serve_result *r = q->res;
    if (!q->status) curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
    if (q->line_len && !r->error) on_line(q, q->line, q->line_len, rp_now_s());   // a last line without its newline
    if (code != CURLE_OK && !(q->status && q->status != 200))
        fail_request(q, "%s", q->curl_error[0] ? q->curl_error : curl_easy_strerror(code));
    if (q->status != 200 && q->status) {
        cJSON *j = q->error_body ? cJSON_Parse(q->error_body) : NULL;
        cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
        cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItem(e, "message") : cJSON_IsString(e) ? e : NULL;
        if (!m && j) m = cJSON_GetObjectItem(j, "detail");   // FastAPI's errors
        if (cJSON_IsString(m)) fail_request(q, "HTTP %ld: %.500s", q->status, m->valuestring);
        else fail_request(q, "HTTP %ld: %.200s", q->status, q->error_body ? q->error_body : "");
        cJSON_Delete(j);
    }
    if (!q->chunks) fail_request(q, "no chunk with a token came");
    if (!q->done) fail_request(q, "the stream ended before data: [DONE]");
    r->ok = !r->error;
    r->e2el = q->last - q->start;
    r->prompt_len = q->usage_prompt >= 0 ? q->usage_prompt : sent_ids;
    r->output_len = q->usage_completion >= 0 ? q->usage_completion : q->chunks;
    curl_slist_free_all(q->headers);
    curl_easy_cleanup(q->easy);
    free(q->body), free(q->line), free(q->error_body);
    q->easy = NULL, q->body = q->line = q->error_body = NULL;
}

// A GET that must answer 200 with a JSON object (the model list, the tokenizer's facts). NULL with err set.
static size_t on_get_data(char *data, size_t size, size_t nmemb, void *user) {
    char **buf = user;
    size_t n = size * nmemb, have = *buf ? strlen(*buf) : 0;
    if (have + n > ((size_t)16 << 20)) return 0;
    char *b = rp_realloc(*buf, have + n + 1);
    if (!b) return 0;
    memcpy(b + have, data, n);
    b[have + n] = 0;
    *buf = b;
    return n;
}

static cJSON *get_json(const serve_bench_opts *o, const char *path, rp_err *err) {
    char *url = url_of(o->url, path), *body = NULL, cerr[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    struct curl_slist *h = auth_headers(o, 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_get_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    CURLcode code = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cJSON *j = NULL;
    if (code != CURLE_OK) rp_fail(err, "GET %s: %s", url, cerr[0] ? cerr : curl_easy_strerror(code));
    else if (status != 200) rp_fail(err, "GET %s: HTTP %ld: %.200s", url, status, body ? body : "");
    else if (!cJSON_IsObject(j = cJSON_Parse(body ? body : ""))) {
        rp_fail(err, "GET %s: the answer is not a JSON object", url);
        cJSON_Delete(j), j = NULL;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url), free(body);
    return j;
}

// The model to name in requests: --model, else the first the server lists.
static char *served_model(const serve_bench_opts *o, rp_err *err) {
    if (o->model) return rp_strdup(o->model);
    cJSON *j = get_json(o, "/v1/models", err);
    if (!j) return NULL;
    cJSON *d = cJSON_GetObjectItem(j, "data"), *first = cJSON_IsArray(d) ? cJSON_GetArrayItem(d, 0) : NULL;
    cJSON *id = first ? cJSON_GetObjectItem(first, "id") : NULL;
    char *name = cJSON_IsString(id) ? rp_strdup(id->valuestring) : NULL;
    cJSON_Delete(j);
    if (!name) rp_fail(err, "%s/v1/models lists no model: name one with --model", o->url);
    return name;
}

// The vocabulary the random prompts draw from: -m's tokenizer, else the server's /tokenizer_info.
static int vocab_size(const serve_bench_opts *o, rp_err *err) {
    if (o->model_dir) {
        char *path = path_join(o->model_dir, "tokenizer.json");
        tokenizer *t = tokenizer_load(path, err);
        free(path);
        if (!t) return -1;
        int v = tokenizer_vocab_size(t);
        tokenizer_free(t);
        return v;
    }
    rp_err e2;
    cJSON *j = get_json(o, "/tokenizer_info", &e2);
    cJSON *v = j ? cJSON_GetObjectItem(j, "vocab_size") : NULL;
    int n = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e8 ? v->valueint : -1;
    cJSON_Delete(j);
    if (n < 0)
        return rp_fail(err, "--dataset-name random draws token ids, and the vocabulary size is unknown: the server has "
                            "no /tokenizer_info (%s); give -m DIR, a directory with the model's tokenizer.json",
                       j ? "no vocab_size in it" : e2.msg);
    return n;
}

static int raise_open_files(int want) {   // a socket per request in flight
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r)) return -1;
    rlim_t need = (rlim_t)want + 64;
    if (r.rlim_cur >= need) return 0;
    r.rlim_cur = r.rlim_max == RLIM_INFINITY || r.rlim_max > need ? need : r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
    return r.rlim_cur >= need ? 0 : -1;
}

// Sends requests [0, n) at their arrival times (relative to the call), at most max_concurrency at once, and waits
// for every one; progress on stderr when `progress`. Returns the seconds it took.
static double run_requests(const serve_bench_opts *o, const char *model, const prompt_spec *prompts,
                           const int *prompt_of, const int *schedule_of, const double *arrival, serve_result *res,
                           int n, int progress) {
    int chat = strstr(o->endpoint, "chat/completions") != NULL;
    char *url = url_of(o->url, o->endpoint);
    CURLM *multi = curl_multi_init();
    live_request *live = rp_calloc((size_t)n, sizeof *live);
    int started = 0, running = 0, finished = 0, failed = 0;
    if (!live)
        for (; finished < n; finished++) res[finished].error = rp_strdup("out of memory for the requests in flight");
    double t0 = rp_now_s(), last_report = t0;
    while (finished < n) {
        double now = rp_now_s() - t0;
        while (started < n && arrival[started] <= now && (!o->max_concurrency || running < o->max_concurrency)) {
            live_request *q = &live[started];
            const prompt_spec *p = &prompts[prompt_of[started]];
            q->res = &res[started], q->chat = chat;
            res[started].schedule = schedule_of[started];
            q->body = request_body(o, model, p, schedule_of[started], chat);
            start_request(o, multi, q, url);
            started++, running++;
        }
        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            live_request *q;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            CURLcode code = m->data.result;
            curl_multi_remove_handle(multi, q->easy);
            finish_request(q, code, prompts[prompt_of[q - live]].n_ids);
            running--, finished++, failed += !q->res->ok;
        }
        double t = rp_now_s();
        if (progress && t - last_report >= 5) {
            fprintf(stderr, "bench: %d/%d requests done (%d failed), %d running, %.0f s\n", finished, n, failed, running,
                    t - t0);
            last_report = t;
        }
        if (finished == n) break;
        int wait_ms = 100;   // until the next arrival, or a while
        if (started < n && (!o->max_concurrency || running < o->max_concurrency)) {
            double until = arrival[started] - (t - t0);
            wait_ms = until <= 0 ? 0 : until < 0.1 ? (int)(until * 1e3) : 100;
        }
        curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
    }
    double duration = rp_now_s() - t0;
    curl_multi_cleanup(multi);
    free(live), free(url);
    return duration;
}

static void free_result(serve_result *r) {
    free(r->itl), free(r->text), free(r->error);
    memset(r, 0, sizeof *r);
}

int bench_serve(const serve_bench_opts *o) {
    rp_err err;
    int n = o->num_prompts, n_sched = o->n_schedules ? o->n_schedules : 1;
    int chat = strstr(o->endpoint, "chat/completions") != NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "reprise bench: libcurl failed to start\n");
        return 1;
    }
    if (raise_open_files(o->max_concurrency ? o->max_concurrency : n))
        fprintf(stderr, "bench: the open-file limit is below one socket per request in flight: requests may fail\n");
    // Interleaved, requests pair up over schedules: request i sends prompt i / n_sched with schedule i % n_sched, all
    // in one run. In phases (the default), phase k sends every prompt with schedule k, at the same arrival times:
    // requests k * n .. k * n + n - 1.
    int phases = n_sched > 1 && !o->interleave_schedules, n_prompts = phases ? n : (n + n_sched - 1) / n_sched;
    int n_req = phases ? n * n_sched : n;
    prompt_spec *prompts = calloc((size_t)n_prompts, sizeof *prompts);
    int *prompt_of = malloc((size_t)n_req * sizeof(int)), *schedule_of = malloc((size_t)n_req * sizeof(int));
    double *arrival = malloc((size_t)n_req * sizeof(double));
    serve_result *res = calloc((size_t)n_req, sizeof *res);
    uint64_t rng = o->seed;
    char *model = NULL;
    int rc = 1, vocab = 0, have = n_prompts;
    if (!prompts || !prompt_of || !schedule_of || !arrival || !res) {
        rp_fail(&err, "out of memory for %d requests", n);
        goto fail;
    }
    if (!(model = served_model(o, &err))) goto fail;
    if (!strcmp(o->dataset_name, "random")) {
        if (chat) {
            rp_fail(&err, "--dataset-name random sends token ids, which %s does not take: use --dataset-name jsonl "
                          "with text prompts, or --endpoint /v1/completions", o->endpoint);
            goto fail;
        }
        if ((vocab = vocab_size(o, &err)) < 0) goto fail;
        random_prompts(o, &rng, vocab, prompts, n_prompts);
    } else if ((have = jsonl_prompts(o, prompts, n_prompts, &err)) < 0) goto fail;
    if (chat)
        for (int i = 0; i < have; i++)
            if (!prompts[i].text) {
                rp_fail(&err, "%s:%d: a chat request needs a text prompt, not token ids", o->dataset_path, prompts[i].line);
                goto fail;
            }
    if (phases)
        for (int i = 0; i < n_req; i++) prompt_of[i] = i % n % have, schedule_of[i] = i / n;
    else
        for (int i = 0; i < n; i++) prompt_of[i] = i / n_sched % have, schedule_of[i] = o->n_schedules ? i % n_sched : -1;
    arrival_times(o, &rng, arrival, n);
    for (int i = n; i < n_req; i++) arrival[i] = arrival[i % n];   // every phase at the same times

    // a first request alone, as vLLM sends one: a wrong URL, model or schedule stops here, named
    fprintf(stderr, "bench: a first request alone, to check the setup...\n");
    for (int k = 0; k < n_sched && k < n_req; k++) {
        serve_result probe = {0};
        double zero = 0;
        int first = phases ? k * n : k;
        run_requests(o, model, prompts, &prompt_of[first], &schedule_of[first], &zero, &probe, 1, 0);
        if (!probe.ok) {
            char *url = url_of(o->url, o->endpoint);
            rp_fail(&err, "the first request to %s failed: %s", url, probe.error);
            free(url);
            free_result(&probe);
            goto fail;
        }
        free_result(&probe);
    }
    char rate[32], conc[32];
    snprintf(rate, sizeof rate, isinf(o->request_rate) ? "inf" : "%g/s", o->request_rate);
    snprintf(conc, sizeof conc, o->max_concurrency ? "%d" : "none", o->max_concurrency);
    char *url = url_of(o->url, o->endpoint);
    fprintf(stderr, "bench: %d requests to %s, model %s; rate %s, burstiness %g (%s), max concurrency %s%s\n", n, url,
            model, rate, o->burstiness, o->burstiness == 1 ? "Poisson" : "gamma", conc,
            phases ? "; each schedule in its own phase, on the same prompts at the same times"
            : n_sched > 1 ? "; the schedules interleaved (they share batch steps)" : "");
    free(url);
    serve_summary all, per[BENCH_MAX_LIST];
    double duration = 0;
    if (phases)   // each phase's figures from its own requests over its own duration
        for (int k = 0; k < n_sched; k++) {
            fprintf(stderr, "bench: phase %d of %d: schedule %s\n", k + 1, n_sched, o->schedules[k]);
            double d = run_requests(o, model, prompts, prompt_of + k * n, schedule_of + k * n, arrival + k * n, res + k * n, n, 1);
            serve_summarize(o, res + k * n, n, k, d, &per[k]);
            duration += d;
        }
    else {
        duration = run_requests(o, model, prompts, prompt_of, schedule_of, arrival, res, n, 1);
        for (int k = 0; k < o->n_schedules; k++) serve_summarize(o, res, n, k, duration, &per[k]);
    }
    serve_summarize(o, res, n_req, -1, duration, &all);
    serve_print_summary(o, &all);
    if (o->n_schedules > 1) serve_print_schedules(o, per);
    if (all.failed) {   // the first few distinct causes
        fprintf(stderr, "bench: %d of %d requests failed:\n", all.failed, n_req);
        int shown = 0;
        for (int i = 0; i < n_req && shown < 5; i++) {
            if (res[i].ok) continue;
            int seen = 0;
            for (int k = 0; k < i && !seen; k++) seen = !res[k].ok && !strcmp(res[k].error, res[i].error);
            if (!seen) fprintf(stderr, "  request %d: %s\n", i, res[i].error), shown++;
        }
    }
    rc = 0;
    if (o->save_result) {
        char date[32], path[4096];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);   // vLLM's date format
        if (o->result_filename) snprintf(path, sizeof path, "%s%s%s", o->result_dir ? o->result_dir : "",
                                         o->result_dir ? "/" : "", o->result_filename);
        else {
            const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
            snprintf(rate, sizeof rate, isinf(o->request_rate) ? "inf" : "%g", o->request_rate);
            snprintf(path, sizeof path, "%s%sreprise-%sqps-%s-%s.json", o->result_dir ? o->result_dir : "",
                     o->result_dir ? "/" : "", rate, base, date);
        }
        char *json = serve_result_json(o, model, date, res, n_req, &all, per);
        FILE *f = fopen(path, "w");
        int bad = !f, why = errno;
        if (f) {   // every call made (fclose above all), then any failure counts
            int put = fputs(json, f) < 0, nl = fputc('\n', f) < 0, closed = fclose(f) != 0;
            bad = put || nl || closed;
            why = errno;
        }
        if (bad) {
            fprintf(stderr, "reprise bench: cannot write %s: %s\n", path, strerror(why));
            rc = 1;
        } else fprintf(stderr, "bench: the result is in %s\n", path);
        free(json);
    }
    goto done;
fail:
    fprintf(stderr, "reprise bench: %s\n", err.msg);
done:
    for (int i = 0; prompts && i < n_prompts; i++) free(prompts[i].ids), free(prompts[i].text);
    for (int i = 0; res && i < n_req; i++) free_result(&res[i]);
    free(prompts), free(prompt_of), free(schedule_of), free(arrival), free(res), free(model);
    curl_global_cleanup();
    return rc;
}

#endif
