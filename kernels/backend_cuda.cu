// The CUDA backend: BF16 weights uploaded once (every visit of a layer uses the same device pointers), a BF16 KV
// cache per visit, float32 activations. A layer execution gathers its sequences' rows, then: RMSNorm, the QKV
// projections (BF16 activations through reprise's batch-invariant tensor-core GEMM), bias + q/k norm + RoPE + KV
// append fused, attention (split-KV for decode rows, tiled flash-style for a prompt's rows), output projection,
// residual fused into the next RMSNorm, SwiGLU MLP, residual.
//
// Tensor parallel (--tp N): one host thread per GPU (rank), each holding 1/N of every unique layer
// (engine/tensor_parallel.c says which rows and columns): its query heads' whole GQA groups of Q/K/V and their KV,
// its rows of gate/up, and the matching columns of O and down, whose partial outputs one all-reduce each sums
// (NCCL, or device copies when the ranks share one GPU); the embedding and LM head by vocabulary, so sampling moves
// only each rank's candidates (an all-gather), never logit rows. The residual stream is whole on every rank. With
// N = 1 the same code runs on the caller's thread, with no collective.
//
// Decode steps run as CUDA graphs, one per rank, collectives included: the second step of a shape (the engine's
// key: sequences, schedules, one token each) is captured from the stream and instantiated - a shape seen once, as
// the last steps of a sweep's batch where sequences finish one by one, is never worth a capture - and later steps of
// that shape only refresh pinned host staging buffers - tokens, and per layer execution the rows' positions and KV
// slot pointers - which the graph's first copies read, and replay. Everything else a kernel needs lives at fixed
// device addresses; attention's grid is sized by the KV slots' capacity, not the current length, so one graph
// serves the whole generation.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <cuda_profiler_api.h>
#include <nccl.h>

#include "kernels/backend_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/rank_threads.h"
extern "C" {
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "engine/tensor_parallel.h"
#include "loader/weights.h"
}

namespace {

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
    // Pinned host memory that a captured graph's copies read. Each layer execution of a step takes its rows'
    // positions and KV slot pointers from the next entries of the arena, so a replay finds them where it was
    // captured; the arena holds a step's (row, visit) pairs (step_begin makes room before any capture).
    int *stage_pos;                               // (stage_cap) pinned
    bf16 **stage_krow, **stage_vrow;              // (stage_cap) pinned
    size_t stage_cap, stage_at;
    bool staged_unsynced = false;                 // a step's copies from the staging may be in flight (no sync since)
    int *stage_tokens;                            // (cap_rows) pinned
    float *stage_logits;                          // (cap_logit_rows, shard vocabulary) pinned
    float *stage_uniform;                         // (cap_logit_rows) pinned: each row's draw when sampling
    int *stage_ids;                               // (cap_logit_rows) pinned: sampled ids
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
                                                  // K and V point into Q's allocation, up into gate's (stacked)
    std::vector<bf16 *> weight_allocs;            // every weight allocation, once
    float *inv_freq;                              // (head_dim / 2)
    size_t weight_bytes;
    memory_plan plan;                             // the buffers below are sized by it
    int cap_rows, cap_logit_rows;
    float *x, *xb, *h, *q, *k, *v, *att, *gate, *up, *tmp, *partial, *reduce;
    size_t cap_partial;
    bf16 *act_bf16;                               // a BF16 copy of a GEMM's input
    int *d_tokens, *d_pos, *d_ids;
    float *d_uniform;
    unsigned char *d_sample_scratch, *d_cand;     // d_cand: this rank's candidate rows, then all ranks' gathered
    bf16 **d_krow, **d_vrow;
    float *d_logits;
};

struct cuda_backend {
    backend base;
    int tp;                                       // ranks; 0 until the plan says
    bool share_gpu;                               // every rank on one GPU: collectives through device copies
    int use_graphs;                               // REPRISE_CUDA_GRAPHS=0 turns them off
    size_t graph_cache;                           // REPRISE_CUDA_GRAPH_CACHE, default 64
    long host_sampled_rows;                       // rows the device's candidates could not decide (sample())
    std::vector<rank_state *> ranks;
    rank_threads threads;                         // tp > 1: one per rank
    rank_barrier barrier;
};

cuda_backend *cb(backend *b) { return reinterpret_cast<cuda_backend *>(b); }

// Every rank runs f(rank) on its own thread (tp 1: on the caller's); returns when all have.
template <typename F> void each(cuda_backend *b, F f) {
    if (b->tp <= 1) f(b->ranks[0]);
    else b->threads.run([&](int i) { f(b->ranks[i]); });
}

template <typename T> T *dev_alloc(size_t n) {
    T *p = nullptr;
    if (n) CUDA_CHECK(cudaMalloc((void **)&p, n * sizeof(T)));
    return p;
}

// The block of a tensor this rank holds, converted to BF16 and uploaded to d, in pieces of at most 16M elements so
// the host holds little at once (a 72B model's LM head is 1.2G elements).
void upload_to(rank_state *r, bf16 *d, const st_tensor *t, const tp_block &blk) {
    size_t n = (size_t)(blk.rows * blk.cols);
    int64_t step = std::max<int64_t>(1, ((int64_t)16 << 20) / std::max<int64_t>(1, blk.cols));
    std::vector<float> f;
    std::vector<bf16> h;
    for (int64_t row = 0; row < blk.rows; row += step) {
        int64_t rows = std::min(step, blk.rows - row);
        size_t m = (size_t)(rows * blk.cols);
        f.resize(m), h.resize(m);
        tensor_block_to_f32(t, blk.row0 + row, rows, blk.col0, blk.cols, f.data());
        for (size_t i = 0; i < m; i++) h[i] = __float2bfloat16(f[i]);
        CUDA_CHECK(cudaMemcpy(d + (size_t)(row * blk.cols), h.data(), m * sizeof(bf16), cudaMemcpyHostToDevice));
    }
    r->weight_bytes += n * sizeof(bf16);
}

bf16 *upload(rank_state *r, const st_tensor *t, const tp_block &blk) {
    bf16 *d = dev_alloc<bf16>((size_t)(blk.rows * blk.cols));
    r->weight_allocs.push_back(d);
    upload_to(r, d, t, blk);
    return d;
}

