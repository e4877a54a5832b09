// Self-speculative decoding: a shorter schedule of the same weights (the draft) proposes the next ids, the
// sequence's own schedule (the target) checks them all in one forward pass of K + 1 rows, and the longest agreeing
// prefix is kept with the target's next id. Greedy output is the target's, token for token (a row's logits are
// the same in a block of rows as alone: the kernels are batch-invariant); sampled output follows the target's
// distribution by the speculative sampling rule (Leviathan et al. 2023, Chen et al. 2023). Both KV caches go back
// to the accepted length by their n_past (a slot truncated to a position: no copy).
#ifndef REPRISE_SPECULATIVE_H
#define REPRISE_SPECULATIVE_H

#include "engine/generate.h"

#define SPEC_MAX_TOKENS 16    // the most ids a draft proposes in a step
#define SPEC_START_TOKENS 4   // K's start when it adapts

typedef struct spec_draft {
    sequence seq;         // the draft schedule's sequence: its own KV slots over the target's weights
    int fixed_k;          // ids proposed a step (--draft-tokens), or 0: adapted to the acceptance
    int k;                // the next step's K
    int lag[2], n_lag;    // ids the target holds and the draft's KV not yet (fed before its next proposal)
    int stale;            // the draft's KV no longer follows the target's (a step it could not take part in)
    long steps, proposed, accepted;   // speculative steps, ids proposed, ids accepted
    uint64_t rng;         // the draft's own draws (sampled proposals)
    float *q;             // (SPEC_MAX_TOKENS, vocab) the draft's distributions of its proposals (sampling)
    float *p;             // (vocab) a target row's distribution
    token_history saved;  // the sampler's history before a step's proposals (penalties)
} spec_draft;

// A draft for a sequence of `capacity` positions under schedule sched (parsed against the model): its sequence and
// scratch. k: ids a step (1..SPEC_MAX_TOKENS), or 0 to adapt it (from SPEC_START_TOKENS: +2 when a step accepts
// all, -1 otherwise, as HF's assisted generation). seed: its draws' RNG. -1 with err.
int spec_draft_init(spec_draft *d, model *m, const schedule *sched, int capacity, int k, uint64_t seed, rp_err *err);
void spec_draft_free(spec_draft *d, model *m);
// Makes the draft's KV hold the first n_past positions of the target's (after a caller moved the target's n_past
// back to reuse a prefix): usable again when it held them, else stale until the next prompt.
void spec_draft_rewind(spec_draft *d, int n_past);

// Whether g's next step is a speculative one, and its K: a running sequence whose pending token is its last
// draw, with a draft in step with it, more than one id left to draw and room for K + 1 rows. 0: an ordinary step.
int spec_tokens_now(const gen_seq *g);

// One speculative step for each of g[0..n) (spec_tokens_now > 0 for each): the drafts' K passes (batched over the
// sequences), one verifying pass of the targets, the acceptance rule, the stop rules on each drawn id in order
// (g->drawn, g->n_drawn), both caches back to the accepted length. -1 with err when a pass failed (the sequences
// are GEN_FAILED).
int spec_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err);

// The acceptance rule for one proposal, on distributions p (target) and q (draft) over vocab: draft id d is kept
// when u < p(d) / q(d); else the id drawn with u2 from max(0, p - q) renormalised is returned (p's argmax if that
// is empty). Returns d, or the replacement. (Public for its statistical test.)
int spec_accept_or_replace(const float *p, const float *q, int vocab, int d, float u, float u2, int *accepted);

#endif
