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

typedef struct backend backend;
struct sampler_params;
struct memory_plan;

struct backend {
    const char *name;
    const model_config *cfg;
    // Converts the weights into the backend's layout once. Missing or misshapen tensors are errors.
    int (*load_weights)(backend *b, const st_archive *a, rp_err *err);
    // Takes the run's memory plan before any weight is loaded: refuses it, naming the plan, when it does not fit
    // the device; else allocates the step's buffers by it (a shape with kv_fit: lowering its kv_slots to what fits
    // first). The CPU backend, which grows on demand, takes only the KV dtype from it.
    int (*plan)(backend *b, struct memory_plan *p, rp_err *err);
    // Announces a forward step that stages `staged_rows` (row, visit) pairs in all. key != 0 marks a decode step
    // whose shape (sequences, their schedules, one token each) repeats: a backend may capture the step once and
    // replay it (CUDA graphs). May be NULL.
    void (*step_begin)(backend *b, unsigned long long key, size_t staged_rows);
    // Makes room for n_rows rows of hidden state (the rows of one forward step; never more than the plan's ubatch).
    void (*reserve)(backend *b, int n_rows);
    // Writes the embeddings of tokens[0..n) into rows row0.. of the hidden state.
    void (*embed)(backend *b, const int *tokens, int n, int row0);
    // Runs layer `layer` once for every part, each against its own KV slot (hidden state updated in place).
    void (*layer)(backend *b, int layer, const visit_part *parts, int n_parts);
    // Copies rows of the hidden state to host memory, (n, dim), or from it.
    void (*read_rows)(backend *b, int row0, int n, float *out);
    void (*write_rows)(backend *b, int row0, int n, const float *in);
    // Copies the first n positions of one KV slot into another (a shared prefix, reused).
    void (*kv_copy)(backend *b, kv_slot *dst, const kv_slot *src, int n);
    // Final norm, LM head and sampling on the device for the given rows: one id per row, drawn with uniform[i]
    // by the rules of sampler_pick (engine/sampler.h). May be NULL: the engine then samples host logits.
    void (*sample)(backend *b, const int *rows, int n, const struct sampler_params *p, const float *uniform, int *ids);
    // Final norm and LM head for the given rows; logits to host memory, (n, vocab_size).
    void (*logits)(backend *b, const int *rows, int n, float *out);
    int (*kv_alloc)(backend *b, kv_slot *kv, int capacity, rp_err *err);
    void (*kv_free)(backend *b, kv_slot *kv);
    size_t (*kv_bytes_per_token)(const backend *b);   // one visit
    size_t (*weight_bytes)(const backend *b);
    void (*destroy)(backend *b);
};

backend *backend_cpu_create(const model_config *cfg, int n_threads);

#endif