// Layer tensors with the same columns (Q, K, V; gate, up) uploaded as one matrix, their rows stacked in order, so
// one GEMM computes them all; each tensor's pointer is its first row.
void upload_stacked(rank_state *r, const model_config *c, const st_archive *a, int l, std::initializer_list<layer_tensor> ws) {
    tp_block blk;
    size_t rows = 0;
    for (layer_tensor w : ws) tp_layer_block(c, &r->shard, w, &blk), rows += (size_t)blk.rows;
    bf16 *d = dev_alloc<bf16>(rows * (size_t)blk.cols);
    r->weight_allocs.push_back(d);
    for (layer_tensor w : ws) {
        tp_layer_block(c, &r->shard, w, &blk);
        r->layers[l][w] = d;
        upload_to(r, d, weights_layer(a, l, w), blk);
        d += (size_t)(blk.rows * blk.cols);
    }
}

int load_weights(backend *base, const st_archive *a, rp_err *err) {
    cuda_backend *b = cb(base);
    const model_config *c = base->cfg;
    if (weights_check(c, a, err)) return -1;
    each(b, [&](rank_state *r) {
        tp_block blk;
        tp_global_block(c, &r->shard, G_EMBED, &blk);
        r->embed = upload(r, weights_global(c, a, G_EMBED), blk);   // (and lm_head, when tied, is the same)
        tp_global_block(c, &r->shard, G_FINAL_NORM, &blk);
        r->final_norm = upload(r, weights_global(c, a, G_FINAL_NORM), blk);
        tp_global_block(c, &r->shard, G_LM_HEAD, &blk);
        r->lm_head = c->tied_embeddings ? r->embed : upload(r, weights_global(c, a, G_LM_HEAD), blk);
        r->layers.assign(c->n_layers, std::vector<bf16 *>(W_N_LAYER_TENSORS, nullptr));
        for (int l = 0; l < c->n_layers; l++) {
            upload_stacked(r, c, a, l, {W_Q, W_K, W_V});
            upload_stacked(r, c, a, l, {W_GATE, W_UP});
            for (int w = 0; w < W_N_LAYER_TENSORS; w++)
                if (!r->layers[l][w] && tp_layer_block(c, &r->shard, (layer_tensor)w, &blk))
                    r->layers[l][w] = upload(r, weights_layer(a, l, (layer_tensor)w), blk);
        }
    });
    return 0;
}

const int ATTENTION_CHUNK = PLAN_ATTENTION_CHUNK;   // positions per split of the attention kernel
const int GRAPH_ROWS = PLAN_GRAPH_ROWS;             // decode steps of up to this many rows are captured as graphs

void drop_graphs(rank_state *r) {   // their buffers moved
    for (auto &g : r->graphs) cudaGraphExecDestroy(g.second.exec);
    r->graphs.clear();
}

template <typename T> void realloc_dev(T **p, size_t bytes) {
    CUDA_CHECK(cudaFree(*p));
    *p = nullptr;
    if (bytes) CUDA_CHECK(cudaMalloc((void **)p, bytes));
}

template <typename T> void realloc_pinned(T **p, size_t bytes) {
    CUDA_CHECK(cudaFreeHost(*p));
    *p = nullptr;
    CUDA_CHECK(cudaMallocHost((void **)p, bytes ? bytes : 1));
}

void grow_stage(rank_state *r, size_t entries) {
    realloc_pinned(&r->stage_pos, entries * sizeof(int));
    realloc_pinned(&r->stage_krow, entries * sizeof(bf16 *));
    realloc_pinned(&r->stage_vrow, entries * sizeof(bf16 *));
    r->stage_cap = entries;
    drop_graphs(r);   // they read the old arena
}

// (Re)allocates every step buffer of a rank as the plan sizes it (memory_plan.c names them); the residual
// stream's rows survive. Never called while a graph is being captured.
void alloc_buffers(rank_state *r, const model_config *c, const memory_plan *p) {
    const size_t *n = p->buffer;
    std::vector<float> keep((size_t)r->cap_rows * c->dim);   // the residual stream survives a grow
    if (r->cap_rows) CUDA_CHECK(cudaMemcpy(keep.data(), r->x, keep.size() * sizeof(float), cudaMemcpyDeviceToHost));
    realloc_dev(&r->x, n[BUF_X]);
    if (r->cap_rows) CUDA_CHECK(cudaMemcpy(r->x, keep.data(), keep.size() * sizeof(float), cudaMemcpyHostToDevice));
    realloc_dev(&r->xb, n[BUF_XB]), realloc_dev(&r->h, n[BUF_H]), realloc_dev(&r->tmp, n[BUF_TMP]);
    realloc_dev(&r->q, n[BUF_Q]), realloc_dev(&r->att, n[BUF_ATT]), realloc_dev(&r->k, n[BUF_K]), realloc_dev(&r->v, n[BUF_V]);
    realloc_dev(&r->gate, n[BUF_GATE]), realloc_dev(&r->up, n[BUF_UP]), realloc_dev(&r->act_bf16, n[BUF_ACT_BF16]);
    realloc_dev(&r->d_tokens, n[BUF_TOKENS]), realloc_dev(&r->d_pos, n[BUF_POS]);
    realloc_dev(&r->d_krow, n[BUF_KROW]), realloc_dev(&r->d_vrow, n[BUF_VROW]), realloc_dev(&r->reduce, n[BUF_REDUCE]);
    realloc_dev(&r->d_logits, n[BUF_LOGITS]), realloc_dev(&r->d_ids, n[BUF_IDS]), realloc_dev(&r->d_uniform, n[BUF_UNIFORM]);
    realloc_dev(&r->d_sample_scratch, n[BUF_SAMPLE_SCRATCH]), realloc_dev(&r->d_cand, n[BUF_CANDIDATES]);
    realloc_dev(&r->partial, n[BUF_PARTIAL]);
    if (!r->inv_freq) {   // the RoPE table is set once: it never changes size
        int half = c->head_dim / 2;
        std::vector<double> inv(half);
        config_rope_inv_freq(c, inv.data());
        std::vector<float> f(inv.begin(), inv.end());
        realloc_dev(&r->inv_freq, n[BUF_ROPE]);
        CUDA_CHECK(cudaMemcpy(r->inv_freq, f.data(), half * sizeof(float), cudaMemcpyHostToDevice));
    }
    r->cap_partial = n[BUF_PARTIAL] / sizeof(float);
    const plan_shape &s = p->shape;
    realloc_pinned(&r->stage_tokens, (size_t)s.ubatch * sizeof(int));
    realloc_pinned(&r->stage_logits, (size_t)s.logit_rows * r->shard.n_vocab * sizeof(float));
    realloc_pinned(&r->stage_uniform, (size_t)s.logit_rows * sizeof(float));
    realloc_pinned(&r->stage_ids, (size_t)s.logit_rows * sizeof(int));
    grow_stage(r, (size_t)s.ubatch * s.max_visits);
    r->cap_rows = s.ubatch;
    r->cap_logit_rows = s.logit_rows;
    r->plan = *p;
    drop_graphs(r);
}

