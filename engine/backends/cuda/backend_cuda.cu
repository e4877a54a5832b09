// The CUDA backend: the engine's backend interface on a GPU (or on the CPU through the emulation), put together
// from its parts (step.cu has the design); here its counters, creation and destruction.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

std::atomic<long> device_allocations{0};

size_t weight_bytes(const backend *base) {   // one GPU's: rank 0 holds the largest share
    const cuda_backend *b = reinterpret_cast<const cuda_backend *>(base);
    return b->ranks.empty() ? 0 : b->ranks[0]->weight_bytes;
}

void destroy_rank(rank_state *r) {
    for (void *p : r->weight_allocs) cudaFree(p);
    cudaFree(r->inv_freq);
    for (float *p : {r->x, r->xb, r->q, r->k, r->v, r->tmp, r->partial, r->d_logits, r->reduce, r->gemm_ws.partial}) cudaFree(p);
    cudaFree(r->act_bf16), cudaFree(r->mlp_bf16), cudaFree(r->x_bf16), cudaFree(r->row_ssq), cudaFree(r->gemm_ws.count), cudaFree(r->att_count), cudaFree(r->d_tokens), cudaFree(r->d_meta);
    drop_graphs(r);
    cudaFree(r->kv_arena), cudaFree(r->stash);
    for (void *p : r->kv_extra) cudaFree(p);
    cudaFreeHost(r->stage_meta);
    cudaFreeHost(r->stage_tokens), cudaFreeHost(r->stage_logits), cudaFreeHost(r->stage_params), cudaFreeHost(r->stage_ids);
    cudaFreeHost(r->stage_logprobs);
    cudaFree(r->d_ids), cudaFree(r->d_params), cudaFree(r->d_cand), cudaFree(r->d_logprobs);
    if (r->comm) ncclCommDestroy(r->comm);
    if (r->ready) cudaEventDestroy(r->ready), cudaEventDestroy(r->done);
    if (r->stream) cudaStreamDestroy(r->stream);
}

void destroy(backend *base) {
    cuda_backend *b = cb(base);
    if (!b->ranks.empty()) each(b, destroy_rank);
    b->threads.stop();
    cudaFreeHost(b->stage_edits), cudaFreeHost(b->stage_edit_raw);
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
extern "C" long backend_cuda_allocations_after_start(const backend *b) {
    const cuda_backend *c = reinterpret_cast<const cuda_backend *>(b);
    return c->allocations_at_start < 0 ? 0 : device_allocations - c->allocations_at_start;
}
extern "C" long backend_cuda_kv_pages_free(const backend *b) { return (long)reinterpret_cast<const cuda_backend *>(b)->kv_free_pages.size(); }
extern "C" long backend_cuda_kv_bytes_copied(const backend *b) { return reinterpret_cast<const cuda_backend *>(b)->kv_bytes_copied; }
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
    b->base.read_rows = read_rows, b->base.write_rows = write_rows, b->base.stash_rows = stash_rows, b->base.unstash_rows = unstash_rows, b->base.kv_copy = kv_copy, b->base.logits = logits;
    b->base.kv_alloc = kv_alloc, b->base.kv_grow = kv_grow, b->base.kv_free = kv_free, b->base.kv_bytes_per_token = kv_bytes_per_token;
    b->base.weight_bytes = weight_bytes, b->base.destroy = destroy, b->base.step_begin = step_begin;
    b->base.sample = sample, b->base.plan = plan, b->base.allocations_after_start = backend_cuda_allocations_after_start;
    const char *g = getenv("REPRISE_CUDA_GRAPHS");
    b->use_graphs = !(g && !strcmp(g, "0"));
    const char *gc = getenv("REPRISE_CUDA_GRAPH_CACHE");
    b->graph_cache = gc && atoi(gc) > 0 ? (size_t)atoi(gc) : 64;
    return &b->base;   // the ranks come with the plan, which says how many
}
