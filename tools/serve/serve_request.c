// Parsing and checking request bodies: every field's type and range, with messages that name the field.
#include "tools/serve/serve_request.h"
#include "loader/alloc.h"
#include "loader/model_dir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/utf8.h"

int api_fail(api_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

// Deepest nesting of arrays and objects, counted outside strings, stopping early past the limit.
static int too_deep(const char *s, size_t n) {
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') in_string = 1;
        else if (c == '[' || c == '{') {
            if (++depth > SERVE_MAX_DEPTH) return 1;
        } else if (c == ']' || c == '}') depth--;
    }
    return 0;
}

cJSON *serve_parse_body(const char *body, size_t len, api_error *e) {
    if (len > SERVE_MAX_BODY) {
        api_fail(e, 413, NULL, "the request body has %zu bytes, more than the %u allowed", len, SERVE_MAX_BODY);
        return NULL;
    }
    size_t valid = utf8_valid_prefix(body, len);
    if (valid < len) {
        api_fail(e, 400, NULL, "the request body is not valid UTF-8 (at byte %zu)", valid);
        return NULL;
    }
    if (too_deep(body, len)) {
        api_fail(e, 400, NULL, "the request's JSON is nested more than %d levels deep", SERVE_MAX_DEPTH);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        api_fail(e, 400, NULL, "the request body is not valid JSON (at byte %ld)", end ? (long)(end - body) : 0L);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        api_fail(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

// A field, or NULL when absent or null (a client's null means "the default").
static cJSON *field(const cJSON *o, const char *name) {
    cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static int get_int(const cJSON *o, const char *name, long lo, long hi, int *out, api_error *e) {
    cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble))
        return api_fail(e, 400, name, "%s must be an integer", name);
    if (f->valuedouble < lo || f->valuedouble > hi)
        return api_fail(e, 400, name, "%s must be in [%ld, %ld], got %.17g", name, lo, hi, f->valuedouble);
    *out = (int)f->valuedouble;
    return 0;
}

static int get_float(const cJSON *o, const char *name, double lo, double hi, float *out, api_error *e) {
    cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f)) return api_fail(e, 400, name, "%s must be a number", name);
    if (!(f->valuedouble >= lo && f->valuedouble <= hi))
        return api_fail(e, 400, name, "%s must be in [%g, %g], got %.17g", name, lo, hi, f->valuedouble);
    *out = (float)f->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, int *out, api_error *e) {
    cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsBool(f)) return api_fail(e, 400, name, "%s must be true or false", name);
    *out = cJSON_IsTrue(f);
    return 0;
}

static int check_ids(const cJSON *arr, const char *param, int vocab, int **ids, int *n, api_error *e) {
    int count = cJSON_GetArraySize(arr), k = 0;
    *ids = rp_malloc(sizeof(int) * (size_t)(count ? count : 1));
    for (const cJSON *t = arr->child; t; t = t->next) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble)) {
            free(*ids), *ids = NULL;
            return api_fail(e, 400, param, "%s: token ids must be integers", param);
        }
        if (t->valuedouble < 0 || t->valuedouble >= vocab) {
            free(*ids), *ids = NULL;
            return api_fail(e, 400, param, "%s: token id %.17g is out of vocabulary [0, %d)", param, t->valuedouble, vocab);
        }
        (*ids)[k++] = (int)t->valuedouble;
    }
    *n = k;
    return 0;
}

static void add_prompt(completion_request *r, int *ids, int n, const char *text) {
    r->prompts = rp_realloc(r->prompts, sizeof *r->prompts * (size_t)(r->n_prompts + 1));
    r->n_prompt = rp_realloc(r->n_prompt, sizeof *r->n_prompt * (size_t)(r->n_prompts + 1));
    r->prompt_text = rp_realloc(r->prompt_text, sizeof *r->prompt_text * (size_t)(r->n_prompts + 1));
    r->prompt_text[r->n_prompts] = text ? rp_strdup(text) : NULL;
    r->prompts[r->n_prompts] = ids;
    r->n_prompt[r->n_prompts++] = n;
}

static int encode(const serve_context *sc, const char *text, int add_special, const char *param, int **ids, int *n,
                  api_error *e) {
    rp_err err;
    if (tokenizer_encode(sc->tok, text, strlen(text), add_special, ids, n, &err))
        return api_fail(e, 400, param, "%s: %s", param, err.msg);
    return 0;
}

