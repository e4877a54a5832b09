// The server's HTTP side: libmicrohttpd with a thread per connection, so that a generation request may block its
// own thread while the engine works; disconnects are seen by peeking at the socket while waiting.
#include "tools/serve/serve_http.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/common/stats.h"

#define WAIT_MS 200            // how often a waiting request looks for a gone client
#define KEEPALIVE_S 10.0       // an SSE comment after this long without data

struct serve_http {
    struct MHD_Daemon *daemon;
    char *api_key;
    char *metrics_key;   // --metrics-key: /metrics asks for it (NULL: /metrics is open, as vLLM's is)
    int access_log;      // a line on stderr per request (not --quiet)
    int port;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int ready, draining, in_flight;   // in_flight: generation requests between submission and their last byte
    uint64_t rng;
    serve_engine *engine;
    const serve_context *sc;
    serve_metrics *met;
    const char *model_dir;
    long started;
};

static uint64_t next_random(serve_http *h) {   // splitmix64, for request ids and unseeded requests' seeds
    pthread_mutex_lock(&h->mu);
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull);
    pthread_mutex_unlock(&h->mu);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// --- plain responses -------------------------------------------------------------------------------------------------

// The status of the response this thread queued last: a connection's handler runs on its own thread
// (MHD_USE_THREAD_PER_CONNECTION) and queues its response before it returns, so on_request reads it for the access log.
static _Thread_local int queued_status;

static enum MHD_Result queue(struct MHD_Connection *c, int status, struct MHD_Response *resp) {
    queued_status = status;
    return MHD_queue_response(c, (unsigned)status, resp);
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type, char *text, const char *retry_after) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", type);
    if (retry_after) MHD_add_response_header(resp, "Retry-After", retry_after);
    enum MHD_Result rc = queue(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, cJSON *body) {
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return send_text(c, status, "application/json", text, NULL);
}

static const char *error_type(int status) {
    switch (status) {
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413: return "RequestEntityTooLarge";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

static cJSON *error_body(const api_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", error_type(e->status));
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    cJSON_AddNumberToObject(err, "code", e->status);
    return root;
}

static enum MHD_Result send_error(serve_http *h, struct MHD_Connection *c, const api_error *e) {
    pthread_mutex_lock(&h->mu);   // the metrics exist once the model is loaded
    serve_metrics *met = h->met;
    pthread_mutex_unlock(&h->mu);
    if (met) serve_metrics_add(met, &met->requests_error, 1);
    cJSON *body = error_body(e);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return send_text(c, e->status, "application/json", text, e->status == 503 ? "1" : NULL);
}

static enum MHD_Result fail(serve_http *h, struct MHD_Connection *c, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result fail(serve_http *h, struct MHD_Connection *c, int status, const char *param, const char *fmt, ...) {
    api_error e = {.status = status};
    snprintf(e.param, sizeof e.param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return send_error(h, c, &e);
}

static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// --- token strings and logprobs ---------------------------------------------------------------------------------------

// A token's text where it stands: after the ids before it (context), special tokens written out. Read alone, a
// SentencePiece token would lose its leading space ("was" for " was").
static char *token_text(const serve_http *h, const int *context, int n_context, int id) {
    char *s;
    size_t len;
    rp_err err;
    if (tokenizer_decode_after(h->sc->tok, context, n_context, &id, 1, 0, &s, &len, &err)) return rp_strdup("");
    return s;
}

// How many bytes a token adds to the returned text (special tokens skipped, as the text skips them): 0 for the first
// bytes of a character split over byte tokens, the whole character for the token that completes it.
static size_t token_visible_bytes(const serve_http *h, const int *context, int n_context, int id) {
    char *s;
    size_t len;
    rp_err err;
    if (tokenizer_decode_after(h->sc->tok, context, n_context, &id, 1, 1, &s, &len, &err)) return 0;
    if (tokenizer_text_incomplete(s, len)) len = 0;   // held back until a later token completes it
    free(s);
    return len;
}

static void add_top(cJSON *dict, const serve_http *h, const int *context, int n_context, int id, double lp) {
    char *s = token_text(h, context, n_context, id);
    if (!cJSON_GetObjectItemCaseSensitive(dict, s)) cJSON_AddNumberToObject(dict, s, lp);
    free(s);
}

// One entry of a completion's logprobs: token (its text after context, the ids before it), its logprob (null for
// the prompt's first), the `logprobs` most likely tokens with the argmax always among them, and the chosen token;
// text_offset is where the token's text starts in the returned text (*offset, advanced past it; at most text_len).
static void completion_lp_entry(cJSON *lp, const serve_http *h, const int *context, int n_context, const serve_token *t,
                                int k, int first, size_t *offset, size_t text_len) {
    char *s = token_text(h, context, n_context, t->id);
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "tokens"), cJSON_CreateString(s));
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "text_offset"), cJSON_CreateNumber((double)(*offset < text_len ? *offset : text_len)));
    *offset += token_visible_bytes(h, context, n_context, t->id);
    free(s);
    if (first) {
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "token_logprobs"), cJSON_CreateNull());
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "top_logprobs"), cJSON_CreateNull());
        return;
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "token_logprobs"), cJSON_CreateNumber(t->logprob));
    cJSON *dict = cJSON_CreateObject();
    for (int j = 0; j < t->n_top && j < (k > 1 ? k : 1); j++) add_top(dict, h, context, n_context, t->top_id[j], t->top_logprob[j]);
    add_top(dict, h, context, n_context, t->id, t->logprob);
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "top_logprobs"), dict);
}

