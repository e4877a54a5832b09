// A sampled row's request as the device reads it, and the logit edits (logit_bias, penalties) that the host sampler
// (engine/sampler.c) and sample.cu apply by the one function below: plain C, shared.
#ifndef REPRISE_SAMPLE_PARAMS_H
#define REPRISE_SAMPLE_PARAMS_H

#include "kernels/shapes.h"

#define SAMPLE_MAX_LOGPROBS 20   // the most top log-probabilities a row returns (OpenAI's top_logprobs limit)

#if defined(__CUDACC__)
#define SAMPLE_FN __host__ __device__ static inline
#else
#define SAMPLE_FN static inline
#endif

// One id's logit changed before a draw: logit_bias first, then the penalties on a token seen (sampler.h's order):
// l + add, then divided by rep when positive and multiplied by it when not (rep 1: off), then minus sub (the
// frequency and presence penalties, already summed as the host sampler sums them). 16 bytes.
typedef struct logit_edit {
    int id;
    float add, rep, sub;
} logit_edit;

// Every rounding written out: the device's product is __fmul_rn, so that no compiler fuses it with the
// subtraction into one FMA (the host's C is compiled without contraction): both give the same bits.
SAMPLE_FN float logit_edit_apply(const logit_edit *e, float l) {
    if (e->add != 0) l = l + e->add;
#if defined(__CUDA_ARCH__)
    if (e->rep != 1) l = l > 0 ? l / e->rep : __fmul_rn(l, e->rep);
#else
    if (e->rep != 1) l = l > 0 ? l / e->rep : l * e->rep;
#endif
    if (e->sub != 0) l = l - e->sub;
    return l;
}

// One row's request (32 bytes; the backend copies the step's rows to the device in one copy): the filters as
// sampler_params has them, the row's uniform draw, its edits (edits[edit0 .. edit0 + n_edits), sorted by id),
// and how many top log-probabilities it wants (-1: none; the chosen id's comes with any).
typedef struct sample_row_params {
    float temp, top_p, min_p, uniform;
    int top_k, n_top;
    int edit0, n_edits;
} sample_row_params;

// One slice's log-probability summary of a row (sample.cu's launch_sample_logprobs; the CUDA backend merges the
// slices' and GPUs'): its largest logit, the sum of e^(l - max) over it in double, its n largest (logit, id) pairs.
typedef struct sample_logprob_record {
    float max;
    int n;
    double sum;
    struct {
        float v;
        int id;
    } top[SAMPLE_MAX_LOGPROBS];
} sample_logprob_record;

// The candidates a row's record keeps (sample.cu): 1 greedy, else its top_k up to SAMPLE_MAX_K (a slice with fewer
// ids keeps fewer).
SAMPLE_FN int sample_candidates_k(float temp, int top_k) {
    if (temp <= 0) return 1;
    return top_k > 0 && top_k < SAMPLE_MAX_K ? top_k : SAMPLE_MAX_K;
}

#endif
