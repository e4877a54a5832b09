// Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p, from a seeded RNG.
#ifndef REPRISE_SAMPLER_H
#define REPRISE_SAMPLER_H

#include <stdint.h>

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
    token_history seen;     // with penalties: the prompt set by sampler_set_prompt, the ids sampler_sample chose
    float *penalized;       // (vocab) with penalties: the logits they change, copied
} sampler;

void sampler_init(sampler *s, const sampler_params *p, int vocab);
void sampler_free(sampler *s);
// Any penalty on?
int sampler_has_penalties(const sampler_params *p);
// With penalties: forgets what was seen and records the prompt's ids (a new generation).
void sampler_set_prompt(sampler *s, const int *ids, int n);
// Draws the next id from logits (penalties applied to a copy first, and the id recorded as generated).
int sampler_sample(sampler *s, const float *logits);
// The penalties of p for the tokens of h, applied in place to logits (vocab entries).
void penalties_apply(const sampler_params *p, const token_history *h, float *logits);
// The two halves of sampler_sample, for sampling elsewhere (on a GPU): the step's uniform draw (the RNG advances
// only when sampling is random), and the choice from logits given that draw. A row holding NaN or an infinity
// gives -1: the sequence has failed, and its caller says so (never an id out of range).
float sampler_uniform(sampler *s);
int sampler_pick(const sampler_params *p, const float *logits, int vocab, float u, struct prob_id *work);
int argmax(const float *x, int n);
// log softmax(logits)[id], computed stably in double.
double log_prob_of(const float *logits, int vocab, int id);

#endif
