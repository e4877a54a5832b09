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
} sampler_params;

struct prob_id {   // a probability and its token id: the sampler's work space
    float p;
    int id;
};

typedef struct sampler {
    sampler_params p;
    uint64_t rng;
    int vocab;
    struct prob_id *work;   // (vocab)
} sampler;

void sampler_init(sampler *s, const sampler_params *p, int vocab);
void sampler_free(sampler *s);
int sampler_sample(sampler *s, const float *logits);
// The two halves of sampler_sample, for sampling elsewhere (on a GPU): the step's uniform draw (the RNG advances
// only when sampling is random), and the choice from logits given that draw. A row holding NaN or an infinity
// gives -1: the sequence has failed, and its caller says so (never an id out of range).
float sampler_uniform(sampler *s);
int sampler_pick(const sampler_params *p, const float *logits, int vocab, float u, struct prob_id *work);
int argmax(const float *x, int n);
// log softmax(logits)[id], computed stably in double.
double log_prob_of(const float *logits, int vocab, int id);

#endif
