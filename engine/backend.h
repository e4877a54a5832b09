// The backend interface: what the engine asks of the CPU and CUDA backends. The engine never branches on which.
#ifndef REPRISE_BACKEND_H
#define REPRISE_BACKEND_H

#include <stddef.h>

#include "loader/config.h"
#include "loader/error.h"
#include "loader/safetensors.h"

// A visit's KV cache: keys and values of every position this sequence has run through one visit. Opaque
// storage owned by the backend (host memory on the CPU, device memory on a GPU).
typedef struct kv_slot {
    void *k;        // (capacity, n_kv_heads * head_dim)
    void *v;        // (capacity, n_kv_heads * head_dim)
    int capacity;   // positions
} kv_slot;

// One sequence's share of a layer execution: its rows of the hidden-state buffer, the position of the first
// of them, and the KV slot of the visit being run.
typedef struct {
    int row0, n_rows;
    int pos0;
    kv_slot *kv;
    int prompt;   // the step feeds this sequence several tokens (a prompt, maybe cut by --ubatch windows): rows go
                  // through prompt attention even when one falls alone in a window, so a window never changes a number
} visit_part;

// One layer execution: layer `layer` run once for every part, each against its own KV slot. Its rows are the
// parts' rows gathered in part order (rows 0..n_rows of the execution); which part and position each takes is
// computed once, by the engine (engine/forward.c), for every backend.
typedef struct {
    int layer;
    const visit_part *parts;
    int n_parts;
    int n_rows;             // the parts' rows, in all
    const int *row_part;    // (n_rows) the part of each gathered row
    const int *row_pos;     // (n_rows) its position
    int max_end;            // the most positions a row attends to (max over parts of pos0 + n_rows)
    int any_prompt;         // some part is a prompt's
} layer_exec;

struct sample_row;

// A forward step (one window of rows) as planned before it runs: every layer execution, how it starts and what it
// ends with. A backend may capture a step and replay it when the same plan comes again (CUDA graphs).
typedef struct {
    int n_rows;                           // rows of hidden state
    const layer_exec *execs;              // in the order they run
    int n_execs;
    int from_hidden;                      // its rows come in by write_rows (a span's later part), not by embed
    int to_hidden;                        // it ends by read_rows (a span's earlier part), without logits
    int all_logits;                       // logits for every row
    int n_out;                            // rows it ends with: their logits, or an id sampled from each
    const struct sample_row *sample;      // its n_out rows' draws when it samples (engine/sampler.h); NULL: logits
    int whole_call;                       // the forward call fits in this one window
} step_plan;

typedef struct backend backend;
struct memory_plan;

struct backend {
    const char *name;
    const model_config *cfg;
    struct load_progress *progress;   // load_weights reports the tensors it has read here (NULL: nobody asks)
    // Converts the weights into the backend's layout once. Missing or misshapen tensors are errors.
    int (*load_weights)(backend *b, const st_archive *a, rp_err *err);
    // Takes the run's memory plan before any weight is loaded: refuses it, naming the plan, when it does not fit
    // the device; else allocates the step's buffers by it (a shape with kv_fit: lowering its kv_slots to what fits
    // first). The CPU backend, which grows on demand, takes only the KV dtype from it.
    int (*plan)(backend *b, struct memory_plan *p, rp_err *err);
    // Announces a forward step, before its embed (or write_rows), layer executions and logits or sampling run, in
    // that order. May be NULL.
    void (*step_begin)(backend *b, const step_plan *step);
    // Makes room for n_rows rows of hidden state (the rows of one forward step; never more than the plan's ubatch).
    void (*reserve)(backend *b, int n_rows);
    // Writes the embeddings of tokens[0..n) into rows row0.. of the hidden state.
    void (*embed)(backend *b, const int *tokens, int n, int row0);
    // Runs one layer execution of the step (the hidden state's rows updated in place).
    void (*layer)(backend *b, const layer_exec *e);
    // Copies rows of the hidden state to host memory, (n, dim), or from it.
    void (*read_rows)(backend *b, int row0, int n, float *out);
    void (*write_rows)(backend *b, int row0, int n, const float *in);
    // Copies hidden-state rows row0..row0+n into the backend's stash from its row `at` (stash_rows), or back
    // (unstash_rows): a sweep's base snapshots, kept where the rows are (rows of the plan's stash_rows). May be NULL:
    // the engine then moves them through host memory (read_rows, write_rows).
    void (*stash_rows)(backend *b, long at, int row0, int n);
    void (*unstash_rows)(backend *b, long at, int row0, int n);
    // Copies the first n positions of one KV slot into another (a shared prefix, reused).
    void (*kv_copy)(backend *b, kv_slot *dst, const kv_slot *src, int n);
    // Final norm, LM head and sampling on the device for the given rows: req[i].id (and its logprobs) for row i, by
    // the rules of sample_rows_host (engine/sampler.h). May be NULL: the engine then samples host logits.
    void (*sample)(backend *b, const int *rows, int n, struct sample_row *req);
    // Final norm and LM head for the given rows; logits to host memory, (n, vocab_size).
    void (*logits)(backend *b, const int *rows, int n, float *out);
    int (*kv_alloc)(backend *b, kv_slot *kv, int capacity, rp_err *err);
    // Makes a slot hold `capacity` positions, keeping what it holds, without moving it (the CUDA backend's pages);
    // on failure the slot is as it was, or larger. May be NULL: the engine then moves the slot into a larger one.
    int (*kv_grow)(backend *b, kv_slot *kv, int capacity, rp_err *err);
    void (*kv_free)(backend *b, kv_slot *kv);
    size_t (*kv_bytes_per_token)(const backend *b);   // one visit
    size_t (*weight_bytes)(const backend *b);
    // Device allocations and frees made since the run's first step: none, by design, where the plan sized the KV
    // (serve, sweep). NULL for a backend without device memory.
    long (*allocations_after_start)(const backend *b);
    void (*destroy)(backend *b);
};

#endif
