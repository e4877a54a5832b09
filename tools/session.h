// A generation session for the command line: model, tokenizer, one sequence, a sampler, and the token loop.
#ifndef REPRISE_SESSION_H
#define REPRISE_SESSION_H

#include "engine/speculative.h"
#include "loader/model_dir.h"
#include "tools/cli.h"

#define MAX_STOPS 16

typedef struct {
    model_dir md;         // -m's config (known before the model is loaded), tokenizer (NULL when it has no
                          // tokenizer.json) and, for chat, chat template
    model m;              // loaded by session_start
    schedule sched;
    sequence seq;
    schedule draft_sched; // --draft's (n_visits 0: none)
    spec_draft draft;     // its sequence and state, with --draft
    sampler smp;          // smp.work is set once the session is open
    int *cached;          // ids whose keys and values the sequence holds, in order
    int n_cached;
    const char *stops[MAX_STOPS];
    int n_stops;
    int ignore_eos;
    int extra_eos;        // one more end-of-sequence id (a chat template's end-of-turn token), -1 if none
    volatile int *interrupt;   // set (by a signal handler): the reply in progress stops after its current step
} session;

typedef struct {
    int n_prompt_fed;     // prompt tokens run through the model (the rest were already cached)
    int n_generated;
    double prefill_s, decode_s;
    int context_full;     // generation stopped because the context was full
    int interrupted;      // generation stopped because *session.interrupt was set
    long spec_steps, proposed, accepted;   // with --draft: speculative steps, tokens the draft proposed, accepted
} gen_stats;

// A session opens in two steps, so that the tokenizer can size the context: session_load reads the config, the
// tokenizer and what `need` asks for (model_dir.h's MODEL_DIR_*), session_start plans the memory for ctx, loads the model (parsing --schedule) and makes a sequence of
// ctx positions. On failure either step closes the session.
int session_load(session *s, const cli_opts *o, unsigned need, rp_err *err);
int session_start(session *s, const cli_opts *o, int ctx, rp_err *err);
void session_close(session *s);

// The tokenizer, or an error naming the missing file.
int session_need_tokenizer(const session *s, rp_err *err);

// Makes the sequence hold `prompt` (reusing the longest prefix it already holds), then samples up to max_new
// tokens, stopping at an end-of-sequence id or a stop string. Prints each token's id (as_text = 0) or the text,
// streamed, with stop strings cut off (as_text = 1). The reply's text is appended to *reply when not NULL.
int session_generate(session *s, const int *prompt, int n, int max_new, int as_text, char **reply, gen_stats *st,
                     rp_err *err);

#endif
