// One generation step for a batch of sequences: every token loop goes through it (the command line's generate and
// chat, a sweep's replies, the server, bench), and self-speculative decoding sits behind it (engine/speculative.h).
#ifndef REPRISE_GENERATE_H
#define REPRISE_GENERATE_H

#include "engine/forward.h"
#include "engine/sampler.h"

typedef enum {
    GEN_RUNNING,      // feeds its pending tokens at the next step it takes part in
    GEN_EOS,          // drew an end-of-sequence id (the model's, or extra_eos): `next` holds it, not part of the reply
    GEN_LENGTH,       // drew max_new ids, the last one in `next` (max_new 0: fed its tokens and drew none)
    GEN_CONTEXT_FULL, // drew an id (in `next`) that the context has no room to feed
    GEN_NOT_FINITE,   // the logits held NaN or an infinity: nothing was drawn
    GEN_FAILED,       // the step's forward pass failed (generate_step's error says why)
    GEN_STOPPED,      // its caller stopped it (a stop string, a cancelled request)
} gen_state;

#define GEN_MAX_DRAWN 17   // the most ids one step draws: a draft's most proposals and the target's own

struct spec_draft;

// A sequence being generated: what the next step feeds it, how its next id is drawn, and its stop rules.
typedef struct {
    sequence *seq;
    sampler *smp;            // draws its ids (its penalties see what it generates)
    int max_new;             // ids to draw in all (< 0: no limit but the context; 0: feed, draw nothing)
    int ctx;                 // positions the sequence may ever hold (its KV may grow to it); 0: its KV's capacity
    int ignore_eos;
    int extra_eos;           // one more end-of-sequence id (a chat template's end of turn), -1 if none
    const int *bias_id;      // logit_bias: bias[i] added to logit bias_id[i] before drawing (n_bias entries)
    const float *bias;
    int n_bias;
    int logprobs;            // -1: none; else each drawn id's log-probability and the `logprobs` (<= 20) most
                             // likely tokens' (before bias and penalties) go to lp
    token_logprob lp;
    float *rows_out;         // when not NULL: the logits of every row a step feeds ((n_step, vocab): prompt logprobs)
    int n_step;              // of the pending tokens, how many the next step feeds (0: all); the id is drawn once
                             // a step feeds the last of them

    const int *feed;         // the pending tokens: a prompt (gen_begin), then the id last drawn
    int n_feed;
    int next;                // the id last drawn
    int n_generated;         // ids drawn, an end-of-sequence one included
    gen_state state;

    struct spec_draft *draft;   // self-speculative decoding with this draft (engine/speculative.h), or NULL: the
                                // prompt is fed to it too, and each later step may draw several ids
    int drawn[GEN_MAX_DRAWN];   // the ids the last step drew, in order (`next` is the last): one without a draft
    int n_drawn;
} gen_seq;

// A sequence to generate from: feeds ids[0..n) (a prompt, or its part the KV cache does not hold yet; the caller
// keeps them alive while they are pending) and then what it draws with smp, at most max_new ids. The other fields
// start as none (no bias, no logprobs, no extra end-of-sequence id, the KV's capacity as the context).
void gen_begin(gen_seq *g, sequence *seq, sampler *smp, const int *ids, int n, int max_new);

// Takes an id drawn elsewhere (from a prefill's logits) as a step's draw: counts it (in drawn too), applies the stop
// rules, and feeds it next while the sequence runs.
void gen_take(const model *m, gen_seq *g, int id);

// One step over the running sequences of g: feeds each its pending tokens (n_step of them where set) in one forward
// pass (those with rows_out in a second, every row's logits kept; those with a draft that can propose, speculative
// steps: spec_step, drawing up to K + 1 ids), draws the next id of each whose feed completes -
// on the device where the backend samples, each row by its own parameters, bias, penalties and logprobs (the
// rows_out pass on the host) - and applies the stop rules, in this order: non-finite logits, an end-of-sequence
// id (unless ignore_eos), max_new ids, no room in the context to feed the id. Returns how many still run; -1 with err
// when a pass failed (its sequences are GEN_FAILED, nothing of theirs advanced).
int generate_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err);

// Is id one of the model's end-of-sequence ids, or extra (>= 0)?
int gen_is_eos(const model_config *c, int extra, int id);

#endif