static cJSON *completion_lp_new(void) {
    cJSON *lp = cJSON_CreateObject();
    cJSON_AddArrayToObject(lp, "tokens");
    cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON_AddArrayToObject(lp, "text_offset");
    return lp;
}

static cJSON *bytes_of(const char *s) {
    cJSON *b = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cJSON_AddItemToArray(b, cJSON_CreateNumber(*p));
    return b;
}

static cJSON *chat_lp_entry(const serve_http *h, const int *context, int n_context, const serve_token *t, int k) {
    cJSON *o = cJSON_CreateObject();
    char *s = token_text(h, context, n_context, t->id);
    cJSON_AddStringToObject(o, "token", s);
    cJSON_AddNumberToObject(o, "logprob", t->logprob);
    cJSON_AddItemToObject(o, "bytes", bytes_of(s));
    free(s);
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    for (int j = 0; j < t->n_top && j < k; j++) {
        cJSON *x = cJSON_CreateObject();
        char *ts = token_text(h, context, n_context, t->top_id[j]);
        cJSON_AddStringToObject(x, "token", ts);
        cJSON_AddNumberToObject(x, "logprob", t->top_logprob[j]);
        cJSON_AddItemToObject(x, "bytes", bytes_of(ts));
        free(ts);
        cJSON_AddItemToArray(tops, x);
    }
    return o;
}

static const char *finish_name(finish_reason f) {
    return f == FINISH_STOP ? "stop" : f == FINISH_LENGTH ? "length" : f == FINISH_ABORT ? "abort" : "error";
}

// --- generation --------------------------------------------------------------------------------------------------

// What the access log says of a request beyond its method and path, filled in as it is answered.
typedef struct {
    char schedule[96];                     // a generation's layer_schedule
    long prompt_tokens, completion_tokens;  // -1: not a generation
} access_entry;

// A request's text for the log: printable ASCII, at most cap - 1 bytes ("..." where cut).
static void loggable(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++) out[n++] = *s > 32 && *s < 127 && *s != '"' ? *s : '?';
    out[n] = 0;
    if (s && *s && cap > 4) memcpy(out + cap - 4, "...", 4);
}

typedef struct {
    serve_http *h;
    struct MHD_Connection *conn;
    access_entry *log;
    completion_request cr;
    gen_request **reqs;   // (n_reqs) prompt p, choice c at p * cr.n + c
    int n_reqs;
    char id[48];
    long created;
    // streaming
    int *sent_tokens, *finish_sent, *head_sent;
    size_t *sent_text;
    int closing;          // the final chunks are out
    char *out;
    size_t out_len, out_pos, out_cap;
    double last_write;
} generation;

static void generation_free(generation *g) {
    if (!g) return;
    for (int i = 0; i < g->n_reqs; i++) gen_request_release(g->h->engine, g->reqs[i]);
    free(g->reqs);
    free(g->sent_tokens), free(g->finish_sent), free(g->head_sent), free(g->sent_text), free(g->out);
    completion_request_free(&g->cr);
    free(g);
}

