// Parsing and checking the JSON bodies of the server's requests (OpenAI's shapes, vLLM's messages), apart from the
// HTTP layer so that a fuzz target can drive it alone.
#ifndef REPRISE_SERVE_REQUEST_H
#define REPRISE_SERVE_REQUEST_H

#include <stddef.h>

#include "engine/sampler.h"
#include "engine/schedule.h"
#include "loader/chat_template.h"
#include "loader/config.h"
#include "loader/tokenizer.h"

#define SERVE_MAX_BODY (16u << 20)   // bytes of a request body (413 beyond)
#define SERVE_MAX_DEPTH 64           // nesting of JSON arrays and objects
#define SERVE_MAX_N 8                // choices per prompt
#define SERVE_MAX_PROMPTS 1024       // prompts in one completions request

// An error as the API returns it: {"error": {"message", "type", "param", "code"}} with HTTP status `status`.
typedef struct {
    int status;
    char message[1024];
    char param[64];
} api_error;

// What the server knows that a request is checked against.
typedef struct {
    const model_config *cfg;
    const tokenizer *tok;
    const chat_template *ct;   // family CHAT_NONE: /v1/chat/completions is refused
    const char *model_name;
    const char *model_paths[2];   // also taken as the model's name: -m as typed and the directory it names
    const char *default_schedule;
    const char *default_draft; // --draft: the draft schedule of requests that name none (NULL: none)
    int draft_tokens;          // --draft-tokens (0: adapted)
    int ctx;                   // positions of one request at most
    long kv_budget;            // visit-positions
    int max_visits;            // most visits of a request's schedule
} serve_context;

typedef struct {
    int chat;
    int n_prompts;
    int **prompts;             // (n_prompts) token ids
    int *n_prompt;
    char **prompt_text;        // (n_prompts) the prompt as given when it was text (echo returns it), else NULL
    int n;                     // choices per prompt
    int max_tokens;
    sampler_params sampling;
    int seed_given;
    int logprobs;              // completions: alternatives per token; chat: top_logprobs; -1: none
    int echo;                  // completions: the prompt (and its logprobs) comes back before the completion
    int stream, include_usage;
    int ignore_eos;
    int extra_eos;             // chat: the template's end-of-turn token, -1 if none (else it is a stop string)
    char *stops[4];
    int n_stops;
    int n_bias;
    int *bias_id;
    float *bias;
    schedule sched;
    char *schedule_text;       // as given (or the server's default)
    schedule draft;            // draft_schedule (n_visits 0: none)
    char *draft_text;          // as given (or the server's --draft), NULL without a draft
} completion_request;

// Parses a /v1/completions (chat = 0) or /v1/chat/completions body. 0, or -1 with e filled (a 4xx).
int completion_request_parse(const char *body, size_t len, int chat, const serve_context *sc, completion_request *out,
                             api_error *e);
void completion_request_free(completion_request *r);

// The checks every body gets: size, UTF-8, nesting, JSON, an object at the top. Returns the object or NULL.
struct cJSON;
struct cJSON *serve_parse_body(const char *body, size_t len, api_error *e);

int api_fail(api_error *e, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
