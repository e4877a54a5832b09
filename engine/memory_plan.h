// The device memory of a run, computed from the model's config and the run's shape before any weight is read:
// every buffer the CUDA backend allocates, by name, so that the backend sizes its buffers from this one place.
#ifndef REPRISE_MEMORY_PLAN_H
#define REPRISE_MEMORY_PLAN_H

#include <stddef.h>

#include "kernels/shapes.h"
#include "loader/config.h"
#include "loader/safetensors.h"

#define PLAN_DEFAULT_UBATCH 512        // rows of one forward step; a longer prompt runs in chunks (--ubatch)
#define PLAN_SCORE_LOGIT_ROWS 64       // all-rows logits (score, multiple choice) are computed this many at a time
#define PLAN_ATTENTION_CHUNK 256       // positions per split of the decode attention kernel
#define PLAN_GRAPH_ROWS 16             // decode rows always planned for (attention partials, logits): captured
#define PLAN_GRAPH_ROWS_MAX 256        // decode steps of up to the plan's decode rows, at most this many, are captured
#define PLAN_META_ROW_BYTES (sizeof(int) + sizeof(void *))   // a step row's position and KV slot (its page table)
#define PLAN_HEADROOM (256u << 20)     // left free beyond the plan: graphs, library kernels loaded lazily

// The KV cache's element type (--kv-dtype). The CUDA backend keeps BF16 and refuses f32; the CPU backend keeps
// either, and by default (auto) BF16 for a model stored in BF16, float32 otherwise.
typedef enum { KV_DTYPE_AUTO, KV_DTYPE_F32, KV_DTYPE_BF16 } kv_dtype;
// "auto", "f32", "bf16": 0, or -1 for anything else.
int kv_dtype_parse(const char *text, kv_dtype *out);
const char *kv_dtype_name(kv_dtype t);
// The CPU backend's KV dtype for what was asked and the dtype the weights are stored in: auto is BF16 for a BF16
// model (as it was trained, and as the CUDA backend keeps it) and an FP8 checkpoint's (a BF16 model's, quantized),
// float32 otherwise.
kv_dtype kv_dtype_for_cpu(kv_dtype asked, st_dtype weights);

// The projections' weights (--weights): as the checkpoint stores them, or quantized to FP8 E4M3 at load, a scale
// per output row (loader/fp8.h; the CPU backend; embeddings, LM head and norms stay as stored).
typedef enum { WEIGHTS_AS_STORED, WEIGHTS_FP8 } weights_format;
// "stored", "fp8": 0, or -1 for anything else.
int weights_format_parse(const char *text, weights_format *out);
const char *weights_format_name(weights_format w);
// Whether the projections run in FP8: asked (--weights fp8) or stored so (an FP8 checkpoint's quantization_config).
int weights_fp8(const model_config *c, weights_format w);

// What a run needs at once. Every count is an upper bound the engine keeps to (it chunks, never overflows).
typedef struct {
    int ubatch;       // most rows of one forward step
    int seqs;         // most sequences in one step: decode rows, one logits or sampling row each
    int logit_rows;   // rows whose logits are computed at once (>= seqs)
    long kv_slots;    // KV slots alive at once (the visits of every sequence held together)
    int ctx;          // positions per KV slot (the context length)
    int max_visits;   // most visits of one sequence's schedule (sizes the per-step staging of rows' KV slots)
    int tp;           // GPUs the model is split over (tensor parallel); the plan is one GPU's share
    int kv_fit;       // kv_slots is a most: a backend that knows its free memory lowers it to what fits (a server's
                      // KV budget by default), and the plan it keeps says what it took
    kv_dtype kv_dtype;   // --kv-dtype
    weights_format weights;   // --weights
    long stash_rows;     // rows of hidden state kept on the device between forward spans (a sweep's base snapshots,
                         // backend.h's stash_rows); a backend whose device cannot hold them plans none (0)
} plan_shape;