// The ranks, their threads, streams and communicators, for a tp the plan names (once per backend).
int setup_ranks(cuda_backend *b, int tp, rp_err *err) {
    if (b->tp) return b->tp == tp ? 0 : rp_fail(err, "--tp cannot change once the model is loaded (%d, then %d)", b->tp, tp);
    if (tp_check(b->base.cfg, tp, err)) return -1;
    int n_dev = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n_dev));
    const char *share = getenv("REPRISE_TP_SHARE_GPU");   // tests: every rank on GPU 0 even where there are more
    b->share_gpu = tp > 1 && (n_dev < tp || (share && !strcmp(share, "1")));
    if (b->share_gpu)
        fprintf(stderr, "reprise: --tp %d on %d GPU%s: every rank on GPU 0, all-reduce through device copies (a check "
                        "of the split, not faster; no CUDA graphs)\n", tp, n_dev, n_dev == 1 ? "" : "s");
    if (b->share_gpu) b->use_graphs = 0;
    b->tp = tp;
    for (int i = 0; i < tp; i++) {
        rank_state *r = new rank_state();
        r->rank = i, r->device = b->share_gpu ? 0 : i;
        tp_shard_of(b->base.cfg, tp, i, &r->shard);
        b->ranks.push_back(r);
    }
    ncclUniqueId id;
    if (tp > 1 && !b->share_gpu) NCCL_CHECK(ncclGetUniqueId(&id));
    auto init = [b, tp, id](rank_state *r) {
        if (tp > 1) cuda_check_rank = r->rank;
        CUDA_CHECK(cudaSetDevice(r->device));
        CUDA_CHECK(cudaStreamCreate(&r->stream));
        if (b->share_gpu) {
            CUDA_CHECK(cudaEventCreateWithFlags(&r->ready, cudaEventDisableTiming));
            CUDA_CHECK(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming));
        } else if (tp > 1)
            NCCL_CHECK(ncclCommInitRank(&r->comm, tp, id, r->rank));   // every rank at once: it waits for the others
    };
    if (tp == 1) init(b->ranks[0]);
    else {
        b->barrier.reset(tp);
        b->threads.start(tp, [b](int i) {
            cuda_check_rank = i;
            CUDA_CHECK(cudaSetDevice(b->ranks[i]->device));
        });
        each(b, init);
    }
    return 0;
}

// Refuses a plan that does not fit a device's free memory (checked before any weight is uploaded), naming it.
int plan(backend *base, memory_plan *p, rp_err *err) {
    cuda_backend *b = cb(base);
    if (p->shape.kv_dtype == KV_DTYPE_F32)
        return rp_fail(err, "--kv-dtype f32: the CUDA backend keeps its KV cache in BF16 (use --backend cpu for float32)");
    if (setup_ranks(b, p->shape.tp, err)) return -1;
    each(b, [](rank_state *r) { CUDA_CHECK(cudaMemGetInfo(&r->free_bytes, &r->total_bytes)); });
    if (p->shape.kv_fit) {   // the KV takes what the fullest GPU leaves free
        size_t least = SIZE_MAX;
        for (rank_state *r : b->ranks) least = std::min(least, r->free_bytes / (b->share_gpu ? b->tp : 1));
        memory_plan_fit_kv(base->cfg, p, least);
    }
    for (rank_state *r : b->ranks) {
        int sharing = b->share_gpu ? b->tp : 1;   // ranks on this rank's GPU, each with the plan
        size_t need = sharing * p->device;
        if (need + PLAN_HEADROOM <= r->free_bytes) continue;
        char text[1024], where[96] = "";
        memory_plan_format(p, r->free_bytes, text, sizeof text);
        if (b->tp > 1)
            snprintf(where, sizeof where, " on GPU %d (%s%d of --tp %d)", r->device, sharing > 1 ? "all ranks: plan x " : "rank ",
                     sharing > 1 ? sharing : r->rank, b->tp);
        return rp_fail(err, "the run needs %.3f GiB of GPU memory%s, more than the %.3f GiB free (of %.3f GiB) less "
                            "%.3f GiB headroom; its plan%s:\n%sa smaller -c, --batch or --ubatch, %sor a GPU with more "
                            "memory, would fit (reprise inspect --gpu-memory GIB%s prints what fits)",
                       need / 1073741824.0, where, r->free_bytes / 1073741824.0, r->total_bytes / 1073741824.0,
                       PLAN_HEADROOM / 1073741824.0, b->tp > 1 ? " per GPU" : "", text, b->tp > 1 ? "" : "more GPUs (--tp), ",
                       b->tp > 1 ? " --tp N" : "");
    }
    each(b, [&](rank_state *r) { alloc_buffers(r, base->cfg, p); });
    return 0;
}

// A step with more rows than planned (the engine chunks by the plan's ubatch, so only a direct caller asks):
// grow eagerly, never during a capture.
void reserve(backend *base, int n_rows) {
    cuda_backend *b = cb(base);
    if (n_rows <= b->ranks[0]->cap_rows) return;
    memory_plan p;
    plan_shape s = b->ranks[0]->plan.shape;
    s.ubatch = n_rows;
    memory_plan_compute(base->cfg, &s, &p);
    each(b, [&](rank_state *r) { alloc_buffers(r, base->cfg, &p); });
}