// prompt: a string, a list of strings, a list of token ids, or a list of lists of token ids.
static int parse_prompt(const cJSON *root, const serve_context *sc, completion_request *r, api_error *e) {
    cJSON *p = field(root, "prompt");
    int vocab = sc->cfg->vocab_size, *ids, n;
    if (!p) return api_fail(e, 400, "prompt", "prompt is required");
    if (cJSON_IsString(p)) {
        if (encode(sc, p->valuestring, 1, "prompt", &ids, &n, e)) return -1;
        add_prompt(r, ids, n, p->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(p) || !p->child) return api_fail(e, 400, "prompt", "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids, and not empty");
    if (cJSON_IsNumber(p->child)) {   // one prompt of token ids: never re-tokenized, no BOS added
        if (check_ids(p, "prompt", vocab, &ids, &n, e)) return -1;
        add_prompt(r, ids, n, NULL);
        return 0;
    }
    if (cJSON_GetArraySize(p) > SERVE_MAX_PROMPTS)
        return api_fail(e, 400, "prompt", "prompt: at most %d prompts in one request", SERVE_MAX_PROMPTS);
    int strings = cJSON_IsString(p->child);
    for (const cJSON *q = p->child; q; q = q->next) {
        if (strings && cJSON_IsString(q)) {
            if (encode(sc, q->valuestring, 1, "prompt", &ids, &n, e)) return -1;
        } else if (!strings && cJSON_IsArray(q)) {
            if (check_ids(q, "prompt", vocab, &ids, &n, e)) return -1;
        } else
            return api_fail(e, 400, "prompt", "prompt: a list must hold only strings or only lists of token ids");
        add_prompt(r, ids, n, strings ? q->valuestring : NULL);
    }
    return 0;
}

// messages: [{"role", "content"}], content a string or a list of {"type": "text", "text"} parts.
static int parse_messages(const cJSON *root, const serve_context *sc, completion_request *r, api_error *e) {
    if (sc->ct->family == CHAT_NONE)
        return api_fail(e, 400, NULL, "the model has no chat template reprise recognises: start the server with --chat-template NAME, or use /v1/completions");
    cJSON *ms = field(root, "messages");
    if (!ms || !cJSON_IsArray(ms) || !ms->child) return api_fail(e, 400, "messages", "messages must be a non-empty list");
    int n = cJSON_GetArraySize(ms), k = 0, rc = 0;
    chat_message *msgs = rp_calloc((size_t)n, sizeof *msgs);
    char **owned = rp_calloc((size_t)n, sizeof *owned);
    for (const cJSON *m = ms->child; m && !rc; m = m->next, k++) {
        cJSON *role = cJSON_IsObject(m) ? field(m, "role") : NULL, *content = cJSON_IsObject(m) ? field(m, "content") : NULL;
        if (!cJSON_IsObject(m)) rc = api_fail(e, 400, "messages", "messages[%d] must be an object", k);
        else if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                           strcmp(role->valuestring, "assistant")))
            rc = api_fail(e, 400, "messages", "messages[%d].role must be \"system\", \"user\" or \"assistant\"", k);
        else if (cJSON_IsString(content)) msgs[k] = (chat_message){role->valuestring, content->valuestring};
        else if (cJSON_IsArray(content)) {   // text parts, joined
            size_t len = 0;
            char *text = rp_calloc(1, 1);
            for (const cJSON *part = content->child; part && !rc; part = part->next) {
                cJSON *type = cJSON_IsObject(part) ? field(part, "type") : NULL, *t = type ? field(part, "text") : NULL;
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(t))
                    rc = api_fail(e, 400, "messages", "messages[%d].content: only parts of type \"text\" with a \"text\" string are supported", k);
                else {
                    size_t l = strlen(t->valuestring);
                    text = rp_realloc(text, len + l + 1);
                    memcpy(text + len, t->valuestring, l + 1);
                    len += l;
                }
            }
            owned[k] = text;
            msgs[k] = (chat_message){role->valuestring, text};
        } else rc = api_fail(e, 400, "messages", "messages[%d].content must be a string or a list of text parts", k);
    }
    if (!rc) {
        char *text = chat_render(sc->ct, msgs, n, 1);
        int *ids, n_ids;
        rc = encode(sc, text, 0, "messages", &ids, &n_ids, e);   // the rendered text holds BOS where the template wants it
        if (!rc) add_prompt(r, ids, n_ids, NULL);
        free(text);
        // the template's end of turn ends the reply: as a token when it is one, else as a stop string
        const char *eot_text;
        model_dir_end_of_turn(sc->ct, sc->tok, &r->extra_eos, &eot_text);
        if (eot_text && r->n_stops < 4) r->stops[r->n_stops++] = rp_strdup(eot_text);
    }
    for (int i = 0; i < n; i++) free(owned[i]);
    free(owned), free(msgs);
    return rc;
}

