// The CUDA backend: BF16 weights uploaded once (every visit of a layer uses the same device pointers), a BF16 KV
// cache per visit, float32 activations. A layer execution gathers its sequences' rows, then: RMSNorm, the QKV
// projections (BF16 activations through reprise's batch-invariant tensor-core GEMM), bias + q/k norm + RoPE + KV append fused,
// attention (split-KV for decode rows, tiled flash-style for a prompt's rows), output projection, residual fused into the next RMSNorm, SwiGLU MLP, residual.
//
// Decode steps run as CUDA graphs: the second step of a shape (the engine's key: sequences, schedules, one token
// each) is captured from the stream and instantiated - a shape seen once, as the last steps of a sweep's batch
// where sequences finish one by one, is never worth a capture - and later steps of that shape only refresh pinned host staging
// buffers - tokens, and per layer execution the rows' positions and KV slot pointers - which the graph's first
// copies read, and replay. Everything else a kernel needs lives at fixed device addresses; attention's grid is
// sized by the KV slots' capacity, not the current length, so one graph serves the whole generation.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include <cuda_profiler_api.h>

#include "kernels/backend_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
extern "C" {
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "loader/weights.h"
}

namespace {

enum step_mode { EAGER, CAPTURE, REPLAY };

struct cuda_backend {
    backend base;
    int use_graphs;                               // REPRISE_CUDA_GRAPHS=0 turns them off
    step_mode mode;
    unsigned long long key;
    // Pinned host memory that a captured graph's copies read. Each layer execution of a step takes its rows'
    // positions and KV slot pointers from the next entries of the arena, so a replay finds them where it was
    // captured; the arena holds a step's (row, visit) pairs (step_begin makes room before any capture).
    int *stage_pos;                               // (stage_cap) pinned
    bf16 **stage_krow, **stage_vrow;              // (stage_cap) pinned
    size_t stage_cap, stage_at;
    int *stage_tokens;                            // (cap_rows) pinned
    float *stage_logits;                          // (cap_logit_rows, vocab) pinned
    float *stage_uniform;                         // (cap_logit_rows) pinned: each row's draw when sampling
    int *stage_ids;                               // (cap_logit_rows) pinned: sampled ids
    struct graph {
        cudaGraphExec_t exec;
        unsigned long long last_used;
    };
    std::map<unsigned long long, graph> graphs;   // at most graph_cache, the least recently used evicted
    std::set<unsigned long long> seen;            // shapes run once, eagerly (captured if they come again)
    unsigned long long clock;
    size_t graph_cache;                           // REPRISE_CUDA_GRAPH_CACHE, default 64
    long graph_replays, graph_captures;
    cudaStream_t stream;
    bf16 *embed, *final_norm, *lm_head;           // lm_head aliases embed when tied
    std::vector<std::vector<bf16 *>> layers;      // [layer][layer_tensor], nullptr where absent
    float *inv_freq;                              // (head_dim / 2)
    size_t weight_bytes;
    memory_plan plan;                             // the buffers below are sized by it
    int cap_rows, cap_logit_rows;
    float *x, *xb, *h, *q, *k, *v, *att, *gate, *up, *tmp, *partial;
    size_t cap_partial;
    bf16 *act_bf16;                               // a BF16 copy of a GEMM's input
    int *d_tokens, *d_pos, *d_ids;
    float *d_uniform;
    unsigned char *d_sample_scratch;
    bf16 **d_krow, **d_vrow;
    float *d_logits;
};

cuda_backend *cb(backend *b) { return reinterpret_cast<cuda_backend *>(b); }

template <typename T> T *dev_alloc(size_t n) {
    T *p = nullptr;
    if (n) CUDA_CHECK(cudaMalloc((void **)&p, n * sizeof(T)));
    return p;
}

bf16 *upload(cuda_backend *b, const st_tensor *t) {
    size_t n = (size_t)st_numel(t);
    std::vector<float> f(n);
    tensor_to_f32(t, f.data());
    std::vector<bf16> h(n);
    for (size_t i = 0; i < n; i++) h[i] = __float2bfloat16(f[i]);
    bf16 *d = dev_alloc<bf16>(n);
    CUDA_CHECK(cudaMemcpy(d, h.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
    b->weight_bytes += n * sizeof(bf16);
    return d;
}

int load_weights(backend *base, const st_archive *a, rp_err *err) {
    cuda_backend *b = cb(base);
    const model_config *c = base->cfg;
    if (weights_check(c, a, err)) return -1;
    b->embed = upload(b, weights_global(c, a, G_EMBED));
    b->final_norm = upload(b, weights_global(c, a, G_FINAL_NORM));
    b->lm_head = c->tied_embeddings ? b->embed : upload(b, weights_global(c, a, G_LM_HEAD));
    b->layers.assign(c->n_layers, std::vector<bf16 *>(W_N_LAYER_TENSORS, nullptr));
    int64_t shape[2];
    for (int l = 0; l < c->n_layers; l++)
        for (int w = 0; w < W_N_LAYER_TENSORS; w++)
            if (layer_tensor_shape(c, (layer_tensor)w, shape)) b->layers[l][w] = upload(b, weights_layer(a, l, (layer_tensor)w));
    return 0;
}

const int ATTENTION_CHUNK = PLAN_ATTENTION_CHUNK;   // positions per split of the attention kernel
const int GRAPH_ROWS = PLAN_GRAPH_ROWS;             // decode steps of up to this many rows are captured as graphs

void drop_graphs(cuda_backend *b) {   // their buffers moved
    for (auto &g : b->graphs) cudaGraphExecDestroy(g.second.exec);
    b->graphs.clear();
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

void grow_stage(cuda_backend *b, size_t entries) {
    realloc_pinned(&b->stage_pos, entries * sizeof(int));
    realloc_pinned(&b->stage_krow, entries * sizeof(bf16 *));
    realloc_pinned(&b->stage_vrow, entries * sizeof(bf16 *));
    b->stage_cap = entries;
    drop_graphs(b);   // they read the old arena
}

// (Re)allocates every step buffer as the plan sizes it (memory_plan.c names them); the residual stream's rows
// survive. Never called while a graph is being captured.
void alloc_buffers(cuda_backend *b, const memory_plan *p) {
    const size_t *n = p->buffer;
    const model_config *c = b->base.cfg;
    std::vector<float> keep((size_t)b->cap_rows * c->dim);   // the residual stream survives a grow
    if (b->cap_rows) CUDA_CHECK(cudaMemcpy(keep.data(), b->x, keep.size() * sizeof(float), cudaMemcpyDeviceToHost));
    realloc_dev(&b->x, n[BUF_X]);
    if (b->cap_rows) CUDA_CHECK(cudaMemcpy(b->x, keep.data(), keep.size() * sizeof(float), cudaMemcpyHostToDevice));
    realloc_dev(&b->xb, n[BUF_XB]), realloc_dev(&b->h, n[BUF_H]), realloc_dev(&b->tmp, n[BUF_TMP]);
    realloc_dev(&b->q, n[BUF_Q]), realloc_dev(&b->att, n[BUF_ATT]), realloc_dev(&b->k, n[BUF_K]), realloc_dev(&b->v, n[BUF_V]);
    realloc_dev(&b->gate, n[BUF_GATE]), realloc_dev(&b->up, n[BUF_UP]), realloc_dev(&b->act_bf16, n[BUF_ACT_BF16]);
    realloc_dev(&b->d_tokens, n[BUF_TOKENS]), realloc_dev(&b->d_pos, n[BUF_POS]);
    realloc_dev(&b->d_krow, n[BUF_KROW]), realloc_dev(&b->d_vrow, n[BUF_VROW]);
    realloc_dev(&b->d_logits, n[BUF_LOGITS]), realloc_dev(&b->d_ids, n[BUF_IDS]), realloc_dev(&b->d_uniform, n[BUF_UNIFORM]);
    realloc_dev(&b->d_sample_scratch, n[BUF_SAMPLE_SCRATCH]), realloc_dev(&b->partial, n[BUF_PARTIAL]);
    if (!b->inv_freq) {   // the RoPE table is set once: it never changes size
        int half = c->head_dim / 2;
        std::vector<double> inv(half);
        config_rope_inv_freq(c, inv.data());
        std::vector<float> f(inv.begin(), inv.end());
        realloc_dev(&b->inv_freq, n[BUF_ROPE]);
        CUDA_CHECK(cudaMemcpy(b->inv_freq, f.data(), half * sizeof(float), cudaMemcpyHostToDevice));
    }
    b->cap_partial = n[BUF_PARTIAL] / sizeof(float);
    const plan_shape &s = p->shape;
    realloc_pinned(&b->stage_tokens, (size_t)s.ubatch * sizeof(int));
    realloc_pinned(&b->stage_logits, (size_t)s.logit_rows * c->vocab_size * sizeof(float));
    realloc_pinned(&b->stage_uniform, (size_t)s.logit_rows * sizeof(float));
    realloc_pinned(&b->stage_ids, (size_t)s.logit_rows * sizeof(int));
    grow_stage(b, (size_t)s.ubatch * s.max_visits);
    b->cap_rows = s.ubatch;
    b->cap_logit_rows = s.logit_rows;
    b->plan = *p;
    drop_graphs(b);
}

// Refuses a plan that does not fit the device's free memory (checked before any weight is uploaded), naming it.
int plan(backend *base, const memory_plan *p, rp_err *err) {
    cuda_backend *b = cb(base);
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (p->device + PLAN_HEADROOM > free_b) {
        char text[1024];
        memory_plan_format(p, free_b, text, sizeof text);
        return rp_fail(err, "the run needs %.3f GiB of GPU memory, more than the %.3f GiB free (of %.3f GiB) less "
                            "%.3f GiB headroom; its plan:\n%sa smaller -c, --batch or --ubatch, or a GPU with more "
                            "memory, would fit (reprise inspect --gpu-memory GIB prints what fits)",
                       p->device / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0,
                       PLAN_HEADROOM / 1073741824.0, text);
    }
    alloc_buffers(b, p);
    return 0;
}

// A step with more rows than planned (the engine chunks by the plan's ubatch, so only a direct caller asks):
// grow eagerly, never during a capture.
void reserve(backend *base, int n_rows) {
    cuda_backend *b = cb(base);
    if (n_rows <= b->cap_rows) return;
    memory_plan p;
    plan_shape s = b->plan.shape;
    s.ubatch = n_rows;
    memory_plan_compute(base->cfg, &s, &p);
    alloc_buffers(b, &p);
}

void step_begin(backend *base, unsigned long long key, size_t staged_rows) {
    cuda_backend *b = cb(base);
    b->stage_at = 0;
    if (staged_rows > b->stage_cap) grow_stage(b, staged_rows);   // before any capture: pinned allocation is not capturable
    b->key = key;
    b->mode = EAGER;
    if (b->use_graphs && key) {
        if (b->graphs.count(key)) b->mode = REPLAY;
        else if (b->seen.count(key)) b->mode = CAPTURE;
        else {
            if (b->seen.size() >= 64 * b->graph_cache) b->seen.clear();   // bounded too: a long sweep sees many shapes
            b->seen.insert(key);
        }
    }
    if (b->mode == CAPTURE) CUDA_CHECK(cudaStreamBeginCapture(b->stream, cudaStreamCaptureModeThreadLocal));
}

void embed(backend *base, const int *tokens, int n, int row0) {
    cuda_backend *b = cb(base);
    memcpy(b->stage_tokens + row0, tokens, n * sizeof(int));
    if (b->mode == REPLAY) return;
    CUDA_CHECK(cudaMemcpyAsync(b->d_tokens + row0, b->stage_tokens + row0, n * sizeof(int), cudaMemcpyHostToDevice, b->stream));
    CUDA_CHECK(launch_embed(b->embed, b->d_tokens + row0, n, base->cfg->dim, b->x + (size_t)row0 * base->cfg->dim, b->stream));
}

// out (R, N) = in (R, K) . W^T: the activations rounded to BF16, then reprise's tensor-core GEMM, for every R. One
// numeric path whatever the batch, so a sequence's logits do not depend on the sequences beside it.
void linear(cuda_backend *b, const float *in, const bf16 *W, int R, int N, int K, float *out) {
    CUDA_CHECK(launch_to_bf16(in, (long)R * K, b->act_bf16, b->stream));
    CUDA_CHECK(launch_gemm_bf16(b->act_bf16, W, R, N, K, out, b->stream));
}

void layer_run(backend *base, int layer, const visit_part *parts, int n_parts) {
    cuda_backend *b = cb(base);
    const model_config *c = base->cfg;
    const std::vector<bf16 *> &w = b->layers[layer];
    int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;

    // each row's position and KV slot, staged where a replayed graph reads them
    int R = 0, max_cap = 0, max_len = 0;
    for (int p = 0; p < n_parts; p++) R += parts[p].n_rows;
    if (b->stage_at + R > b->stage_cap) {   // cannot be: step_begin made room for the step's rows
        fprintf(stderr, "reprise: staging arena overrun (internal error)\n");
        abort();
    }
    int *st_pos = b->stage_pos + b->stage_at;
    bf16 **st_krow = b->stage_krow + b->stage_at, **st_vrow = b->stage_vrow + b->stage_at;
    b->stage_at += R;
    R = 0;
    for (int p = 0; p < n_parts; p++) {
        if (parts[p].pos0 + parts[p].n_rows > max_len) max_len = parts[p].pos0 + parts[p].n_rows;
        for (int i = 0; i < parts[p].n_rows; i++, R++) {
            st_pos[R] = parts[p].pos0 + i;
            st_krow[R] = (bf16 *)parts[p].kv->k;
            st_vrow[R] = (bf16 *)parts[p].kv->v;
        }
        if (parts[p].kv->capacity > max_cap) max_cap = parts[p].kv->capacity;
    }
    // A decode-sized call (the steps graphs capture) splits by the KV slots' capacity, so that the grid is the same
    // at every step, into scratch reserved up front; a prefill-sized one (never captured) by its current length.
    const int chunk = ATTENTION_CHUNK;
    int decode_sized = R <= GRAPH_ROWS, n_splits = ((decode_sized ? max_cap : max_len) + chunk - 1) / chunk;
    int any_prefill = 0;   // then the split-KV kernel only serves single-row parts, one at a time
    for (int p = 0; p < n_parts; p++) any_prefill |= parts[p].prompt;
    size_t need = (size_t)(any_prefill ? 1 : R) * c->n_heads * n_splits * (hd + 2);
    if (need > b->cap_partial) {
        if (b->mode != EAGER) {   // cannot be: decode-sized scratch is reserved for the longest context
            fprintf(stderr, "reprise: attention scratch too small for a captured step (internal error)\n");
            abort();
        }
        realloc_dev(&b->partial, need * sizeof(float));
        b->cap_partial = need;
        drop_graphs(b);
    }
    if (b->mode == REPLAY) return;
    // gather the parts' rows
    for (int p = 0, r = 0; p < n_parts; r += parts[p].n_rows, p++)
        CUDA_CHECK(cudaMemcpyAsync(b->xb + (size_t)r * dim, b->x + (size_t)parts[p].row0 * dim,
                                   sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, b->stream));
    CUDA_CHECK(cudaMemcpyAsync(b->d_pos, st_pos, R * sizeof(int), cudaMemcpyHostToDevice, b->stream));
    CUDA_CHECK(cudaMemcpyAsync(b->d_krow, st_krow, R * sizeof(bf16 *), cudaMemcpyHostToDevice, b->stream));
    CUDA_CHECK(cudaMemcpyAsync(b->d_vrow, st_vrow, R * sizeof(bf16 *), cudaMemcpyHostToDevice, b->stream));

    // attention block
    CUDA_CHECK(launch_rmsnorm(b->xb, nullptr, w[W_ATTN_NORM], R, dim, c->norm_eps, b->h, b->stream));
    linear(b, b->h, w[W_Q], R, qd, dim, b->q);
    linear(b, b->h, w[W_K], R, kvd, dim, b->k);
    linear(b, b->h, w[W_V], R, kvd, dim, b->v);
    CUDA_CHECK(launch_qkv_rope(b->q, b->k, b->v, w[W_Q_BIAS], w[W_K_BIAS], w[W_V_BIAS], w[W_Q_NORM], w[W_K_NORM], b->inv_freq,
                               b->d_pos, b->d_krow, b->d_vrow, R, c->n_heads, c->n_kv_heads, hd, c->norm_eps, b->stream));
    // one query per sequence (decode): split-KV over all rows; a sequence's prompt: the tiled prefill kernel
    if (!any_prefill)
        CUDA_CHECK(launch_attention(b->q, b->d_pos, b->d_krow, b->d_vrow, R, c->n_heads, c->n_kv_heads, hd, n_splits, chunk,
                                    b->partial, b->att, b->stream));
    else
        for (int p = 0, r = 0; p < n_parts; r += parts[p].n_rows, p++) {
            float *qr = b->q + (size_t)r * qd, *ar = b->att + (size_t)r * qd;
            if (parts[p].prompt)
                CUDA_CHECK(launch_attention_prefill(qr, parts[p].n_rows, parts[p].pos0, (const bf16 *)parts[p].kv->k,
                                                    (const bf16 *)parts[p].kv->v, c->n_heads, c->n_kv_heads, hd, ar, b->stream));
            else
                CUDA_CHECK(launch_attention(qr, b->d_pos + r, b->d_krow + r, b->d_vrow + r, 1, c->n_heads, c->n_kv_heads, hd,
                                            n_splits, chunk, b->partial, ar, b->stream));
        }
    linear(b, b->att, w[W_O], R, dim, qd, b->tmp);

    // MLP block: the residual add fused into the norm
    CUDA_CHECK(launch_rmsnorm(b->xb, b->tmp, w[W_FFN_NORM], R, dim, c->norm_eps, b->h, b->stream));
    linear(b, b->h, w[W_GATE], R, c->hidden_dim, dim, b->gate);
    linear(b, b->h, w[W_UP], R, c->hidden_dim, dim, b->up);
    CUDA_CHECK(launch_swiglu(b->gate, b->up, (long)R * c->hidden_dim, b->stream));
    linear(b, b->gate, w[W_DOWN], R, dim, c->hidden_dim, b->tmp);
    CUDA_CHECK(launch_add(b->xb, b->tmp, (long)R * dim, b->stream));

    for (int p = 0, r = 0; p < n_parts; r += parts[p].n_rows, p++)
        CUDA_CHECK(cudaMemcpyAsync(b->x + (size_t)parts[p].row0 * dim, b->xb + (size_t)r * dim,
                                   sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, b->stream));
}

void read_rows(backend *base, int row0, int n, float *out) {
    cuda_backend *b = cb(base);
    CUDA_CHECK(cudaMemcpy(out, b->x + (size_t)row0 * base->cfg->dim, sizeof(float) * n * base->cfg->dim, cudaMemcpyDeviceToHost));
}

void write_rows(backend *base, int row0, int n, const float *in) {
    cuda_backend *b = cb(base);
    CUDA_CHECK(cudaMemcpy(b->x + (size_t)row0 * base->cfg->dim, in, sizeof(float) * n * base->cfg->dim, cudaMemcpyHostToDevice));
}

// The end of a step: final norm and LM head for the given rows, then either the logits (out_logits) or sampled
// ids (params: each row drawn with uniform[i]) back to the host. A capturing step is instantiated and replayed
// here. An eager step with more rows than the logits buffers hold goes in chunks (score's every-row logits).
void finish_rows(cuda_backend *b, const int *rows, int n, const sampler_params *params, const float *uniform,
                 float *out_logits, int *out_ids) {
    const model_config *c = b->base.cfg;
    size_t bytes = params ? sizeof(int) * n : sizeof(float) * n * c->vocab_size;
    if (params) memcpy(b->stage_uniform, uniform, n * sizeof(float));
    if (b->mode != REPLAY) {
        for (int i = 0; i < n; i++)
            CUDA_CHECK(cudaMemcpyAsync(b->xb + (size_t)i * c->dim, b->x + (size_t)rows[i] * c->dim, sizeof(float) * c->dim,
                                       cudaMemcpyDeviceToDevice, b->stream));
        CUDA_CHECK(launch_rmsnorm(b->xb, nullptr, b->final_norm, n, c->dim, c->norm_eps, b->h, b->stream));
        linear(b, b->h, b->lm_head, n, c->vocab_size, c->dim, b->d_logits);
        if (params) {
            CUDA_CHECK(cudaMemcpyAsync(b->d_uniform, b->stage_uniform, n * sizeof(float), cudaMemcpyHostToDevice, b->stream));
            CUDA_CHECK(launch_sample(b->d_logits, n, c->vocab_size, params->temp, params->top_k, params->top_p, params->min_p,
                                     b->d_uniform, b->d_sample_scratch, b->d_ids, b->stream));
            CUDA_CHECK(cudaMemcpyAsync(b->stage_ids, b->d_ids, bytes, cudaMemcpyDeviceToHost, b->stream));
        } else
            CUDA_CHECK(cudaMemcpyAsync(b->stage_logits, b->d_logits, bytes, cudaMemcpyDeviceToHost, b->stream));
    }
    if (b->mode == CAPTURE) {
        cudaGraph_t g;
        cudaGraphExec_t exec;
        CUDA_CHECK(cudaStreamEndCapture(b->stream, &g));
        CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
        CUDA_CHECK(cudaGraphDestroy(g));
        if (b->graphs.size() >= b->graph_cache) {   // evict the least recently used
            auto lru = b->graphs.begin();
            for (auto it = b->graphs.begin(); it != b->graphs.end(); ++it)
                if (it->second.last_used < lru->second.last_used) lru = it;
            cudaGraphExecDestroy(lru->second.exec);
            b->graphs.erase(lru);
        }
        b->graphs[b->key] = {exec, 0};
        b->graph_captures++;
        b->mode = REPLAY;
    } else if (b->mode == REPLAY)
        b->graph_replays++;
    if (b->mode == REPLAY) {
        cuda_backend::graph &g = b->graphs[b->key];
        g.last_used = ++b->clock;
        CUDA_CHECK(cudaGraphLaunch(g.exec, b->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(b->stream));
    if (params) memcpy(out_ids, b->stage_ids, bytes);
    else memcpy(out_logits, b->stage_logits, bytes);
}

void finish_step(cuda_backend *b, const int *rows, int n, const sampler_params *params, const float *uniform,
                 float *out_logits, int *out_ids) {
    int chunk = b->cap_logit_rows < b->cap_rows ? b->cap_logit_rows : b->cap_rows;
    if (n > chunk && b->mode != EAGER) {   // cannot be: captured steps have at most PLAN_GRAPH_ROWS rows
        fprintf(stderr, "reprise: a captured step's logits exceed the planned rows (internal error)\n");
        abort();
    }
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        finish_rows(b, rows + i, k, params, params ? uniform + i : nullptr,
                    params ? nullptr : out_logits + (size_t)i * b->base.cfg->vocab_size, params ? out_ids + i : nullptr);
    }
    b->mode = EAGER;
}

void logits(backend *base, const int *rows, int n, float *out) { finish_step(cb(base), rows, n, nullptr, nullptr, out, nullptr); }

void sample(backend *base, const int *rows, int n, const sampler_params *p, const float *uniform, int *ids) {
    finish_step(cb(base), rows, n, p, uniform, nullptr, ids);
}

size_t kv_bytes_per_token(const backend *base) { return memory_plan_kv_bytes_per_position(base->cfg); }

int kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    size_t n = (size_t)capacity * base->cfg->n_kv_heads * base->cfg->head_dim;
    kv->k = kv->v = nullptr;
    kv->capacity = capacity;
    if (cudaMalloc(&kv->k, n * sizeof(bf16)) != cudaSuccess || cudaMalloc(&kv->v, n * sizeof(bf16)) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(kv->k);
        kv->k = kv->v = nullptr;
        return rp_fail(err, "out of GPU memory for a KV slot of %d positions (%zu bytes)", capacity, 2 * n * sizeof(bf16));
    }
    return 0;
}

void kv_free(backend *, kv_slot *kv) {
    CUDA_CHECK(cudaFree(kv->k));
    CUDA_CHECK(cudaFree(kv->v));
    kv->k = kv->v = nullptr;
}

void kv_copy(backend *base, kv_slot *dst, const kv_slot *src, int n) {
    size_t bytes = sizeof(bf16) * (size_t)n * base->cfg->n_kv_heads * base->cfg->head_dim;
    // on the step stream, ordered before the prefill that reads it; the host does not wait
    CUDA_CHECK(cudaMemcpyAsync(dst->k, src->k, bytes, cudaMemcpyDeviceToDevice, cb(base)->stream));
    CUDA_CHECK(cudaMemcpyAsync(dst->v, src->v, bytes, cudaMemcpyDeviceToDevice, cb(base)->stream));
}

size_t weight_bytes(const backend *base) { return reinterpret_cast<const cuda_backend *>(base)->weight_bytes; }

void destroy(backend *base) {
    cuda_backend *b = cb(base);
    for (auto &l : b->layers)
        for (bf16 *p : l) cudaFree(p);
    if (b->lm_head != b->embed) cudaFree(b->lm_head);
    cudaFree(b->embed), cudaFree(b->final_norm), cudaFree(b->inv_freq);
    for (float *p : {b->x, b->xb, b->h, b->q, b->k, b->v, b->att, b->gate, b->up, b->tmp, b->partial, b->d_logits}) cudaFree(p);
    cudaFree(b->act_bf16), cudaFree(b->d_tokens), cudaFree(b->d_pos), cudaFree(b->d_krow), cudaFree(b->d_vrow);
    drop_graphs(b);
    cudaFreeHost(b->stage_pos), cudaFreeHost(b->stage_krow), cudaFreeHost(b->stage_vrow);
    cudaFreeHost(b->stage_tokens), cudaFreeHost(b->stage_logits), cudaFreeHost(b->stage_uniform), cudaFreeHost(b->stage_ids);
    cudaFree(b->d_ids), cudaFree(b->d_uniform), cudaFree(b->d_sample_scratch);
    cudaStreamDestroy(b->stream);
    delete b;
}

}   // namespace

extern "C" long backend_cuda_graph_replays(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->graph_replays; }
extern "C" long backend_cuda_graph_captures(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->graph_captures; }
extern "C" long backend_cuda_graphs_cached(const backend *b) { return (long)reinterpret_cast<const cuda_backend *>(b)->graphs.size(); }

namespace {

// The median of 9 timings, in seconds, of run() on the legacy stream, after one warm-up; 0 with an error.
template <typename F> double median_seconds(F run, const char *what, rp_err *err) {
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    std::vector<float> ms;
    cudaError_t e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    for (int i = 0; i < 10 && e == cudaSuccess; i++) {
        float t = 0;
        cudaEventRecord(t0);
        e = run();
        cudaEventRecord(t1);
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
    else s = median_seconds([&] { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice); }, "copy bandwidth", err);
    cudaFree(src), cudaFree(dst);
    return s > 0 ? 2.0 * (double)bytes / s : 0;
}

extern "C" double backend_cuda_time_gemm(int R, int N, int K, rp_err *err) {
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
        s = median_seconds([&] { return launch_gemm_bf16(x, w + (turn++ % copies) * w_elems, R, N, K, out, 0); },
                           "gemm timing", err);
    cudaFree(x), cudaFree(w), cudaFree(out);
    return s;
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
    CUDA_CHECK(cudaStreamCreate(&b->stream));
    return &b->base;
}