static gen_request *make_request(serve_http *h, const completion_request *cr, int p, int choice) {
    gen_request *r = gen_request_new();
    r->n_prompt = cr->n_prompt[p];
    r->prompt = rp_malloc(sizeof(int) * (size_t)r->n_prompt);
    memcpy(r->prompt, cr->prompts[p], sizeof(int) * (size_t)r->n_prompt);
    schedule_copy(&r->sched, &cr->sched);
    if (cr->draft.n_visits) schedule_copy(&r->draft_sched, &cr->draft);
    r->draft_tokens = h->sc->draft_tokens;
    r->sampling = cr->sampling;
    // a seeded request's choice c draws from seed + c, so that its text is the same alone or under load
    r->sampling.seed = cr->seed_given ? cr->sampling.seed + (uint64_t)choice : next_random(h) % 2147483648ull;
    r->max_tokens = cr->max_tokens;
    r->logprobs = cr->logprobs;
    r->prompt_logprobs = cr->echo && cr->logprobs >= 0;
    r->ignore_eos = cr->ignore_eos;
    r->extra_eos = cr->extra_eos;
    for (int i = 0; i < cr->n_stops; i++) r->stops[r->n_stops++] = rp_strdup(cr->stops[i]);
    if (cr->n_bias) {
        r->n_bias = cr->n_bias;
        r->bias_id = rp_malloc(sizeof(int) * (size_t)cr->n_bias);
        r->bias = rp_malloc(sizeof(float) * (size_t)cr->n_bias);
        memcpy(r->bias_id, cr->bias_id, sizeof(int) * (size_t)cr->n_bias);
        memcpy(r->bias, cr->bias, sizeof(float) * (size_t)cr->n_bias);
    }
    return r;
}

static int all_finished(const generation *g) {
    for (int i = 0; i < g->n_reqs; i++)
        if (g->reqs[i]->finish == FINISH_NONE) return 0;
    return 1;
}

static char *prompt_text(const generation *g, int p) {
    if (g->cr.prompt_text[p]) return rp_strdup(g->cr.prompt_text[p]);
    char *s;
    size_t len;
    rp_err err;
    if (tokenizer_decode(g->h->sc->tok, g->cr.prompts[p], g->cr.n_prompt[p], 0, &s, &len, &err)) return rp_strdup("");
    return s;
}

static void count_tokens(const generation *g, long *prompt, long *completion) {
    *prompt = *completion = 0;
    for (int p = 0; p < g->cr.n_prompts; p++) *prompt += g->cr.n_prompt[p];
    for (int i = 0; i < g->n_reqs; i++) *completion += g->reqs[i]->n_generated;
}

static cJSON *usage_of(const generation *g) {
    long prompt, completion;
    count_tokens(g, &prompt, &completion);
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + completion));
    return u;
}

static cJSON *response_head(const generation *g, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", g->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)g->created);
    cJSON_AddStringToObject(root, "model", g->h->sc->model_name);
    cJSON_AddStringToObject(root, "layer_schedule", g->cr.schedule_text);
    if (g->cr.draft_text) cJSON_AddStringToObject(root, "draft_schedule", g->cr.draft_text);
    return root;
}

// The whole response of a finished generation (under the engine's lock).
static cJSON *full_response(const generation *g) {
    const serve_http *h = g->h;
    cJSON *root = response_head(g, g->cr.chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < g->n_reqs; i++) {
        const gen_request *r = g->reqs[i];
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        if (g->cr.chat) {
            cJSON *m = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", r->text.text);
            if (r->logprobs >= 0) {
                cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs"), *content = cJSON_AddArrayToObject(lp, "content");
                for (int t = 0; t < r->n_out; t++)
                    cJSON_AddItemToArray(content, chat_lp_entry(h, r->ids, r->n_prompt + t, &r->out[t], r->logprobs));
            } else cJSON_AddNullToObject(ch, "logprobs");
        } else {
            int p = i / g->cr.n;
            char *text = g->cr.echo ? prompt_text(g, p) : rp_strdup("");
            size_t tl = strlen(text);
            text = rp_realloc(text, tl + r->text.len + 1);
            memcpy(text + tl, r->text.text, r->text.len + 1);
            cJSON_AddStringToObject(ch, "text", text);
            free(text);
            if (r->logprobs >= 0) {   // offsets index the returned text: the echoed prompt's tokens, then the reply's
                cJSON *lp = completion_lp_new();
                size_t offset = 0;
                if (g->cr.echo)
                    for (int t = 0; t < r->n_prompt; t++)
                        completion_lp_entry(lp, h, r->prompt, t, &r->prompt_out[t], r->logprobs, t == 0, &offset, tl);
                offset = tl;   // the reply starts after the prompt as returned (a string prompt is returned as given)
                for (int t = 0; t < r->n_out; t++)
                    completion_lp_entry(lp, h, r->ids, r->n_prompt + t, &r->out[t], r->logprobs, 0, &offset, tl + r->text.len);
                cJSON_AddItemToObject(ch, "logprobs", lp);
            } else cJSON_AddNullToObject(ch, "logprobs");
        }
        cJSON_AddStringToObject(ch, "finish_reason", finish_name(r->finish));
        cJSON_AddItemToArray(choices, ch);
    }
    cJSON_AddItemToObject(root, "usage", usage_of(g));
    return root;
}