void step_begin(backend *base, unsigned long long key, size_t staged_rows) {
    cuda_backend *b = cb(base);
    each(b, [&](rank_state *r) {
        // A window of a long prompt ends no sequence, so nothing synchronised it: its copies from the pinned staging
        // (tokens, positions, KV rows) may still be in flight, and this step is about to overwrite that staging. A
        // step that ended with its logits or ids synchronised already (every decode step): no wait added there.
        if (r->staged_unsynced) CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = true;
        r->stage_at = 0;
        if (staged_rows > r->stage_cap) grow_stage(r, staged_rows);   // before any capture: pinned allocation is not capturable
        r->key = key;
        r->mode = EAGER;
        if (b->use_graphs && key) {
            if (r->graphs.count(key)) r->mode = REPLAY;
            else if (r->seen.count(key)) r->mode = CAPTURE;
            else {
                if (r->seen.size() >= 64 * b->graph_cache) r->seen.clear();   // bounded too: a long sweep sees many shapes
                r->seen.insert(key);
            }
        }
        if (r->mode == CAPTURE) CUDA_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal));
    });
}

// The ranks' copies of one buffer (the member `buf` of each, `count` floats from element `at`) summed, in place on
// every rank: NCCL's all-reduce, or, where the ranks share a GPU, each rank sums all ranks' copies in rank order
// into its scratch once every rank has written its copy, and copies the sum back once every rank has read them.
void all_reduce(cuda_backend *b, rank_state *r, float *rank_state::*buf, size_t at, size_t count) {
    if (b->tp <= 1 || count == 0) return;
    float *mine = r->*buf + at;
    if (!b->share_gpu) {
        NCCL_CHECK(ncclAllReduce(mine, mine, count, ncclFloat32, ncclSum, r->comm, r->stream));
        return;
    }
    buffer_list all;
    all.n = b->tp;
    for (int s = 0; s < b->tp; s++) all.p[s] = b->ranks[s]->*buf + at;
    CUDA_CHECK(cudaEventRecord(r->ready, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->ready, 0));
    CUDA_CHECK(launch_sum_buffers(all, (long)count, r->reduce, r->stream));
    CUDA_CHECK(cudaEventRecord(r->done, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->done, 0));
    CUDA_CHECK(cudaMemcpyAsync(mine, r->reduce, count * sizeof(float), cudaMemcpyDeviceToDevice, r->stream));
}

// Every rank's first `bytes` of d_cand gathered, in rank order, after the first plan.logit_rows candidate rows of
// every rank's d_cand: NCCL's all-gather, or device copies where the ranks share a GPU.
unsigned char *all_gather_candidates(cuda_backend *b, rank_state *r, size_t bytes) {
    unsigned char *gathered = r->d_cand + (size_t)r->cap_logit_rows * PLAN_CANDIDATE_ROW_BYTES(SAMPLE_MAX_K);
    if (!b->share_gpu) {
        NCCL_CHECK(ncclAllGather(r->d_cand, gathered, bytes, ncclUint8, r->comm, r->stream));
        return gathered;
    }
    CUDA_CHECK(cudaEventRecord(r->ready, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) {
        CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->ready, 0));
        CUDA_CHECK(cudaMemcpyAsync(gathered + o->rank * bytes, o->d_cand, bytes, cudaMemcpyDeviceToDevice, r->stream));
    }
    CUDA_CHECK(cudaEventRecord(r->done, r->stream));
    b->barrier.wait();   // no rank writes its candidates again before every rank has copied them
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->done, 0));
    return gathered;
}

void embed(backend *base, const int *tokens, int n, int row0) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {
        memcpy(r->stage_tokens + row0, tokens, n * sizeof(int));
        if (r->mode == REPLAY) return;
        CUDA_CHECK(cudaMemcpyAsync(r->d_tokens + row0, r->stage_tokens + row0, n * sizeof(int), cudaMemcpyHostToDevice, r->stream));
        CUDA_CHECK(launch_embed(r->embed, r->d_tokens + row0, n, dim, r->shard.vocab0, r->shard.n_vocab,
                                r->x + (size_t)row0 * dim, r->stream));
        all_reduce(b, r, &rank_state::x, (size_t)row0 * dim, (size_t)n * dim);   // each token's row is on one rank
    });
}

// out (R, N) = in (R, K) . W^T: the activations rounded to BF16, then reprise's tensor-core GEMM, for every R. One
// numeric path whatever the batch, so a sequence's logits do not depend on the sequences beside it.
void linear(rank_state *r, const float *in, const bf16 *W, int R, int N, int K, float *out) {
    CUDA_CHECK(launch_to_bf16(in, (long)R * K, r->act_bf16, r->stream));
    CUDA_CHECK(launch_gemm_bf16(r->act_bf16, W, R, N, K, out, r->stream));
}

// The same for stacked weights, the output's columns split into their buffers (Q, K, V; gate, up).
void linear_split(rank_state *r, const float *in, const bf16 *W, int R, int N, int K, gemm_out out) {
    CUDA_CHECK(launch_to_bf16(in, (long)R * K, r->act_bf16, r->stream));
    CUDA_CHECK(launch_gemm_bf16_split(r->act_bf16, W, R, N, K, out, GEMM_BF16_DEFAULT_VARIANT, r->stream));
}

bf16 *rank_k(const kv_slot *kv, const rank_state *r) { return static_cast<bf16 **>(kv->k)[r->rank]; }
bf16 *rank_v(const kv_slot *kv, const rank_state *r) { return static_cast<bf16 **>(kv->v)[r->rank]; }

