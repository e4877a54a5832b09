// The CUDA backend's insides, shared by its files: a rank's state, the backend's, and the functions one file
// gives another (upload.cu, plan.cu, step.cu, collectives.cu, timing.cu, backend_cuda.cu).
#ifndef REPRISE_CUDA_BACKEND_INTERNAL_H
#define REPRISE_CUDA_BACKEND_INTERNAL_H

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nccl.h>

#include "engine/backends/cuda/backend_cuda.h"
#include "engine/backends/cuda/cuda_check.h"
#include "engine/backends/cuda/rank_threads.h"
#include "kernels/kernels.h"
#include "kernels/kv_pages.h"
extern "C" {
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "engine/tensor_parallel.h"
#include "loader/load_progress.h"
#include "loader/weights.h"
}

namespace reprise_cuda {

enum step_mode { EAGER, CAPTURE, REPLAY };

// One GPU's share of the run: a tensor-parallel rank (the whole model when tp = 1).
struct rank_state {
    int rank, device;
    tp_shard shard;                               // the heads, MLP rows and vocabulary this rank holds
    cudaStream_t stream;
    ncclComm_t comm;                              // nullptr: tp 1, or ranks sharing one GPU
    cudaEvent_t ready, done;                      // the collectives through device copies
    size_t free_bytes, total_bytes;               // the device's memory when the plan was checked
    step_mode mode;
    unsigned long long key;
    // Pinned host memory that a captured graph's copies read. step_begin stages every layer execution's rows (KV
    // page tables and positions, step_meta's layout) and copies them to d_meta in one piece; each layer
    // execution then takes the next meta_rows entries, so a replay finds them where it was captured (step_begin
    // makes room before any capture).
    unsigned char *stage_meta;                    // (stage_cap rows) pinned
    unsigned char *d_meta;                        // (stage_cap rows) on the device
    size_t stage_cap, stage_at, meta_rows;        // rows held; the next one a layer execution takes; the step's
    bool staged_unsynced = false;                 // a step's copies from the staging may be in flight (no sync since)
    int *stage_tokens;                            // (cap_rows) pinned
    int embed_lo, embed_hi;                       // rows whose tokens are staged, not yet embedded (flush_embed)
    float *stage_logits;                          // (cap_logit_rows, shard vocabulary) pinned
    sample_row_params *stage_params;              // (cap_logit_rows) pinned: each row's request when sampling
    int *stage_ids;                               // (cap_logit_rows, 2) pinned: sampled ids and their logits
    sample_logprob_record *stage_logprobs;        // (sample_slices, cap_logit_rows) pinned: log-probability records
    struct graph {
        cudaGraphExec_t exec;
        unsigned long long last_used;
    };
    std::map<unsigned long long, graph> graphs;   // at most graph_cache, the least recently used evicted
    std::set<unsigned long long> seen;            // shapes run once, eagerly (captured if they come again)
    unsigned long long clock;
    long graph_replays, graph_captures;
    bf16 *embed, *final_norm, *lm_head;           // lm_head aliases embed when tied; both the vocabulary shard
    std::vector<std::vector<bf16 *>> layers;      // [layer][layer_tensor] this rank's blocks, nullptr where absent;
                                                  // K and V point into Q's allocation (stacked), up into gate's
                                                  // (interleaved by 8 rows: gemm_swiglu_rows)
    std::vector<std::vector<gemm_weight>> proj;   // [layer][W_Q, W_O, W_GATE, W_DOWN] the GEMMs' weight operands: BF16
                                                  // (layers' blocks) or FP8 codes with their scales
    std::vector<void *> weight_allocs;            // every weight allocation, once
    float *inv_freq;                              // (head_dim / 2)
    size_t weight_bytes;
    memory_plan plan;                             // the buffers below are sized by it
    int cap_rows, cap_logit_rows;
    int graph_rows;                               // decode steps of up to this many rows are captured (the plan's)
    int sample_slices;                            // CTAs a row's candidates are found by, over this rank's vocabulary
    float *x, *xb, *q, *k, *v, *tmp, *partial, *reduce;
    size_t cap_partial;
    unsigned *att_count;                          // decode attention's split counters (zero between launches)
    size_t cap_att_count;
    bf16 *act_bf16;                               // a GEMM's input in BF16, written by the kernel before it
    bf16 *mlp_bf16;                               // the down GEMM's: SwiGLU's output, the gate/up GEMM's epilogue
    bf16 *x_bf16;                                 // the gate/up GEMM's: the residual stream after attention, rounded
    float *row_ssq;                               // ... and its rows' sums of squares (the RMSNorms folded into the
                                                  // QKV and gate/up GEMMs)
    const float *stats_x;                         // the rows (xr) x_bf16 and row_ssq describe after a visit's down
    int stats_rows;                               // projection, and how many; nullptr: none
    gemm_workspace gemm_ws;                       // the GEMM's K-segment partials and counters (every launch on
                                                  // the rank's stream shares them: each leaves the counters zero)
    int *d_tokens, *d_ids;
    sample_row_params *d_params;
    sample_logprob_record *d_logprobs;
    unsigned char *d_cand;                        // d_cand: this rank's candidate rows, then all ranks' gathered
    float *d_logits;
    float *stash;                                 // (plan's stash_rows, dim): hidden-state rows kept between spans
    unsigned char *kv_arena;                      // the KV pages (kv_pool.cu): the plan's KV
    bf16 **kv_tables;                             // the pool the slots' page tables come from (kv_pool.cu)
    std::vector<bf16 *> kv_page_at;               // every page's address on this rank, by page id
    std::vector<void *> kv_extra;                 // pages and tables past the plan's KV: cudaMalloc'd, kept
};

// What a sampling step's launches depend on beyond its row count (its graph's shape).
struct sample_step_shape {
    int k_stride;       // candidates per row record: the largest row's
    size_t edits;       // logit edits in all (0: no edit kernel)
    bool logprobs;      // some row wants log-probabilities
};

struct cuda_backend {
    backend base;
    int tp;                                       // ranks; 0 until the plan says
    bool share_gpu;                               // every rank on one GPU: collectives through device copies
    int use_graphs;                               // REPRISE_CUDA_GRAPHS=0 turns them off
    size_t graph_cache;                           // REPRISE_CUDA_GRAPH_CACHE, default 64
    long host_sampled_rows;                       // rows the device's candidates could not decide (sample())
    // A sampling step's logit edits (logit_bias, penalties), every row's one after another, in pinned host memory
    // that every rank's edit kernel reads (mapped: no copy node, whatever their number); edit_raw gets each
    // edited logit's value before it. Grown (graphs dropped) when a step needs more.
    std::vector<sample_row_params> step_params;   // a sampling step's rows' requests (step_begin)
    sample_step_shape step_shape;                 // and what its launches depend on (step_begin)
    logit_edit *stage_edits;
    float *stage_edit_raw;
    size_t edits_cap;
    // KV pages (kv_pool.cu): ids the same on every rank (each holds the same KV heads' worth)
    std::vector<int> kv_free_pages;               // free page ids, a stack
    std::map<size_t, size_t> kv_free_tables;      // the page tables' pool's free ranges: first entry -> entries
    long kv_bytes_copied = 0;                     // KV bytes kv_copy has queued (rank 0's)
    long allocations_at_start = -1;               // device_allocations at the first step
    std::vector<rank_state *> ranks;
    rank_threads threads;                         // tp > 1: one per rank
    rank_barrier barrier;
};

// A step's rows as staged and copied (n of them: every layer execution's, in run order): their KV slots' page tables
// (kv_pages.h), positions.
struct step_meta {
    kv_table *kv;
    int *pos;
};
inline step_meta step_meta_at(unsigned char *base, size_t n) {
    kv_table *p = reinterpret_cast<kv_table *>(base);
    return step_meta{p, reinterpret_cast<int *>(p + n)};
}

inline cuda_backend *cb(backend *b) { return reinterpret_cast<cuda_backend *>(b); }

// Every rank runs f(rank) on its own thread (tp 1: on the caller's); returns when all have.
template <typename F> void each(cuda_backend *b, F f) {
    if (b->tp <= 1) f(b->ranks[0]);
    else b->threads.run([&](int i) { f(b->ranks[i]); });
}

// Every device allocation and free of the backend goes through these two, counted: once a run has started (its
// first step), a server's or a sweep's should make none (backend_cuda_allocations_after_start).
extern std::atomic<long> device_allocations;
inline cudaError_t device_malloc(void **p, size_t bytes) {
    device_allocations++;
    return cudaMalloc(p, bytes);
}
inline cudaError_t device_free(void *p) {
    if (p) device_allocations++;
    return cudaFree(p);
}

template <typename T> T *dev_alloc(size_t n) {
    T *p = nullptr;
    if (n) CUDA_CHECK(device_malloc((void **)&p, n * sizeof(T)));
    return p;
}

const int ATTENTION_CHUNK = PLAN_ATTENTION_CHUNK;   // positions per split of the attention kernel

template <typename T> void realloc_dev(T **p, size_t bytes) {
    CUDA_CHECK(device_free(*p));
    *p = nullptr;
    if (bytes) CUDA_CHECK(device_malloc((void **)p, bytes));
}

template <typename T> void realloc_pinned(T **p, size_t bytes) {
    CUDA_CHECK(cudaFreeHost(*p));
    *p = nullptr;
    CUDA_CHECK(cudaMallocHost((void **)p, bytes ? bytes : 1));
}


// upload.cu
int load_weights(backend *base, const st_archive *a, rp_err *err);
// kv_pool.cu
size_t kv_bytes_per_token(const backend *base);
void kv_arena_alloc(cuda_backend *b, size_t pages);
int kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err);
int kv_grow(backend *base, kv_slot *kv, int capacity, rp_err *err);
void kv_free(backend *base, kv_slot *kv);
void kv_copy(backend *base, kv_slot *dst, const kv_slot *src, int n);
kv_table rank_kv(const kv_slot *kv, const rank_state *r);   // a slot's page table on this rank (its device address)
// plan.cu
void drop_graphs(rank_state *r);
void grow_stage(rank_state *r, size_t entries);
int plan(backend *base, memory_plan *p, rp_err *err);
void reserve(backend *base, int n_rows);
// collectives.cu
void all_reduce(cuda_backend *b, rank_state *r, float *rank_state::*buf, size_t at, size_t count);
unsigned char *all_gather_candidates(cuda_backend *b, rank_state *r, size_t bytes);
// step.cu
void step_begin(backend *base, const step_plan *step);
void embed(backend *base, const int *tokens, int n, int row0);
void layer_run(backend *base, const layer_exec *e);
void read_rows(backend *base, int row0, int n, float *out);
void stash_rows(backend *base, long at, int row0, int n);
void unstash_rows(backend *base, long at, int row0, int n);
void write_rows(backend *base, int row0, int n, const float *in);
void logits(backend *base, const int *rows, int n, float *out);
void sample(backend *base, const int *rows, int n, sample_row *req);

}   // namespace reprise_cuda

#endif
