// Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p, from a seeded RNG.
#ifndef REPRISE_SAMPLER_H
#define REPRISE_SAMPLER_H

#include <stdint.h>

#include "kernels/sample_params.h"

typedef struct sampler_params {
    float temp;     // <= 0: greedy (argmax, lowest id on ties)
    int top_k;      // <= 0: off
    float top_p;    // >= 1: off
    float min_p;    // <= 0: off
    uint64_t seed;
    // Penalties on the tokens seen, as vLLM defines them, applied to the logits before the filters (after a
    // logit_bias): repetition (HF's: a seen token's logit divided by it when positive, multiplied when not; the prompt's
    // tokens and the generated ones; 0 or 1: off), frequency (minus it times the token's count in the generated
    // text) and presence (minus it once a token was generated); 0: off.
    float repeat_penalty, frequency_penalty, presence_penalty;
} sampler_params;

// The tokens a sequence has seen, for the penalties: an open-addressing table of id -> (generated count, in prompt).
typedef struct {
    int *id;                  // (cap) -1: empty
    int *count;               // (cap) times generated
    unsigned char *in_prompt; // (cap)
    int n, cap;
} token_history;

struct prob_id {   // a probability and its token id: the sampler's work space
    float p;
    int id;
};

typedef struct sampler {
    sampler_params p;
    uint64_t rng;
    int vocab;
    struct prob_id *work;   // (vocab)
    float *penalized;       // (vocab) with penalties: the edited copy of a row sampler_sample draws from
    token_history seen;     // with penalties: the prompt set by sampler_set_prompt, the ids sampler_sample chose
} sampler;

void sampler_init(sampler *s, const sampler_params *p, int vocab);
void sampler_free(sampler *s);
// Any penalty on?
int sampler_has_penalties(const sampler_params *p);
// With penalties: forgets what was seen and records the prompt's ids (a new generation).
void sampler_set_prompt(sampler *s, const int *ids, int n);
// Draws the next id from logits (penalties applied to a copy first, and the id recorded as generated).
int sampler_sample(sampler *s, const float *logits);
// The two halves of sampler_sample, for sampling elsewhere (on a GPU): the step's uniform draw (the RNG advances
// only when sampling is random), and the choice from logits given that draw. A row holding NaN or an infinity
// gives -1: the sequence has failed, and its caller says so (never an id out of range).
float sampler_uniform(sampler *s);
// A uniform draw in [0, 1) from an xorshift64* state (the sampler's RNG; small, fast, reproducible across machines
// for a given seed): for draws of their own (a draft's proposals).
float rng_uniform(uint64_t *state);
// Records id as generated (the penalties' history), for a draw made by sampler_pick elsewhere.
void sampler_record(sampler *s, int id);
int sampler_pick(const sampler_params *p, const float *logits, int vocab, float u, struct prob_id *work);
// The distribution sampler_pick draws from, into probs (vocab): softmax at the temperature, filtered by top-k,
// top-p and min-p, renormalised; at temperature <= 0 all of it on the argmax. -1 for a row that is not finite.
// (Speculative decoding's acceptance rule compares the target's and the draft's.)
int sampler_distribution(const sampler_params *p, const float *logits, int vocab, struct prob_id *work, float *probs);
// A copy of a history (to try tokens and go back: a draft's proposals), and its release.
void sampler_history_copy(token_history *to, const token_history *from);
void sampler_history_free(token_history *h);
int argmax(const float *x, int n);
// log softmax(logits)[id], computed stably in double.
double log_prob_of(const float *logits, int vocab, int id);

// A drawn token's log-probability and the most likely tokens', from the model's logits (before any edit or
// temperature): what the server's logprobs return.
typedef struct token_logprob {
    int id;
    float logprob;                          // log softmax(logits)[id]
    int n_top;                              // entries of top_* (most likely first, lowest id on ties)
    int top_id[SAMPLE_MAX_LOGPROBS];
    float top_logprob[SAMPLE_MAX_LOGPROBS];
} token_logprob;

// The log-probability of id and the n_top (<= SAMPLE_MAX_LOGPROBS) most likely tokens of one row of logits.
void token_logprob_of_row(const float *row, int vocab, int id, int n_top, token_logprob *t);
// The same from a row's summary: its largest logit mx, sum of e^(l - mx) over the row (double), the logit of id,
// and its n_top largest (logit, id) pairs in order - one formula for the host's rows and the device's summaries.
void token_logprob_finish(token_logprob *t, int id, float logit, float mx, double sum, const float *top_v,
                          const int *top_id, int n_top);

// One row's draw as a backend makes it. In: the filters (p; its penalties come as edits), the uniform draw,
// the logit edits (sorted by id, each id once: sampler_edits), and n_top (-1: no log-probabilities; else the
// chosen id's and the n_top most likely). Out: id (-1: the logits are not finite) and *lp when n_top >= 0.
typedef struct sample_row {
    const sampler_params *p;
    float uniform;
    const logit_edit *edits;
    int n_edits;
    int n_top;
    int id;
    token_logprob *lp;
} sample_row;

// The edits of one draw: logit_bias (bias[i] added to bias_id[i]; a repeated id's biases summed) and, when s has
// penalties, the penalties of every token s has seen; sorted by id. out holds n_bias + s->seen.n entries; returns
// how many it wrote.
int sampler_edits(const sampler *s, const int *bias_id, const float *bias, int n_bias, logit_edit *out);
int sampler_edits_max(const sampler *s, int n_bias);   // the room sampler_edits needs
// Draws each of n rows (logits (n, vocab)) as its request says, on the host: edits on a copy, sampler_pick, and
// the log-probabilities of the unedited row. What a backend that does not sample on the device runs, and the rule
// the device's draws follow. work (vocab) and edited (vocab floats): scratch, or NULL (allocated here).
void sample_rows_host(const float *logits, int vocab, sample_row *rows, int n, struct prob_id *work, float *edited);

#endif