static int parse_stop(const cJSON *root, completion_request *r, api_error *e) {
    cJSON *s = field(root, "stop");
    if (!s) return 0;
    if (cJSON_IsString(s)) {
        if (!*s->valuestring) return 0;
        r->stops[r->n_stops++] = rp_strdup(s->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(s)) return api_fail(e, 400, "stop", "stop must be a string or a list of strings");
    if (cJSON_GetArraySize(s) > 4) return api_fail(e, 400, "stop", "stop: at most 4 stop strings");
    for (const cJSON *x = s->child; x; x = x->next) {
        if (!cJSON_IsString(x)) return api_fail(e, 400, "stop", "stop must be a string or a list of strings");
        if (*x->valuestring) r->stops[r->n_stops++] = rp_strdup(x->valuestring);
    }
    return 0;
}

static int parse_bias(const cJSON *root, int vocab, completion_request *r, api_error *e) {
    cJSON *b = field(root, "logit_bias");
    if (!b) return 0;
    if (!cJSON_IsObject(b)) return api_fail(e, 400, "logit_bias", "logit_bias must be an object of token id: bias");
    int n = cJSON_GetArraySize(b);
    r->bias_id = rp_malloc(sizeof(int) * (size_t)(n ? n : 1));
    r->bias = rp_malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (const cJSON *x = b->child; x; x = x->next) {
        char *end;
        long id = strtol(x->string, &end, 10);
        if (end == x->string || *end || id < 0 || id >= vocab)
            return api_fail(e, 400, "logit_bias", "logit_bias: '%s' is not a token id in [0, %d)", x->string, vocab);
        if (!cJSON_IsNumber(x) || !(x->valuedouble >= -100 && x->valuedouble <= 100))
            return api_fail(e, 400, "logit_bias", "logit_bias[%s] must be a number in [-100, 100]", x->string);
        r->bias_id[r->n_bias] = (int)id;
        r->bias[r->n_bias++] = (float)x->valuedouble;
    }
    return 0;
}

static int check_lengths(const serve_context *sc, completion_request *r, int max_tokens_given, api_error *e) {
    for (int i = 0; i < r->n_prompts; i++) {
        int n = r->n_prompt[i];
        if (n == 0) return api_fail(e, 400, r->chat ? "messages" : "prompt", "the prompt is empty");
        if (!max_tokens_given && r->chat) {   // the rest of the context, as far as the KV budget allows
            long room = sc->kv_budget / (r->sched.n_visits + r->draft.n_visits);
            if (room > sc->ctx) room = sc->ctx;
            r->max_tokens = room > n ? (int)(room - n) : 0;
        }
        if (n >= sc->ctx && (!max_tokens_given || r->max_tokens > 0))
            return api_fail(e, 400, r->chat ? "messages" : "prompt",
                            "This model's maximum context length is %d tokens. However, you requested %d tokens in the messages, "
                            "Please reduce the length of the messages.", sc->ctx, n);
        if ((long)n + r->max_tokens > sc->ctx)
            return api_fail(e, 400, "max_tokens",
                            "This model's maximum context length is %d tokens. However, you requested %ld tokens (%d in the "
                            "messages, %d in the completion). Please reduce the length of the messages or completion.",
                            sc->ctx, (long)n + r->max_tokens, n, r->max_tokens);
        long need = ((long)n + r->max_tokens) * (r->sched.n_visits + r->draft.n_visits);
        if (need > sc->kv_budget)
            return api_fail(e, 400, "max_tokens",
                            "the request needs %ld KV visit-positions ((%d prompt + %d completion tokens) x %d visits of its "
                            "schedule%s), more than the server's KV budget of %ld (--kv-budget)", need, n, r->max_tokens,
                            r->sched.n_visits + r->draft.n_visits, r->draft.n_visits ? " and its draft's" : "", sc->kv_budget);
    }
    return 0;
}

// Fields the OpenAI API (or vLLM's) defines that this server does not implement: accepted only at a value that asks
// for nothing (absent, null, or the one named here), else a 400 naming the field, never silently ignored.
static int refuse_unimplemented(const cJSON *root, const completion_request *r, api_error *e) {
    const cJSON *f;
    if ((f = field(root, "best_of")) && !(cJSON_IsNumber(f) && (f->valuedouble == 1 || f->valuedouble == r->n)))
        return api_fail(e, 400, "best_of", "best_of is not supported (only best_of = n: every completion is returned)");
    if ((f = field(root, "response_format"))) {
        const cJSON *t = cJSON_IsObject(f) ? cJSON_GetObjectItemCaseSensitive(f, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text"))
            return api_fail(e, 400, "response_format", "response_format is not supported (only {\"type\": \"text\"}): "
                            "reprise does not constrain its output to JSON or a schema");
    }
    if ((f = field(root, "suffix")) && !(cJSON_IsString(f) && !*f->valuestring))
        return api_fail(e, 400, "suffix", "suffix is not supported (no insertion after a suffix)");
    static const char *const lists[] = {"tools", "functions", "stop_token_ids", "bad_words", "allowed_token_ids"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        if ((f = field(root, lists[i])) && !(cJSON_IsArray(f) && cJSON_GetArraySize(f) == 0))
            return api_fail(e, 400, lists[i], "%s is not supported", lists[i]);
    if ((f = field(root, "tool_choice")) && !(cJSON_IsString(f) && !strcmp(f->valuestring, "none")))
        return api_fail(e, 400, "tool_choice", "tool_choice is not supported (no tool calls)");
    static const char *const guided[] = {"guided_json", "guided_regex", "guided_choice", "guided_grammar", "logits_processors"};
    for (size_t i = 0; i < sizeof guided / sizeof *guided; i++)
        if (field(root, guided[i])) return api_fail(e, 400, guided[i], "%s is not supported", guided[i]);
    if ((f = field(root, "use_beam_search")) && !cJSON_IsFalse(f))
        return api_fail(e, 400, "use_beam_search", "use_beam_search is not supported");
    if ((f = field(root, "min_tokens")) && !(cJSON_IsNumber(f) && f->valuedouble == 0))
        return api_fail(e, 400, "min_tokens", "min_tokens is not supported");
    if ((f = field(root, "include_stop_str_in_output")) && !cJSON_IsFalse(f))
        return api_fail(e, 400, "include_stop_str_in_output", "include_stop_str_in_output is not supported");
    if ((f = field(root, "skip_special_tokens")) && !cJSON_IsTrue(f))
        return api_fail(e, 400, "skip_special_tokens", "skip_special_tokens false is not supported");
    return 0;
}

int completion_request_parse(const char *body, size_t len, int chat, const serve_context *sc, completion_request *r,
                             api_error *e) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->n = 1;
    r->max_tokens = 16;
    r->logprobs = -1;
    r->extra_eos = -1;
    r->sampling = (sampler_params){.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 0};
    cJSON *root = serve_parse_body(body, len, e);
    if (!root) return -1;
    int rc = -1, max_tokens_given = 0, top_k = -1;
    cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model)) {
        api_fail(e, 400, "model", "model must be a string");
        goto out;
    }
    int named = !model || !strcmp(model->valuestring, sc->model_name);
    for (int i = 0; i < 2 && !named; i++) named = sc->model_paths[i] && !strcmp(model->valuestring, sc->model_paths[i]);
    if (!named) {
        api_fail(e, 404, "model", "The model `%s` does not exist.", model->valuestring);
        goto out;
    }
    cJSON *sched = field(root, "layer_schedule");
    if (sched && !cJSON_IsString(sched)) {
        api_fail(e, 400, "layer_schedule", "layer_schedule must be a string such as \"rys:2,4\" or \"0-5,2-3\"");
        goto out;
    }
    r->schedule_text = rp_strdup(sched ? sched->valuestring : sc->default_schedule);
    rp_err err;
    if (schedule_parse(&r->sched, r->schedule_text, sc->cfg->n_layers, &err)) {
        api_fail(e, 400, "layer_schedule", "layer_schedule: %s", err.msg);
        goto out;
    }
    if (r->sched.n_visits > sc->max_visits) {
        api_fail(e, 400, "layer_schedule", "layer_schedule: %d visits, more than the %d this server allows (--max-visits)",
                 r->sched.n_visits, sc->max_visits);
        goto out;
    }
    // draft_schedule: self-speculative decoding with that schedule of the same weights ("none": without the
    // server's --draft)
    cJSON *draft = field(root, "draft_schedule");
    if (draft && !cJSON_IsString(draft)) {
        api_fail(e, 400, "draft_schedule", "draft_schedule must be a string such as \"0-39,56-79\" (or \"none\")");
        goto out;
    }
    const char *draft_text = draft ? draft->valuestring : sc->default_draft;
    if (draft_text && strcmp(draft_text, "none")) {
        r->draft_text = rp_strdup(draft_text);
        if (schedule_parse(&r->draft, r->draft_text, sc->cfg->n_layers, &err)) {
            api_fail(e, 400, "draft_schedule", "draft_schedule: %s", err.msg);
            goto out;
        }
        if (r->draft.n_visits > sc->max_visits) {
            api_fail(e, 400, "draft_schedule", "draft_schedule: %d visits, more than the %d this server allows (--max-visits)",
                     r->draft.n_visits, sc->max_visits);
            goto out;
        }
    }
    const char *mt_name = "max_tokens";
    if (chat && !field(root, "max_tokens") && field(root, "max_completion_tokens")) mt_name = "max_completion_tokens";
    max_tokens_given = field(root, mt_name) != NULL;
    if (get_int(root, mt_name, 0, 1 << 30, &r->max_tokens, e) || get_float(root, "temperature", 0, 2, &r->sampling.temp, e) ||
        get_float(root, "top_p", 1e-9, 1, &r->sampling.top_p, e) || get_int(root, "top_k", -1, 1 << 30, &top_k, e) ||
        get_float(root, "min_p", 0, 1, &r->sampling.min_p, e) || get_int(root, "n", 1, SERVE_MAX_N, &r->n, e) ||
        get_bool(root, "echo", &r->echo, e) || get_bool(root, "stream", &r->stream, e) ||
        get_bool(root, "ignore_eos", &r->ignore_eos, e) || parse_stop(root, r, e) ||
        parse_bias(root, sc->cfg->vocab_size, r, e) ||
        get_float(root, "presence_penalty", -2, 2, &r->sampling.presence_penalty, e) ||
        get_float(root, "frequency_penalty", -2, 2, &r->sampling.frequency_penalty, e) ||
        get_float(root, "repetition_penalty", 1e-3, 100, &r->sampling.repeat_penalty, e) || refuse_unimplemented(root, r, e))
        goto out;
    if (top_k == 0) {
        api_fail(e, 400, "top_k", "top_k must be -1 (off) or at least 1, got 0");
        goto out;
    }
    r->sampling.top_k = top_k > 0 ? top_k : 0;
    cJSON *seed = field(root, "seed");
    if (seed) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) || fabs(seed->valuedouble) > 9.007199254740992e15) {
            api_fail(e, 400, "seed", "seed must be an integer");
            goto out;
        }
        r->sampling.seed = (uint64_t)(int64_t)seed->valuedouble;
        r->seed_given = 1;
    }
    cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) {
            api_fail(e, 400, "stream_options", "stream_options must be an object");
            goto out;
        }
        if (get_bool(so, "include_usage", &r->include_usage, e)) goto out;
    }
    if (chat) {   // logprobs: true/false, top_logprobs: 0..20
        int want = 0, top = 0;
        if (get_bool(root, "logprobs", &want, e) || get_int(root, "top_logprobs", 0, 20, &top, e)) goto out;
        if (field(root, "top_logprobs") && !want) {
            api_fail(e, 400, "top_logprobs", "top_logprobs needs logprobs: true");
            goto out;
        }
        r->logprobs = want ? top : -1;
        r->echo = 0;
        if (parse_messages(root, sc, r, e)) goto out;
    } else {
        if (get_int(root, "logprobs", 0, 20, &r->logprobs, e)) goto out;
        if (!field(root, "logprobs")) r->logprobs = -1;
        if (parse_prompt(root, sc, r, e)) goto out;
    }
    if (r->stream && r->echo && r->logprobs >= 0) {
        api_fail(e, 400, "echo", "echo with logprobs is not supported when streaming");
        goto out;
    }
    if (!chat && r->max_tokens == 0 && !r->echo) {
        api_fail(e, 400, "max_tokens", "max_tokens must be at least 1 unless echo is true");
        goto out;
    }
    if ((long)r->n_prompts * r->n > SERVE_MAX_PROMPTS) {
        api_fail(e, 400, "n", "a request may ask for at most %d completions (prompts x n)", SERVE_MAX_PROMPTS);
        goto out;
    }
    if (check_lengths(sc, r, max_tokens_given, e)) goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc) completion_request_free(r);
    return rc;
}

void completion_request_free(completion_request *r) {
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts[i]), free(r->prompt_text[i]);
    free(r->prompts), free(r->n_prompt), free(r->prompt_text);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->bias_id), free(r->bias);
    schedule_free(&r->sched);
    free(r->schedule_text);
    if (r->draft.n_visits) schedule_free(&r->draft);
    free(r->draft_text);
    memset(r, 0, sizeof *r);
}