void layer_rank(cuda_backend *b, rank_state *r, int layer, const visit_part *parts, int n_parts) {
    const model_config *c = b->base.cfg;
    const std::vector<bf16 *> &w = r->layers[layer];
    int dim = c->dim, hd = c->head_dim, heads = r->shard.n_heads, kv_heads = r->shard.n_kv_heads;
    int qd = heads * hd, kvd = kv_heads * hd, hidden = r->shard.n_hidden;

    // each row's position and KV slot, staged where a replayed graph reads them
    int R = 0, max_cap = 0, max_len = 0;
    for (int p = 0; p < n_parts; p++) R += parts[p].n_rows;
    if (r->stage_at + R > r->stage_cap) {   // cannot be: step_begin made room for the step's rows
        fprintf(stderr, "reprise: staging arena overrun (internal error)\n");
        abort();
    }
    int *st_pos = r->stage_pos + r->stage_at;
    bf16 **st_krow = r->stage_krow + r->stage_at, **st_vrow = r->stage_vrow + r->stage_at;
    r->stage_at += R;
    R = 0;
    for (int p = 0; p < n_parts; p++) {
        if (parts[p].pos0 + parts[p].n_rows > max_len) max_len = parts[p].pos0 + parts[p].n_rows;
        for (int i = 0; i < parts[p].n_rows; i++, R++) {
            st_pos[R] = parts[p].pos0 + i;
            st_krow[R] = rank_k(parts[p].kv, r);
            st_vrow[R] = rank_v(parts[p].kv, r);
        }
        if (parts[p].kv->capacity > max_cap) max_cap = parts[p].kv->capacity;
    }
    // A decode-sized call (the steps graphs capture) splits by the KV slots' capacity, so that the grid is the same
    // at every step, into scratch reserved up front; a prefill-sized one (never captured) by its current length.
    const int chunk = ATTENTION_CHUNK;
    int decode_sized = R <= GRAPH_ROWS, n_splits = ((decode_sized ? max_cap : max_len) + chunk - 1) / chunk;
    int any_prefill = 0;   // then the split-KV kernel only serves single-row parts, one at a time
    for (int p = 0; p < n_parts; p++) any_prefill |= parts[p].prompt;
    size_t need = (size_t)(any_prefill ? 1 : R) * heads * n_splits * (hd + 2);
    if (need > r->cap_partial) {
        if (r->mode != EAGER) {   // cannot be: decode-sized scratch is reserved for the longest context
            fprintf(stderr, "reprise: attention scratch too small for a captured step (internal error)\n");
            abort();
        }
        realloc_dev(&r->partial, need * sizeof(float));
        r->cap_partial = need;
        drop_graphs(r);
    }
    if (r->mode == REPLAY) return;
    // gather the parts' rows
    for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++)
        CUDA_CHECK(cudaMemcpyAsync(r->xb + (size_t)i * dim, r->x + (size_t)parts[p].row0 * dim,
                                   sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, r->stream));
    CUDA_CHECK(cudaMemcpyAsync(r->d_pos, st_pos, R * sizeof(int), cudaMemcpyHostToDevice, r->stream));
    CUDA_CHECK(cudaMemcpyAsync(r->d_krow, st_krow, R * sizeof(bf16 *), cudaMemcpyHostToDevice, r->stream));
    CUDA_CHECK(cudaMemcpyAsync(r->d_vrow, st_vrow, R * sizeof(bf16 *), cudaMemcpyHostToDevice, r->stream));

    // attention block: this rank's heads; the output projection's partial sums all-reduced
    CUDA_CHECK(launch_rmsnorm(r->xb, nullptr, w[W_ATTN_NORM], R, dim, c->norm_eps, r->h, r->stream));
    linear_split(r, r->h, w[W_Q], R, qd + 2 * kvd, dim, gemm_out{{r->q, r->k, r->v}, {0, qd, qd + kvd}, 3});
    CUDA_CHECK(launch_qkv_rope(r->q, r->k, r->v, w[W_Q_BIAS], w[W_K_BIAS], w[W_V_BIAS], w[W_Q_NORM], w[W_K_NORM], r->inv_freq,
                               r->d_pos, r->d_krow, r->d_vrow, R, heads, kv_heads, hd, c->norm_eps, r->stream));
    // one query per sequence (decode): split-KV over all rows; a sequence's prompt: the tiled prefill kernel
    if (!any_prefill)
        CUDA_CHECK(launch_attention(r->q, r->d_pos, r->d_krow, r->d_vrow, R, heads, kv_heads, hd, n_splits, chunk,
                                    r->partial, r->att, r->stream));
    else
        for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++) {
            float *qr = r->q + (size_t)i * qd, *ar = r->att + (size_t)i * qd;
            if (parts[p].prompt)
                CUDA_CHECK(launch_attention_prefill(qr, parts[p].n_rows, parts[p].pos0, rank_k(parts[p].kv, r),
                                                    rank_v(parts[p].kv, r), heads, kv_heads, hd, ar, r->stream));
            else
                CUDA_CHECK(launch_attention(qr, r->d_pos + i, r->d_krow + i, r->d_vrow + i, 1, heads, kv_heads, hd,
                                            n_splits, chunk, r->partial, ar, r->stream));
        }
    linear(r, r->att, w[W_O], R, dim, qd, r->tmp);
    all_reduce(b, r, &rank_state::tmp, 0, (size_t)R * dim);

    // MLP block: the residual add fused into the norm; this rank's rows of gate/up, its columns of down
    CUDA_CHECK(launch_rmsnorm(r->xb, r->tmp, w[W_FFN_NORM], R, dim, c->norm_eps, r->h, r->stream));
    linear_split(r, r->h, w[W_GATE], R, 2 * hidden, dim, gemm_out{{r->gate, r->up}, {0, hidden}, 2});
    CUDA_CHECK(launch_swiglu(r->gate, r->up, (long)R * hidden, r->stream));
    linear(r, r->gate, w[W_DOWN], R, dim, hidden, r->tmp);
    all_reduce(b, r, &rank_state::tmp, 0, (size_t)R * dim);
    CUDA_CHECK(launch_add(r->xb, r->tmp, (long)R * dim, r->stream));

    for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++)
        CUDA_CHECK(cudaMemcpyAsync(r->x + (size_t)parts[p].row0 * dim, r->xb + (size_t)i * dim,
                                   sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, r->stream));
}

void layer_run(backend *base, int layer, const visit_part *parts, int n_parts) {
    cuda_backend *b = cb(base);
    each(b, [&](rank_state *r) { layer_rank(b, r, layer, parts, n_parts); });
}