static void out_put(generation *g, const char *s, size_t n) {
    if (g->out_len + n + 1 > g->out_cap) g->out = rp_realloc(g->out, g->out_cap = 2 * (g->out_len + n + 1));
    memcpy(g->out + g->out_len, s, n);
    g->out_len += n;
}

static void out_event(generation *g, cJSON *data) {
    char *s = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    out_put(g, "data: ", 6);
    out_put(g, s, strlen(s));
    out_put(g, "\n\n", 2);
    free(s);
}

// One chunk of choice i: text (or a chat delta), optional logprobs, finish_reason when it ends.
static cJSON *chunk(const generation *g, int i, const char *text, int role, cJSON *logprobs, const char *finish) {
    cJSON *root = response_head(g, g->cr.chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", i);
    if (g->cr.chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) cJSON_AddStringToObject(d, "content", text);
    } else cJSON_AddStringToObject(ch, "text", text ? text : "");
    if (logprobs) cJSON_AddItemToObject(ch, "logprobs", logprobs);
    else cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
    return root;
}

// Appends the events for whatever is new since the last call (under the engine's lock).
static void collect(generation *g) {
    const serve_http *h = g->h;
    count_tokens(g, &g->log->prompt_tokens, &g->log->completion_tokens);
    for (int i = 0; i < g->n_reqs; i++) {
        gen_request *r = g->reqs[i];
        if (g->finish_sent[i]) continue;
        if (!g->head_sent[i]) {   // chat: the role first; completions with echo: the prompt's text first
            // the role goes with the first token, as vLLM sends it: a client times its first token by the first chunk
            if (g->cr.chat && !r->n_out && r->finish == FINISH_NONE) continue;
            g->head_sent[i] = 1;
            if (g->cr.chat) out_event(g, chunk(g, i, "", 1, NULL, NULL));
            else if (g->cr.echo) {
                char *pt = prompt_text(g, i / g->cr.n);
                out_event(g, chunk(g, i, pt, 0, NULL, NULL));
                free(pt);
            }
        }
        if (r->logprobs >= 0)   // a chunk per token, the newly final text on the last of them
            for (; g->sent_tokens[i] < r->n_out; g->sent_tokens[i]++) {
                const serve_token *t = &r->out[g->sent_tokens[i]];
                int last = g->sent_tokens[i] + 1 == r->n_out;
                char *text = last ? rp_strndup(r->text.text + g->sent_text[i], r->text.committed - g->sent_text[i]) : rp_strdup("");
                if (last) g->sent_text[i] = r->text.committed;
                cJSON *lp;
                if (g->cr.chat) {
                    lp = cJSON_CreateObject();
                    cJSON_AddItemToArray(cJSON_AddArrayToObject(lp, "content"),
                                         chat_lp_entry(h, r->ids, r->n_prompt + g->sent_tokens[i], t, r->logprobs));
                } else {
                    lp = completion_lp_new();
                    size_t offset = g->sent_text[i];
                    completion_lp_entry(lp, h, r->ids, r->n_prompt + g->sent_tokens[i], t, r->logprobs, 0, &offset, (size_t)-1);
                }
                out_event(g, chunk(g, i, text, 0, lp, NULL));
                free(text);
            }
        const char *finish = r->finish != FINISH_NONE && r->finish != FINISH_ERROR ? finish_name(r->finish) : NULL;
        if (r->text.committed > g->sent_text[i]) {   // the last text carries finish_reason, as vLLM's does
            char *text = rp_strndup(r->text.text + g->sent_text[i], r->text.committed - g->sent_text[i]);
            out_event(g, chunk(g, i, text, 0, NULL, finish));
            free(text);
            g->sent_text[i] = r->text.committed;
            if (finish) {
                g->finish_sent[i] = 1;
                continue;
            }
        }
        if (r->finish == FINISH_ERROR) {
            api_error e = {.status = 500};
            snprintf(e.message, sizeof e.message, "%s", r->error);
            out_event(g, error_body(&e));
            g->finish_sent[i] = 1;
        } else if (finish) {
            out_event(g, chunk(g, i, g->cr.chat ? NULL : "", 0, NULL, finish));
            g->finish_sent[i] = 1;
        }
    }
    int done = 1;
    for (int i = 0; i < g->n_reqs; i++) done &= g->finish_sent[i];
    if (done && !g->closing) {
        if (g->cr.include_usage) {
            cJSON *root = response_head(g, g->cr.chat ? "chat.completion.chunk" : "text_completion");
            cJSON_AddArrayToObject(root, "choices");
            cJSON_AddItemToObject(root, "usage", usage_of(g));
            out_event(g, root);
        }
        out_put(g, "data: [DONE]\n\n", 14);
        g->closing = 1;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    generation *g = cls;
    for (;;) {
        if (g->out_pos < g->out_len) {
            size_t n = g->out_len - g->out_pos < max ? g->out_len - g->out_pos : max;
            memcpy(buf, g->out + g->out_pos, n);
            g->out_pos += n;
            g->last_write = rp_now_s();
            return (ssize_t)n;
        }
        g->out_len = g->out_pos = 0;
        if (g->closing) return MHD_CONTENT_READER_END_OF_STREAM;
        serve_engine_lock(g->h->engine);
        collect(g);
        if (!g->out_len) {
            serve_engine_wait(g->h->engine, WAIT_MS);
            collect(g);
        }
        serve_engine_unlock(g->h->engine);
        if (!g->out_len) {
            if (client_gone(g->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;   // frees g: the requests are cancelled
            if (rp_now_s() - g->last_write > KEEPALIVE_S) out_put(g, ": keepalive\n\n", 13);
        }
    }
}

static void stream_free(void *cls) { generation_free(cls); }

static enum MHD_Result generate(serve_http *h, struct MHD_Connection *c, const char *body, size_t len, int chat,
                                access_entry *log) {
    generation *g = rp_calloc(1, sizeof *g);
    g->h = h, g->conn = c, g->log = log;
    api_error e;
    if (completion_request_parse(body, len, chat, h->sc, &g->cr, &e)) {
        generation_free(g);
        return send_error(h, c, &e);
    }
    loggable(log->schedule, sizeof log->schedule, g->cr.schedule_text);   // the client's text: no quotes, no newlines
    snprintf(g->id, sizeof g->id, "%s-%016llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)next_random(h));
    g->created = (long)time(NULL);
    g->n_reqs = g->cr.n_prompts * g->cr.n;
    g->reqs = rp_calloc((size_t)g->n_reqs, sizeof *g->reqs);
    for (int p = 0; p < g->cr.n_prompts; p++)
        for (int k = 0; k < g->cr.n; k++) g->reqs[p * g->cr.n + k] = make_request(h, &g->cr, p, k);
    rp_err err;
    int refused = serve_engine_submit(h->engine, g->reqs, g->n_reqs, &err);
    if (refused) {
        generation_free(g);
        return fail(h, c, refused == -2 ? 400 : 503, refused == -2 ? "n" : NULL, "%s", err.msg);
    }
    if (g->cr.stream) {
        int n = g->n_reqs;
        g->sent_tokens = rp_calloc((size_t)n, sizeof(int)), g->finish_sent = rp_calloc((size_t)n, sizeof(int));
        g->head_sent = rp_calloc((size_t)n, sizeof(int)), g->sent_text = rp_calloc((size_t)n, sizeof(size_t));
        g->last_write = rp_now_s();
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, g, stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result rc = queue(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    serve_engine_lock(h->engine);
    while (!all_finished(g)) {
        serve_engine_wait(h->engine, WAIT_MS);
        if (all_finished(g)) break;
        serve_engine_unlock(h->engine);
        int gone = client_gone(c);
        serve_engine_lock(h->engine);
        if (gone) {   // nobody to answer: free the KV now
            serve_engine_unlock(h->engine);
            generation_free(g);
            return MHD_NO;
        }
    }
    const gen_request *failed = NULL;
    for (int i = 0; i < g->n_reqs && !failed; i++)
        if (g->reqs[i]->finish == FINISH_ERROR || g->reqs[i]->finish == FINISH_ABORT) failed = g->reqs[i];
    cJSON *resp = failed ? NULL : full_response(g);
    count_tokens(g, &log->prompt_tokens, &log->completion_tokens);
    char why[1024];
    snprintf(why, sizeof why, "%s", failed ? (failed->finish == FINISH_ERROR ? failed->error : "the request was aborted") : "");
    serve_engine_unlock(h->engine);
    generation_free(g);
    if (failed) return fail(h, c, 500, NULL, "%s", why);
    return send_json(c, 200, resp);
}

// --- the other routes ------------------------------------------------------------------------------------------------

static enum MHD_Result tokenize(serve_http *h, struct MHD_Connection *c, const char *body, size_t len) {
    api_error e;
    cJSON *root = serve_parse_body(body, len, &e);
    if (!root) return send_error(h, c, &e);
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt"), *special = cJSON_GetObjectItemCaseSensitive(root, "add_special_tokens");
    if (!cJSON_IsString(prompt) || (special && !cJSON_IsBool(special))) {
        cJSON_Delete(root);
        return fail(h, c, 400, "prompt", "/tokenize takes {\"prompt\": string, \"add_special_tokens\": bool}");
    }
    int *ids, n;
    rp_err err;
    if (tokenizer_encode(h->sc->tok, prompt->valuestring, strlen(prompt->valuestring), special ? cJSON_IsTrue(special) : 1, &ids, &n, &err)) {
        cJSON_Delete(root);
        return fail(h, c, 400, "prompt", "prompt: %s", err.msg);
    }
    cJSON_Delete(root);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "count", n);
    cJSON_AddNumberToObject(out, "max_model_len", h->sc->ctx);
    cJSON_AddItemToObject(out, "tokens", cJSON_CreateIntArray(ids, n));
    cJSON_AddNullToObject(out, "token_strs");
    free(ids);
    return send_json(c, 200, out);
}

static enum MHD_Result detokenize(serve_http *h, struct MHD_Connection *c, const char *body, size_t len) {
    api_error e;
    cJSON *root = serve_parse_body(body, len, &e);
    if (!root) return send_error(h, c, &e);
    cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    int n = cJSON_IsArray(toks) ? cJSON_GetArraySize(toks) : -1, k = 0;
    if (n < 0) {
        cJSON_Delete(root);
        return fail(h, c, 400, "tokens", "/detokenize takes {\"tokens\": [ids]}");
    }
    int *ids = rp_malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (const cJSON *t = toks->child; t; t = t->next, k++)
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= h->sc->cfg->vocab_size) {
            free(ids);
            cJSON_Delete(root);
            return fail(h, c, 400, "tokens", "tokens[%d] is not a token id in [0, %d)", k, h->sc->cfg->vocab_size);
        } else ids[k] = (int)t->valuedouble;
    cJSON_Delete(root);
    char *text;
    size_t tl;
    rp_err err;
    int rc = tokenizer_decode(h->sc->tok, ids, n, 0, &text, &tl, &err);
    free(ids);
    if (rc) return fail(h, c, 400, "tokens", "%s", err.msg);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "prompt", text);
    free(text);
    return send_json(c, 200, out);
}

static enum MHD_Result tokenizer_info(serve_http *h, struct MHD_Connection *c) {
    const serve_context *sc = h->sc;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "tokenizer_class", "PreTrainedTokenizerFast");
    cJSON_AddNumberToObject(out, "vocab_size", tokenizer_vocab_size(sc->tok));
    cJSON_AddNumberToObject(out, "model_max_length", sc->ctx);
    cJSON_AddStringToObject(out, "bos_token", sc->ct->bos);
    cJSON_AddStringToObject(out, "eos_token", sc->ct->eos);
    cJSON_AddNumberToObject(out, "bos_token_id", sc->cfg->bos_id);
    cJSON_AddNumberToObject(out, "eos_token_id", sc->cfg->n_eos ? sc->cfg->eos_ids[0] : -1);
    if (sc->ct->family != CHAT_NONE) cJSON_AddStringToObject(out, "chat_template", chat_family_name(sc->ct->family));
    else cJSON_AddNullToObject(out, "chat_template");
    return send_json(c, 200, out);
}

static enum MHD_Result models(serve_http *h, struct MHD_Connection *c) {
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", h->sc->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)h->started);
    cJSON_AddStringToObject(m, "owned_by", "reprise");
    cJSON_AddStringToObject(m, "root", h->model_dir);
    cJSON_AddNullToObject(m, "parent");
    cJSON_AddNumberToObject(m, "max_model_len", h->sc->ctx);
    cJSON_AddStringToObject(m, "layer_schedule", h->sc->default_schedule);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(out, "data"), m);
    return send_json(c, 200, out);
}

static enum MHD_Result metrics(serve_http *h, struct MHD_Connection *c) {
    serve_gauges g;
    serve_engine_gauges(h->engine, &g);
    return send_text(c, 200, "text/plain; version=0.0.4", serve_metrics_render(h->met, &g, h->sc->model_name), NULL);
}

// Constant-time comparison of the Authorization header with "Bearer KEY" (key NULL: none asked).
static int authorized(struct MHD_Connection *c, const char *key) {
    if (!key) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return 0;
    const char *given = auth + 7;
    size_t n = strlen(key), m = strlen(given);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(key[i] ^ given[i < m ? i : 0]);
    return diff == 0;
}

typedef struct {
    char *body;
    size_t len, cap;
    int too_large, answered;
    int in_flight;   // a generation request: counted in serve_http.in_flight until its response is sent
    // the access log's line: when it came, who asked what, the answer's status and a generation's figures
    double t0;
    char client[64], method[16], path[128];
    int status;
    access_entry log;
} conn_state;

// One line a request, as web servers' access logs and vLLM's: client, "METHOD PATH", status, then a generation's
// schedule and tokens, and the time from its headers to its last byte.
static void access_line(const conn_state *st) {
    char gen[200] = "";
    if (st->log.prompt_tokens >= 0)
        snprintf(gen, sizeof gen, " schedule=%s prompt_tokens=%ld completion_tokens=%ld", st->log.schedule,
                 st->log.prompt_tokens, st->log.completion_tokens);
    fprintf(stderr, "reprise serve: %s \"%s %s\" %d%s %.3f s\n", st->client, st->method, st->path, st->status, gen,
            rp_now_s() - st->t0);
}

static int path_is(const char *url, const char *path) {   // at the root or under /v1
    return !strcmp(url, path) || (!strncmp(url, "/v1", 3) && !strcmp(url + 3, path));
}

static enum MHD_Result route(serve_http *h, struct MHD_Connection *c, const char *url, const char *method, conn_state *st) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    pthread_mutex_lock(&h->mu);
    int ready = h->ready, draining = h->draining;
    pthread_mutex_unlock(&h->mu);
    if (!strcmp(url, "/health")) {
        if (!ready) return fail(h, c, 503, NULL, "the model is loading");
        if (draining) return fail(h, c, 503, NULL, "the server is shutting down");
        return send_text(c, 200, "text/plain", rp_strdup(""), NULL);
    }
    int scrape = !strcmp(url, "/metrics");   // open unless --metrics-key (as vLLM's), and never the API key's
    if (!authorized(c, scrape ? h->metrics_key : h->api_key))
        return fail(h, c, 401, NULL, "Unauthorized: give the server's %s as 'Authorization: Bearer KEY'",
                    scrape ? "metrics key" : "API key");
    if (!ready) return fail(h, c, 503, NULL, "the model is loading");
    if (st->too_large) return fail(h, c, 413, NULL, "the request body is larger than %u bytes", SERVE_MAX_BODY);
    struct {
        const char *path;
        int post;
    } routes[] = {{"/v1/completions", 1}, {"/v1/chat/completions", 1}, {"/v1/models", 0}, {"/metrics", 0},
                  {"/tokenize", 1},       {"/detokenize", 1},         {"/tokenizer_info", 0}};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        int match = i < 4 ? !strcmp(url, routes[i].path) : path_is(url, routes[i].path);
        if (!match) continue;
        if (routes[i].post ? !post : !get)
            return fail(h, c, 405, NULL, "%s takes %s, not %s", routes[i].path, routes[i].post ? "POST" : "GET", method);
        if (i < 2) {   // a generation: SIGTERM waits for its last byte
            pthread_mutex_lock(&h->mu);
            int refused = h->draining;
            if (!refused) h->in_flight++, st->in_flight = 1;
            pthread_mutex_unlock(&h->mu);
            if (refused) return fail(h, c, 503, NULL, "the server is shutting down");
        }
        switch (i) {
        case 0: return generate(h, c, st->body ? st->body : "", st->len, 0, &st->log);
        case 1: return generate(h, c, st->body ? st->body : "", st->len, 1, &st->log);
        case 2: return models(h, c);
        case 3: return metrics(h, c);
        case 4: return tokenize(h, c, st->body ? st->body : "", st->len);
        case 5: return detokenize(h, c, st->body ? st->body : "", st->len);
        default: return tokenizer_info(h, c);
        }
    }
    return fail(h, c, 404, NULL, "no route %s %s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    serve_http *h = cls;
    conn_state *st = *con_cls;
    if (!st) {   // the headers are in; the body (if any) comes next
        st = rp_calloc(1, sizeof *st);
        *con_cls = st;
        st->t0 = rp_now_s(), st->log.prompt_tokens = -1;
        loggable(st->method, sizeof st->method, method), loggable(st->path, sizeof st->path, url);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char host[64] = "-";
        if (ci && ci->client_addr)
            getnameinfo(ci->client_addr, ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                        host, sizeof host, NULL, 0, NI_NUMERICHOST);
        snprintf(st->client, sizeof st->client, "%s", host);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > SERVE_MAX_BODY) {   // refused before reading it
            st->too_large = st->answered = 1;
            enum MHD_Result rc = fail(h, c, 413, NULL, "the request body has %s bytes, more than the %u allowed", cl, SERVE_MAX_BODY);
            st->status = queued_status;
            return rc;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->answered && !st->too_large) {
            if (st->len + *upload_size > SERVE_MAX_BODY) st->too_large = 1;
            else {
                if (st->len + *upload_size + 1 > st->cap) st->body = rp_realloc(st->body, st->cap = 2 * (st->len + *upload_size + 1));
                memcpy(st->body + st->len, upload, *upload_size);
                st->len += *upload_size;
                st->body[st->len] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->answered) return MHD_YES;
    st->answered = 1;
    queued_status = 0;
    enum MHD_Result rc = route(h, c, url, method, st);
    st->status = queued_status;   // 0: nothing was answered (a client gone mid-generation)
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)c, (void)why;
    serve_http *h = cls;
    conn_state *st = *con_cls;
    if (st && st->in_flight) {
        pthread_mutex_lock(&h->mu);
        if (--h->in_flight == 0) pthread_cond_broadcast(&h->idle);
        pthread_mutex_unlock(&h->mu);
    }
    if (st && h->access_log) access_line(st);
    if (st) free(st->body), free(st);
    *con_cls = NULL;
}

