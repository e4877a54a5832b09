// The server's engine: one thread that owns the model and runs every admitted request in shared forward steps
// (continuous batching), with admission by a KV budget in visit-positions and preemption by recompute.
#ifndef REPRISE_SERVE_ENGINE_H
#define REPRISE_SERVE_ENGINE_H

#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "tools/serve/serve_metrics.h"
#include "tools/text_out.h"

#define SERVE_MAX_LOGPROBS SAMPLE_MAX_LOGPROBS
#define SERVE_MAX_STOPS 4

// One token of output, with its log-probability (of the model's logits: before bias, penalties and temperature)
// and the most likely alternatives when they were asked for.
typedef token_logprob serve_token;

typedef enum { FINISH_NONE, FINISH_STOP, FINISH_LENGTH, FINISH_ABORT, FINISH_ERROR } finish_reason;

typedef struct gen_request gen_request;
struct gen_request {
    // What to run: set before serve_engine_submit; the request owns these.
    int *prompt;
    int n_prompt;
    schedule sched;
    schedule draft_sched;    // self-speculative decoding with this draft (n_visits 0: none)
    int draft_tokens;        // its K (0: adapted)
    sampler_params sampling;
    int max_tokens;          // tokens to generate at most (0: prompt logprobs only)
    int logprobs;            // alternatives per token; -1: no logprobs
    int prompt_logprobs;     // logprobs of the prompt's tokens too (echo)
    int ignore_eos;
    int extra_eos;           // one more end-of-sequence id (a chat template's end of turn), -1 if none
    char *stops[SERVE_MAX_STOPS];
    int n_stops;
    int n_bias;              // logit_bias
    int *bias_id;
    float *bias;

    // Results, read and written under the engine's lock (serve_engine_lock).
    serve_token *out;        // generated tokens, end-of-sequence not included
    int n_out, cap_out;
    serve_token *prompt_out; // (n_prompt) when prompt_logprobs, complete once prompt_done; entry 0 has no logprob
    int prompt_done;
    text_out text;           // the generated text; text.committed bytes are final
    int n_generated;         // tokens sampled, end-of-sequence included (usage.completion_tokens)
    finish_reason finish;    // FINISH_NONE while it runs
    char error[1024];        // FINISH_ERROR: why
    int cancelled;

    // The engine's own.
    gen_request *next;
    int refs;                // the client's and, while it runs, the engine's
    sequence seq;
    int has_seq;
    spec_draft draft;        // with a draft: its sequence (held and freed with seq) and counters
    sampler smp;
    gen_seq gen;             // its generation: what a step feeds it, how its ids are drawn, its stop rules
    int *ids;                // prompt, then the generated tokens: what the KV must hold (recomputed after preemption)
    int n_ids;
    int n_fed;               // ids whose keys and values the KV holds
    int limit;               // positions it may ever need: n_prompt + max_tokens
    long order;              // admission order (the latest admitted is preempted first)
    int in_step;             // rows it has in the step being built (0: none)
    double t_submit, t_last;
};

typedef struct {
    int max_seqs;       // requests running at once (--parallel)
    int step_tokens;    // rows of one forward step (--batch-tokens; at most the plan's ubatch)
    long kv_budget;     // KV visit-positions that may be held at once (--kv-budget)
    int queue;          // requests that may wait for admission (--queue)
    int ctx;            // positions of one request at most (-c)
} serve_limits;

typedef struct serve_engine serve_engine;
struct tokenizer;

// Starts the engine thread over a loaded model (planned for these limits).
serve_engine *serve_engine_start(model *m, const struct tokenizer *tok, const serve_limits *lim, serve_metrics *met,
                                 rp_err *err);
// Stops admitting; returns once every request has finished; then stops the thread and frees the engine.
void serve_engine_stop(serve_engine *e);

// A new request for the caller to fill in (one reference: the caller's).
gen_request *gen_request_new(void);
// Queues requests together, all or none. -1 when the queue has no room for them now or the engine is draining,
// -2 when they are more than the queue ever holds (the error says which); the caller still holds its references.
int serve_engine_submit(serve_engine *e, gen_request **reqs, int n, rp_err *err);
// The caller is done with the request: drops its reference (and cancels it if it still runs).
void gen_request_release(serve_engine *e, gen_request *r);

// Reading results: hold the lock; wait (with the lock held) until anything changes or timeout_ms pass.
void serve_engine_lock(serve_engine *e);
void serve_engine_unlock(serve_engine *e);
void serve_engine_wait(serve_engine *e, int timeout_ms);

// Stops admitting new requests (SIGTERM); submits fail from then on.
void serve_engine_drain(serve_engine *e);
void serve_engine_gauges(serve_engine *e, serve_gauges *g);

#endif
