// One generation step for a batch of sequences: every token loop goes through it (the command line's generate and
// chat, a sweep's replies, the server, bench), and self-speculative decoding will sit behind it.
#ifndef REPRISE_GENERATE_H
#define REPRISE_GENERATE_H

#include "engine/forward.h"
#include "engine/sampler.h"

typedef enum {
    GEN_RUNNING,      // feeds its next id at the next step
    GEN_EOS,          // sampled an end-of-sequence id (the model's, or extra_eos): `next` holds it, not part of the reply
    GEN_LENGTH,       // sampled max_new ids, the last one in `next`
    GEN_CONTEXT_FULL, // sampled an id (in `next`) that the context has no room to feed
    GEN_NOT_FINITE,   // the logits held NaN or an infinity: nothing was sampled
    GEN_STOPPED,      // its caller stopped it (a stop string, a cancelled request)
} gen_state;

// A sequence being generated: what the next step feeds it, how its next id is drawn, and its stop rules.
typedef struct {
    sequence *seq;
    sampler *smp;            // draws its ids (its penalties see what it generates)
    int max_new;             // ids to sample at most (< 0: no limit but the context)
    int ignore_eos;
    int extra_eos;           // one more end-of-sequence id (a chat template's end of turn), -1 if none
    const int *bias_id;      // logit_bias: bias[i] added to logit bias_id[i] before sampling (n_bias entries)
    const float *bias;
    int n_bias;
    float *logits_out;       // when not NULL: each step's logits (vocab), before bias, as the id was drawn from them

    const int *feed;         // the tokens the next step feeds: a prompt (gen_begin), then the id last sampled
    int n_feed;
    int next;                // the id the last step sampled
    int n_generated;         // ids sampled, an end-of-sequence one included
    gen_state state;
} gen_seq;

// A sequence to generate from: feeds ids[0..n) (a prompt, or its part the KV cache does not hold yet; the caller
// keeps them alive until the first step) and then what it samples, drawing with smp, at most max_new ids. The other
// fields start as none (no bias, no logits out, no extra end-of-sequence id).
void gen_begin(gen_seq *g, sequence *seq, sampler *smp, const int *ids, int n, int max_new);

// Takes an id drawn elsewhere (from a prefill's logits) as a step's draw: counts it, applies the stop rules, and
// feeds it next while the sequence runs.
void gen_take(const model *m, gen_seq *g, int id);

// One step: feeds every running sequence of g its pending tokens in one forward pass, draws each one's next id
// (on the device where the backend samples and no sequence needs its logits, its bias or sampling parameters of its
// own), and applies the stop rules, in this order: non-finite logits, an end-of-sequence id (unless ignore_eos),
// max_new ids, no room in the context to feed the id. Returns how many still run; -1 with err when the pass failed
// (nothing advanced then).
int generate_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err);

// Is id one of the model's end-of-sequence ids, or extra (>= 0)?
int gen_is_eos(const model_config *c, int extra, int id);

#endif