serve_http *serve_http_start(const char *host, int port, const char *api_key, const char *metrics_key, int access_log,
                             rp_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai) {
        rp_fail(err, "--host %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    // the listening socket is made here, not by libmicrohttpd, so a failure says why (errno: in use, no such address)
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
        int e = errno;
        rp_fail(err, "cannot listen on %s:%d: %s%s", host, port, strerror(e),
                e == EADDRINUSE ? " (another server has that port: stop it, or choose another --port)"
                : e == EADDRNOTAVAIL ? " (not an address of this machine: --host 0.0.0.0 listens on all)" : "");
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    serve_http *h = rp_calloc(1, sizeof *h);
    h->api_key = api_key ? rp_strdup(api_key) : NULL;
    h->metrics_key = metrics_key ? rp_strdup(metrics_key) : NULL;
    h->access_log = access_log;
    h->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    h->started = (long)time(NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT, 1000u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        rp_fail(err, "cannot serve on %s:%d: libmicrohttpd would not start (%s)", host, port, strerror(errno));
        close(fd);
        serve_http_stop(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : port;
    return h;
}

int serve_http_port(const serve_http *h) { return h->port; }

void serve_http_ready(serve_http *h, serve_engine *e, const serve_context *sc, serve_metrics *met, const char *model_dir) {
    pthread_mutex_lock(&h->mu);
    h->engine = e, h->sc = sc, h->met = met, h->model_dir = model_dir;
    h->ready = 1;
    pthread_mutex_unlock(&h->mu);
}

void serve_http_drain(serve_http *h) {
    pthread_mutex_lock(&h->mu);
    h->draining = 1;
    while (h->in_flight > 0) pthread_cond_wait(&h->idle, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    if (h->daemon) MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h->api_key), free(h->metrics_key);
    free(h);
}
