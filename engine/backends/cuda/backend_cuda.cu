// The CUDA backend: the engine's backend interface on a GPU (or on the CPU through the emulation), put together
// from its parts (step.cu has the design); here its KV slots, its counters, creation and destruction.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

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
    for (float *p : {r->x, r->xb, r->q, r->k, r->v, r->tmp, r->partial, r->d_logits, r->reduce, r->gemm_ws.partial}) cudaFree(p);
    cudaFree(r->act_bf16), cudaFree(r->mlp_bf16), cudaFree(r->x_bf16), cudaFree(r->row_ssq), cudaFree(r->gemm_ws.count), cudaFree(r->att_count), cudaFree(r->d_tokens), cudaFree(r->d_meta);
    drop_graphs(r);
    cudaFreeHost(r->stage_meta);
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

}   // namespace reprise_cuda

using namespace reprise_cuda;

// Rank 0's counts: every rank captures and replays the same steps.
static const rank_state *rank0(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->ranks.at(0); }
extern "C" long backend_cuda_graph_replays(const backend *b) { return rank0(b)->graph_replays; }
extern "C" long backend_cuda_graph_captures(const backend *b) { return rank0(b)->graph_captures; }
extern "C" long backend_cuda_graphs_cached(const backend *b) { return (long)rank0(b)->graphs.size(); }
extern "C" long backend_cuda_host_sampled_rows(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->host_sampled_rows; }

extern "C" backend *backend_cuda_create(const model_config *cfg, int, rp_err *err) {
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
