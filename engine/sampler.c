// Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p, from a seeded RNG.
// The filters apply in HF transformers' order: temperature, top-k, top-p, min-p; then one draw.
#include "engine/sampler.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>

void sampler_init(sampler *s, const sampler_params *p, int vocab) {
    s->p = *p;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->vocab = vocab;
    s->work = rp_malloc(sizeof *s->work * vocab);
}

void sampler_free(sampler *s) { free(s->work); }

// xorshift64*: small, fast, and reproducible across machines for a given seed.
static float rng_uniform(uint64_t *state) {
    uint64_t x = *state ? *state : 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (float)((x * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;   // [0, 1)
}

int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double log_prob_of(const float *logits, int vocab, int id) {
    float mx = logits[argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(sum);
}

static int by_prob_desc(const void *a, const void *b) {
    const struct prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

float sampler_uniform(sampler *s) { return s->p.temp > 0 ? rng_uniform(&s->rng) : 0.0f; }

int sampler_sample(sampler *s, const float *logits) { return sampler_pick(&s->p, logits, s->vocab, sampler_uniform(s), s->work); }

int sampler_pick(const sampler_params *sp, const float *logits, int n, float u, struct prob_id *work) {
    for (int i = 0; i < n; i++)
        if (!isfinite(logits[i])) return -1;   // no distribution to draw from: an error for this sequence
    if (sp->temp <= 0) return argmax(logits, n);
    float mx = logits[argmax(logits, n)], sum = 0;
    for (int i = 0; i < n; i++) {
        work[i].id = i;
        work[i].p = expf((logits[i] - mx) / sp->temp);
        sum += work[i].p;
    }
    for (int i = 0; i < n; i++) work[i].p /= sum;
    qsort(work, n, sizeof *work, by_prob_desc);
    int keep = n;
    if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
    if (sp->top_p < 1) {   // HF: over the top-k survivors, renormalised (top-k off: the whole vocabulary, sum 1)
        float kept = 0, cum = 0;
        for (int i = 0; i < keep; i++) kept += work[i].p;
        for (int i = 0; i < keep; i++) {
            cum += work[i].p / kept;
            if (cum >= sp->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (sp->min_p > 0) {
        float floor_p = sp->min_p * work[0].p;
        int k = 1;
        while (k < keep && work[k].p >= floor_p) k++;
        keep = k;
    }
    float total = 0;
    for (int i = 0; i < keep; i++) total += work[i].p;
    float r = u * total, cum = 0;
    for (int i = 0; i < keep; i++) {
        cum += work[i].p;
        if (r < cum) return work[i].id;
    }
    return work[keep - 1].id;
}
