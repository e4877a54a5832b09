// The forward pass over a batch of sequences, each with its own schedule and KV cache.
#ifndef REPRISE_FORWARD_H
#define REPRISE_FORWARD_H

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/schedule.h"

typedef struct {
    schedule sched;
    kv_cache cache;   // one slot per visit of sched
} sequence;

// capacity: context length in tokens (at most max_position_embeddings).
int sequence_init(sequence *s, model *m, const schedule *sched, int capacity, rp_err *err);
// The same over one slot per visit taken from a pool (their capacity is the context length).
int sequence_init_pooled(sequence *s, model *m, const schedule *sched, kv_pool *pool, rp_err *err);
void sequence_free(sequence *s, model *m);

typedef struct {
    long layer_execs;   // backend layer calls (each reads one layer's weights once)
    long visits;        // sequence visits run (what one-by-one execution would cost in layer calls)
} forward_stats;

// A part of the forward pass: sequence i runs visits [from_visit[i], to_visit) only. A sequence that starts past
// visit 0 takes the hidden state entering its first visit from hidden_in instead of embedding its tokens (its KV
// slots before that visit must already hold these positions). With to_visit >= 0 the pass stops there and writes
// the hidden state to hidden_out, without logits, and the sequences' positions do not advance; to_visit < 0 runs
// to the end. Hidden states are (sum n_tokens, dim), sequence by sequence. Where the backend keeps a stash (its
// stash_rows, planned), they may stay there instead: a sequence with stash_in[i] >= 0 takes its rows from stash row
// stash_in[i] on (not from hidden_in), and with stash_out >= 0 the rows go to the stash from that row (not to
// hidden_out).
typedef struct {
    const int *from_visit;   // per sequence; NULL: all start at visit 0
    const float *hidden_in;
    int to_visit;
    float *hidden_out;
    const long *stash_in;    // per sequence, or NULL
    long stash_out;          // -1 (or 0 with hidden_out given): not to the stash
} forward_span;

int forward_span_run(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens,
                     const forward_span *span, int all_logits, float *logits, forward_stats *stats, rp_err *err);

// Feeds the tokens like forward() and, instead of logits, draws the next id of each sequence as req[i] asks (its
// own filters, draw, edits and logprobs; engine/sampler.h): on the device when the backend samples there.
int forward_sample(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, sample_row *req,
                   forward_stats *stats, rp_err *err);

// Feeds n_tokens[i] tokens to sequence i, for all i at once. Writes logits for every fed token
// ((sum n_tokens, vocab), sequence by sequence) when all_logits, else for each sequence's last token
// ((n_seqs, vocab)). A token outside the vocabulary or a full context is an error; nothing is fed then.
int forward(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, int all_logits,
            float *logits, forward_stats *stats, rp_err *err);

#endif
