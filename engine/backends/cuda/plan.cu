// The CUDA backend's memory: the ranks set up for the plan's tp, the plan checked against free memory, every step
// buffer and the pinned staging allocated by it.
#include "engine/backends/cuda/internal.h"
extern "C" {
#include "loader/quantization.h"
}

namespace reprise_cuda {

void drop_graphs(rank_state *r) {   // their buffers moved
    for (auto &g : r->graphs) cudaGraphExecDestroy(g.second.exec);
    r->graphs.clear();
}

void grow_stage(rank_state *r, size_t entries) {
    realloc_pinned(&r->stage_meta, entries * PLAN_META_ROW_BYTES);
    realloc_dev(&r->d_meta, entries * PLAN_META_ROW_BYTES);
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
    realloc_dev(&r->xb, n[BUF_XB]), realloc_dev(&r->tmp, n[BUF_TMP]);
    realloc_dev(&r->q, n[BUF_Q]), realloc_dev(&r->k, n[BUF_K]), realloc_dev(&r->v, n[BUF_V]);
    realloc_dev(&r->act_bf16, n[BUF_ACT_BF16]), realloc_dev(&r->mlp_bf16, n[BUF_MLP_BF16]);
    realloc_dev(&r->x_bf16, n[BUF_X_BF16]), realloc_dev(&r->row_ssq, n[BUF_ROW_SSQ]);
    realloc_dev(&r->d_tokens, n[BUF_TOKENS]), realloc_dev(&r->reduce, n[BUF_REDUCE]);
    realloc_dev(&r->d_logits, n[BUF_LOGITS]), realloc_dev(&r->d_ids, n[BUF_IDS]), realloc_dev(&r->d_params, n[BUF_SAMPLE_PARAMS]);
    realloc_dev(&r->d_cand, n[BUF_CANDIDATES]), realloc_dev(&r->d_logprobs, n[BUF_LOGPROBS]);
    realloc_dev(&r->partial, n[BUF_PARTIAL]), realloc_dev(&r->att_count, n[BUF_ATT_COUNT]);
    if (n[BUF_ATT_COUNT]) CUDA_CHECK(cudaMemset(r->att_count, 0, n[BUF_ATT_COUNT]));
    realloc_dev(&r->gemm_ws.partial, n[BUF_GEMM_PARTIAL]), realloc_dev(&r->gemm_ws.count, n[BUF_GEMM_COUNT]);
    realloc_dev(&r->stash, n[BUF_STASH]);
    if (n[BUF_GEMM_COUNT]) CUDA_CHECK(cudaMemset(r->gemm_ws.count, 0, n[BUF_GEMM_COUNT]));
    if (!r->inv_freq) {   // the RoPE table is set once: it never changes size
        int half = c->head_dim / 2;
        std::vector<double> inv(half);
        config_rope_inv_freq(c, inv.data());
        std::vector<float> f(inv.begin(), inv.end());
        realloc_dev(&r->inv_freq, n[BUF_ROPE]);
        CUDA_CHECK(cudaMemcpy(r->inv_freq, f.data(), half * sizeof(float), cudaMemcpyHostToDevice));
    }
    r->cap_partial = n[BUF_PARTIAL] / sizeof(float), r->cap_att_count = n[BUF_ATT_COUNT] / sizeof(unsigned);
    const plan_shape &s = p->shape;
    realloc_pinned(&r->stage_tokens, (size_t)s.ubatch * sizeof(int));
    realloc_pinned(&r->stage_logits, (size_t)s.logit_rows * r->shard.n_vocab * sizeof(float));
    realloc_pinned(&r->stage_params, n[BUF_SAMPLE_PARAMS]);
    realloc_pinned(&r->stage_ids, n[BUF_IDS]);
    realloc_pinned(&r->stage_logprobs, n[BUF_LOGPROBS]);
    grow_stage(r, n[BUF_META] / PLAN_META_ROW_BYTES);   // (ubatch x max_visits)
    r->cap_rows = s.ubatch;
    r->cap_logit_rows = s.logit_rows;
    r->graph_rows = memory_plan_graph_rows(p);
    r->sample_slices = memory_plan_sample_slices(c, p);
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
        CUDA_CHECK(gemm_wgmma_probe(&r->gemm_ws.wgmma, r->stream));   // prefill on wgmma where it keeps the bits
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
    const quant_config *q = &base->cfg->quant;
    if (q->method != QUANT_NONE && q->block_cols) {   // scales along a row: the GEMM's groups end between k-steps
        char layout[96];
        quant_describe(q, layout, sizeof layout);
        if (q->block_cols % 16)
            return rp_fail(err, "this checkpoint's FP8 scales cover %d inputs of a row (%s): the CUDA backend's GEMM takes "
                                "groups of a multiple of 16 inputs; use --backend cpu", q->block_cols, layout);
        for (int rank = 0; rank < p->shape.tp; rank++) {   // a rank's columns start at a multiple of 16 in their group
            tp_shard s;
            tp_block blk;
            tp_shard_of(base->cfg, p->shape.tp, rank, &s);
            for (int w = 0; w < W_N_LAYER_TENSORS; w++)
                if (tp_layer_block(base->cfg, &s, (layer_tensor)w, &blk) && blk.col0 % q->block_cols % 16)
                    return rp_fail(err, "--tp %d: rank %d's columns of %s start %lld inputs into a group of %d FP8 scales (%s); "
                                        "the CUDA backend's GEMM needs a multiple of 16 there; use another --tp",
                                   p->shape.tp, rank, layer_tensor_suffix[w], (long long)(blk.col0 % q->block_cols),
                                   q->block_cols, layout);
        }
    }
    if (p->shape.kv_dtype == KV_DTYPE_F32)
        return rp_fail(err, "--kv-dtype f32: the CUDA backend keeps its KV cache in BF16 (use --backend cpu for float32)");
    if (setup_ranks(b, p->shape.tp, err)) return -1;
    each(b, [](rank_state *r) { CUDA_CHECK(cudaMemGetInfo(&r->free_bytes, &r->total_bytes)); });
    if (p->shape.kv_fit) {   // the KV takes what the fullest GPU leaves free
        size_t least = SIZE_MAX;
        for (rank_state *r : b->ranks) least = std::min(least, r->free_bytes / (b->share_gpu ? b->tp : 1));
        memory_plan_fit_kv(base->cfg, p, least);
    }
    for (rank_state *r : b->ranks)   // a stash that does not fit is not planned: the engine goes through the host
        if (p->shape.stash_rows && (b->share_gpu ? b->tp : 1) * p->device + PLAN_HEADROOM > r->free_bytes) {
            plan_shape s = p->shape;
            s.stash_rows = 0;
            memory_plan_compute(base->cfg, &s, p);
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
    kv_arena_alloc(b, p->kv_pages);
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

}   // namespace reprise_cuda