// The buffers of the CUDA backend on one GPU. Activations are (ubatch, width) float32 unless said otherwise; under
// tensor parallelism (tp > 1) widths marked /tp are the GPU's share (heads, MLP rows, vocabulary).
typedef enum {
    BUF_X, BUF_XB,                     // (ubatch, dim): residual stream, gathered rows
    BUF_Q,                             // (ubatch, n_heads / tp * head_dim)
    BUF_K, BUF_V,                      // (ubatch, n_kv_heads / tp * head_dim)
    BUF_TMP,                           // (ubatch, dim): projection outputs added to the residual
    BUF_ACT_BF16,                      // (ubatch, max(dim, q width)) BF16: the QKV, O and gate/up GEMMs' input
    BUF_MLP_BF16,                      // (ubatch, hidden_dim / tp) BF16: SwiGLU's output, the down GEMM's input
    BUF_TOKENS,                        // (ubatch) int
    BUF_META,                          // (ubatch x max_visits) rows of a step's layer executions: each one's KV slot
                                       // (its page table) and position, copied from the host in one piece a step
    BUF_X_BF16,                        // (ubatch, dim) BF16: the residual stream rounded, the gate/up GEMM's input
    BUF_ROW_SSQ,                       // (ubatch, dim / 64): its rows' sums of squares (the RMSNorm folded in)
    BUF_REDUCE,                        // (ubatch, dim) when tp > 1 (the all-reduce through device copies), (tp,
                                       // ubatch, dim) when tp > 2 (every rank's copy, summed in rank order)
    BUF_LOGITS,                        // (logit_rows, vocab / tp)
    BUF_IDS,                           // (logit_rows) sampled ids and their logits (int, float)
    BUF_SAMPLE_PARAMS,                 // (logit_rows) each row's sample_row_params (kernels/sample_params.h)
    BUF_CANDIDATES,                    // (1 + tp, sampling slices, logit_rows) candidate records: this GPU's, and
                                       // every GPU's gathered
    BUF_LOGPROBS,                      // (sampling slices, logit_rows) log-probability summaries
    BUF_PARTIAL,                       // (seqs, n_heads / tp, ctx / ATTENTION_CHUNK, head_dim + 2): split-KV partials
    BUF_ATT_COUNT,                     // (seqs, n_heads / tp) unsigned: the splits' counters (zeroed once)
    BUF_GEMM_PARTIAL,                  // the GEMM's K-segment partials: the most gemm_workspace_floats of a weight
    BUF_GEMM_COUNT,                    // its per-feature-block counters (unsigned, zeroed once)
    BUF_ROPE,                          // (head_dim / 2) RoPE inverse frequencies
    BUF_STASH,                         // (stash_rows, dim): hidden-state rows kept between spans (a sweep's snapshots)
    BUF_N
} plan_buffer;

typedef struct memory_plan {
    plan_shape shape;
    size_t buffer[BUF_N];   // bytes of each buffer
    size_t weights;         // the weights, each unique layer once whatever the schedule
    int fp8;                // the projections counted in FP8 (weights_fp8: asked, or an FP8 checkpoint), else BF16
    int fp8_group_cols;     // FP8: the inputs of a row one scale covers (the checkpoint's), 0 for one scale a row
    size_t kv;              // kv_pages pages of KV_PAGE positions x (K and V, BF16), and their page tables
    size_t kv_pages;        // kv_slots x the pages of ctx positions
    size_t activations;     // BUF_X .. BUF_REDUCE
    size_t logits;          // BUF_LOGITS .. BUF_LOGPROBS
    size_t scratch;         // BUF_PARTIAL .. BUF_ROPE
    size_t stash;           // BUF_STASH
    size_t device;          // all of the above: what the backend allocates
    size_t pinned_host;     // pinned staging in host memory (not device memory)
} memory_plan;

// The most rows of a decode step the CUDA backend captures as a graph under this plan: its decode rows (attention
// partials, max(seqs, PLAN_GRAPH_ROWS)) and logit rows, up to PLAN_GRAPH_ROWS_MAX.
int memory_plan_graph_rows(const memory_plan *p);
// The slices each GPU's vocabulary is cut in for sampling (kernels/shapes.h's sample_slices of rank 0's share):
// the same on every GPU.
int memory_plan_sample_slices(const model_config *c, const memory_plan *p);

// Fills in the plan of one GPU (rank 0, the largest share); zero or negative fields of the shape take defaults
// (ubatch 512, 1 sequence, logit_rows = max(seqs, 16), no KV, ctx min(max_position_embeddings, 4096), max_visits
// 2 x layers, tp 1).
void memory_plan_compute(const model_config *c, const plan_shape *shape, memory_plan *p);

// The shape's kv_slots lowered to what fits in device_bytes with PLAN_HEADROOM kept free (the KV gets 95% of what
// is left after every other buffer: a margin for what the plan does not see); the plan recomputed for it.
void memory_plan_fit_kv(const model_config *c, memory_plan *p, size_t device_bytes);

// Bytes of one visit's KV slot per position on the CUDA backend (BF16 K and V), on one of tp GPUs.
size_t memory_plan_kv_bytes_per_position(const model_config *c, int tp);
// The CUDA backend's KV arena (engine/backends/cuda/kv_pool.cu) is pages of KV_PAGE positions (kernels/shapes.h):
// the bytes of one page (K and V), and those a KV slot of `capacity` positions takes - its pages and their share of
// the page tables' pool (PLAN_KV_TABLE_ENTRIES entries a page: a slot's table holds a power of two of entries, at
// most twice its pages).
#define PLAN_KV_TABLE_ENTRIES 2
size_t memory_plan_kv_page_bytes(const model_config *c, int tp);
size_t memory_plan_kv_slot_bytes(const model_config *c, int tp, int capacity);

// The plan as lines "  weights   12.34 GiB" ..., with "of FREE free" when free_bytes > 0, into buf.
void memory_plan_format(const memory_plan *p, size_t free_bytes, char *buf, size_t cap);

// The largest context for kv_slots_per_seq x seqs sequences, and the largest number of sequences at ctx, that fit
// in device_bytes (with PLAN_HEADROOM kept free); 0 when none.
int memory_plan_max_ctx(const model_config *c, const plan_shape *shape, long kv_slots_per_seq, size_t device_bytes);
int memory_plan_max_seqs(const model_config *c, const plan_shape *shape, long kv_slots_per_seq, size_t device_bytes);

#endif