void read_rows(backend *base, int row0, int n, float *out) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {   // the residual stream is the same on every rank
        if (r->rank == 0)
            CUDA_CHECK(cudaMemcpyAsync(out, r->x + (size_t)row0 * dim, sizeof(float) * n * dim, cudaMemcpyDeviceToHost, r->stream));
        CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = false;
    });
}

void write_rows(backend *base, int row0, int n, const float *in) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {
        CUDA_CHECK(cudaMemcpyAsync(r->x + (size_t)row0 * dim, in, sizeof(float) * n * dim, cudaMemcpyHostToDevice, r->stream));
        CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = false;
    });
}

// The end of a step on one rank: final norm and its vocabulary's LM head for the given rows, then either the
// logits (each rank fills its columns of out_logits) or sampled ids (params: each row drawn with uniform[i]; the
// ranks' candidates gathered, rank 0's pick returned). A capturing step is instantiated and replayed here. An
// eager step with more rows than the logits buffers hold goes in chunks (score's every-row logits).
void finish_rows(cuda_backend *b, rank_state *r, const int *rows, int n, const sampler_params *params,
                 const float *uniform, float *out_logits, int *out_ids) {
    const model_config *c = b->base.cfg;
    int nv = r->shard.n_vocab;
    if (params) memcpy(r->stage_uniform, uniform, n * sizeof(float));
    if (r->mode != REPLAY) {
        for (int i = 0; i < n; i++)
            CUDA_CHECK(cudaMemcpyAsync(r->xb + (size_t)i * c->dim, r->x + (size_t)rows[i] * c->dim, sizeof(float) * c->dim,
                                       cudaMemcpyDeviceToDevice, r->stream));
        CUDA_CHECK(launch_rmsnorm(r->xb, nullptr, r->final_norm, n, c->dim, c->norm_eps, r->h, r->stream));
        linear(r, r->h, r->lm_head, n, nv, c->dim, r->d_logits);
        if (params) {
            int k = sample_candidates_k(params->temp, params->top_k);
            size_t bytes = (size_t)n * PLAN_CANDIDATE_ROW_BYTES(k);
            CUDA_CHECK(launch_sample_candidates(r->d_logits, n, nv, r->shard.vocab0, params->temp, params->top_k,
                                                r->d_sample_scratch, r->d_cand, r->stream));
            const unsigned char *cand = b->tp > 1 ? all_gather_candidates(b, r, bytes) : r->d_cand;
            if (r->rank == 0) {
                CUDA_CHECK(cudaMemcpyAsync(r->d_uniform, r->stage_uniform, n * sizeof(float), cudaMemcpyHostToDevice, r->stream));
                CUDA_CHECK(launch_sample_pick(cand, b->tp, bytes, n, k, params->top_k, params->temp, params->top_p, params->min_p,
                                              r->d_uniform, r->d_ids, r->stream));
                CUDA_CHECK(cudaMemcpyAsync(r->stage_ids, r->d_ids, sizeof(int) * n, cudaMemcpyDeviceToHost, r->stream));
            }
        } else
            CUDA_CHECK(cudaMemcpyAsync(r->stage_logits, r->d_logits, sizeof(float) * n * nv, cudaMemcpyDeviceToHost, r->stream));
    }
    if (r->mode == CAPTURE) {
        cudaGraph_t g;
        cudaGraphExec_t exec;
        CUDA_CHECK(cudaStreamEndCapture(r->stream, &g));
        CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
        CUDA_CHECK(cudaGraphDestroy(g));
        if (r->graphs.size() >= b->graph_cache) {   // evict the least recently used
            auto lru = r->graphs.begin();
            for (auto it = r->graphs.begin(); it != r->graphs.end(); ++it)
                if (it->second.last_used < lru->second.last_used) lru = it;
            cudaGraphExecDestroy(lru->second.exec);
            r->graphs.erase(lru);
        }
        r->graphs[r->key] = {exec, 0};
        r->graph_captures++;
        r->mode = REPLAY;
    } else if (r->mode == REPLAY)
        r->graph_replays++;
    if (r->mode == REPLAY) {
        rank_state::graph &g = r->graphs[r->key];
        g.last_used = ++r->clock;
        CUDA_CHECK(cudaGraphLaunch(g.exec, r->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(r->stream));
    r->staged_unsynced = false;
    if (params) {
        if (r->rank == 0) memcpy(out_ids, r->stage_ids, sizeof(int) * n);
    } else
        for (int i = 0; i < n; i++)
            memcpy(out_logits + (size_t)i * c->vocab_size + r->shard.vocab0, r->stage_logits + (size_t)i * nv, sizeof(float) * nv);
}

void finish_step(cuda_backend *b, const int *rows, int n, const sampler_params *params, const float *uniform,
                 float *out_logits, int *out_ids) {
    each(b, [&](rank_state *r) {
        int chunk = r->cap_logit_rows < r->cap_rows ? r->cap_logit_rows : r->cap_rows;
        if (n > chunk && r->mode != EAGER) {   // cannot be: captured steps have at most PLAN_GRAPH_ROWS rows
            fprintf(stderr, "reprise: a captured step's logits exceed the planned rows (internal error)\n");
            abort();
        }
        for (int i = 0; i < n; i += chunk) {
            int k = n - i < chunk ? n - i : chunk;
            finish_rows(b, r, rows + i, k, params, params ? uniform + i : nullptr,
                        params ? nullptr : out_logits + (size_t)i * b->base.cfg->vocab_size, params ? out_ids + i : nullptr);
        }
        r->mode = EAGER;
    });
}

void logits(backend *base, const int *rows, int n, float *out) { finish_step(cb(base), rows, n, nullptr, nullptr, out, nullptr); }

// The device draws each row from its candidates; a row they cannot decide (SAMPLE_NEEDS_HOST: top-k off with a
// nucleus past SAMPLE_MAX_K tokens, say) gets its logits and is drawn on the host by the same rule and draw.
void sample(backend *base, const int *rows, int n, const sampler_params *p, const float *uniform, int *ids) {
    cuda_backend *b = cb(base);
    finish_step(b, rows, n, p, uniform, nullptr, ids);
    std::vector<int> host_rows, at;
    for (int i = 0; i < n; i++)
        if (ids[i] == SAMPLE_NEEDS_HOST) host_rows.push_back(rows[i]), at.push_back(i);
    if (host_rows.empty()) return;
    int vocab = b->base.cfg->vocab_size;
    std::vector<float> lg((size_t)host_rows.size() * vocab);
    std::vector<prob_id> work(vocab);
    finish_step(b, host_rows.data(), (int)host_rows.size(), nullptr, nullptr, lg.data(), nullptr);   // eager: x holds the step's rows
    for (size_t j = 0; j < host_rows.size(); j++)
        ids[at[j]] = sampler_pick(p, lg.data() + j * vocab, vocab, uniform[at[j]], work.data());
    b->host_sampled_rows += (long)host_rows.size();
}

size_t kv_bytes_per_token(const backend *base) {
    const cuda_backend *b = reinterpret_cast<const cuda_backend *>(base);
    return memory_plan_kv_bytes_per_position(base->cfg, b->tp > 0 ? b->tp : 1);
}

// A KV slot holds one device allocation of K and of V per rank (its KV heads): kv->k and kv->v point to host
// arrays of the ranks' pointers.
void kv_free(backend *base, kv_slot *kv) {
    cuda_backend *b = cb(base);
    bf16 **ks = static_cast<bf16 **>(kv->k), **vs = static_cast<bf16 **>(kv->v);
    if (ks)
        each(b, [&](rank_state *r) {
            CUDA_CHECK(cudaFree(ks[r->rank]));
            CUDA_CHECK(cudaFree(vs[r->rank]));
        });
    delete[] ks;
    delete[] vs;
    kv->k = kv->v = nullptr;
}

int kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    cuda_backend *b = cb(base);
    size_t n = (size_t)capacity * b->ranks[0]->shard.n_kv_heads * base->cfg->head_dim;
    bf16 **ks = new bf16 *[b->tp](), **vs = new bf16 *[b->tp]();
    kv->k = ks, kv->v = vs;
    kv->capacity = capacity;
    std::vector<int> failed(b->tp, 0);
    each(b, [&](rank_state *r) {
        if (cudaMalloc((void **)&ks[r->rank], n * sizeof(bf16)) != cudaSuccess ||
            cudaMalloc((void **)&vs[r->rank], n * sizeof(bf16)) != cudaSuccess)
            cudaGetLastError(), failed[r->rank] = 1;
    });
    for (int i = 0; i < b->tp; i++)
        if (failed[i]) {
            kv_free(base, kv);
            char where[64] = "";
            if (b->tp > 1) snprintf(where, sizeof where, " on GPU %d (rank %d)", b->ranks[i]->device, i);
            return rp_fail(err, "out of GPU memory%s for a KV slot of %d positions (%zu bytes)", where, capacity, 2 * n * sizeof(bf16));
        }
    return 0;
}

void kv_copy(backend *base, kv_slot *dst, const kv_slot *src, int n) {
    cuda_backend *b = cb(base);
    size_t bytes = sizeof(bf16) * (size_t)n * b->ranks[0]->shard.n_kv_heads * base->cfg->head_dim;
    // on the step stream, ordered before the prefill that reads it; the host does not wait
    each(b, [&](rank_state *r) {
        CUDA_CHECK(cudaMemcpyAsync(rank_k(dst, r), rank_k(src, r), bytes, cudaMemcpyDeviceToDevice, r->stream));
        CUDA_CHECK(cudaMemcpyAsync(rank_v(dst, r), rank_v(src, r), bytes, cudaMemcpyDeviceToDevice, r->stream));
    });
}

size_t weight_bytes(const backend *base) {   // one GPU's: rank 0 holds the largest share
    const cuda_backend *b = reinterpret_cast<const cuda_backend *>(base);
    return b->ranks.empty() ? 0 : b->ranks[0]->weight_bytes;
}

void destroy_rank(rank_state *r) {
    for (bf16 *p : r->weight_allocs) cudaFree(p);
    cudaFree(r->inv_freq);
    for (float *p : {r->x, r->xb, r->h, r->q, r->k, r->v, r->att, r->gate, r->up, r->tmp, r->partial, r->d_logits, r->reduce}) cudaFree(p);
    cudaFree(r->act_bf16), cudaFree(r->d_tokens), cudaFree(r->d_pos), cudaFree(r->d_krow), cudaFree(r->d_vrow);
    drop_graphs(r);
    cudaFreeHost(r->stage_pos), cudaFreeHost(r->stage_krow), cudaFreeHost(r->stage_vrow);
    cudaFreeHost(r->stage_tokens), cudaFreeHost(r->stage_logits), cudaFreeHost(r->stage_uniform), cudaFreeHost(r->stage_ids);
    cudaFree(r->d_ids), cudaFree(r->d_uniform), cudaFree(r->d_sample_scratch), cudaFree(r->d_cand);
    if (r->comm) ncclCommDestroy(r->comm);
    if (r->ready) cudaEventDestroy(r->ready), cudaEventDestroy(r->done);
    if (r->stream) cudaStreamDestroy(r->stream);
}

void destroy(backend *base) {
    cuda_backend *b = cb(base);
    if (!b->ranks.empty()) each(b, destroy_rank);
    b->threads.stop();
    for (rank_state *r : b->ranks) delete r;
    delete b;
}

}   // namespace

// Rank 0's counts: every rank captures and replays the same steps.
static const rank_state *rank0(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->ranks.at(0); }
extern "C" long backend_cuda_graph_replays(const backend *b) { return rank0(b)->graph_replays; }
extern "C" long backend_cuda_graph_captures(const backend *b) { return rank0(b)->graph_captures; }
extern "C" long backend_cuda_graphs_cached(const backend *b) { return (long)rank0(b)->graphs.size(); }
extern "C" long backend_cuda_host_sampled_rows(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->host_sampled_rows; }

namespace {

// The median of 9 timings, in seconds, of run() on stream s, after one warm-up; 0 with an error.
template <typename F> double median_seconds(F run, cudaStream_t s, const char *what, rp_err *err) {
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    std::vector<float> ms;
    cudaError_t e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    for (int i = 0; i < 10 && e == cudaSuccess; i++) {
        float t = 0;
        cudaEventRecord(t0, s);
        e = run();
        cudaEventRecord(t1, s);
        if (e == cudaSuccess) e = cudaEventSynchronize(t1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&t, t0, t1);
        if (i > 0) ms.push_back(t);
    }
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (e != cudaSuccess || ms.empty()) {
        rp_fail(err, "%s: %s", what, cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] * 1e-3;
}

}   // namespace

extern "C" double backend_cuda_copy_bandwidth(size_t bytes, rp_err *err) {
    void *src = nullptr, *dst = nullptr;
    double s = 0;
    if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess ||
        cudaMemset(src, 0x5a, bytes) != cudaSuccess)   // not zeros: nothing may shortcut the copy
        rp_fail(err, "copy bandwidth: %s", cudaGetErrorString(cudaGetLastError()));
    else s = median_seconds([&] { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice); }, 0, "copy bandwidth", err);
    cudaFree(src), cudaFree(dst);
    return s > 0 ? 2.0 * (double)bytes / s : 0;
}

extern "C" const char *backend_cuda_gemm_variant(int v) { return v >= 0 && v < GEMM_BF16_VARIANTS ? gemm_bf16_variant_name[v] : nullptr; }

extern "C" double backend_cuda_time_gemm(int R, int N, int K, int variant, rp_err *err) {
    // as many copies of W as make 512 MiB, used in turn, so that the weights come from memory, not from L2
    size_t w_elems = (size_t)N * K, copies = std::min<size_t>(64, std::max<size_t>(1, ((size_t)512 << 20) / (w_elems * 2)));
    bf16 *x = nullptr, *w = nullptr;
    float *out = nullptr;
    double s = 0;
    int turn = 0;
    if (cudaMalloc((void **)&x, (size_t)R * K * sizeof(bf16)) != cudaSuccess ||
        cudaMalloc((void **)&w, copies * w_elems * sizeof(bf16)) != cudaSuccess ||
        cudaMalloc((void **)&out, (size_t)R * N * sizeof(float)) != cudaSuccess ||
        cudaMemset(x, 0x3c, (size_t)R * K * sizeof(bf16)) != cudaSuccess ||   // BF16 0x3c3c: about 0.0115, not zero
        cudaMemset(w, 0x3c, copies * w_elems * sizeof(bf16)) != cudaSuccess)
        rp_fail(err, "gemm timing: %s", cudaGetErrorString(cudaGetLastError()));
    else
        s = median_seconds([&] {
                bf16 *wt = w + (turn++ % copies) * w_elems;
                return variant >= 0 ? launch_gemm_bf16_variant(x, wt, R, N, K, out, variant, 0) : launch_gemm_bf16(x, wt, R, N, K, out, 0);
            },
                           0, "gemm timing", err);
    cudaFree(x), cudaFree(w), cudaFree(out);
    return s;
}

extern "C" double backend_cuda_time_all_reduce(backend *base, size_t count, rp_err *err) {
    cuda_backend *b = cb(base);
    if (b->tp <= 1) return rp_fail(err, "all-reduce timing: the model runs on one GPU (--tp 1)"), 0;
    if (count > (size_t)b->ranks[0]->cap_rows * base->cfg->dim)
        return rp_fail(err, "all-reduce timing: %zu floats exceed a step's rows", count), 0;
    const int per_graph = b->share_gpu ? 1 : 20;
    double seconds = 0;
    each(b, [&](rank_state *r) {
        cudaGraphExec_t exec = nullptr;
        if (!b->share_gpu) {   // as a decode step runs it: inside a graph
            cudaGraph_t g;
            CUDA_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal));
            for (int i = 0; i < per_graph; i++) all_reduce(b, r, &rank_state::tmp, 0, count);
            CUDA_CHECK(cudaStreamEndCapture(r->stream, &g));
            CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
            CUDA_CHECK(cudaGraphDestroy(g));
        }
        rp_err mine;
        double t = median_seconds([&] {
                if (exec) return cudaGraphLaunch(exec, r->stream);
                all_reduce(b, r, &rank_state::tmp, 0, count);
                return cudaSuccess;
            }, r->stream, "all-reduce timing", r->rank == 0 ? err : &mine);
        if (r->rank == 0) seconds = t / per_graph;
        if (exec) cudaGraphExecDestroy(exec);
    });
    return seconds;
}

extern "C" const char *backend_cuda_device_name(void) {
    static cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        return "";
    }
    return prop.name;
}

extern "C" void backend_cuda_profile(int on) {
    cudaDeviceSynchronize();
    if (on) cudaProfilerStart();
    else cudaProfilerStop();
}

extern "C" backend *backend_cuda_create(const model_config *cfg, rp_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        rp_fail(err, "--backend cuda: no CUDA GPU found (%s); use --backend cpu", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return nullptr;
    }
#ifdef REPRISE_CUDA_EMULATION
    fprintf(stderr, "reprise: the CUDA backend runs under CPU emulation here (a test build): correct, and slow\n");
#endif
    cuda_backend *b = new cuda_backend();
    b->base.name = "cuda";
    b->base.cfg = cfg;
    b->base.load_weights = load_weights, b->base.reserve = reserve, b->base.embed = embed, b->base.layer = layer_run;
    b->base.read_rows = read_rows, b->base.write_rows = write_rows, b->base.kv_copy = kv_copy, b->base.logits = logits;
    b->base.kv_alloc = kv_alloc, b->base.kv_free = kv_free, b->base.kv_bytes_per_token = kv_bytes_per_token;
    b->base.weight_bytes = weight_bytes, b->base.destroy = destroy, b->base.step_begin = step_begin;
    b->base.sample = sample, b->base.plan = plan;
    const char *g = getenv("REPRISE_CUDA_GRAPHS");
    b->use_graphs = !(g && !strcmp(g, "0"));
    const char *gc = getenv("REPRISE_CUDA_GRAPH_CACHE");
    b->graph_cache = gc && atoi(gc) > 0 ? (size_t)atoi(gc) : 64;
    return &b->base;   // the ranks come with the plan, which says how many
}
