// The CUDA backend's KV slots: carved from one device arena per rank, allocated with the memory plan (its KV: the
// plan's kv_slots x ctx positions), so that a server's requests and a sweep's configurations take and give back KV
// without cudaMalloc or cudaFree (each cudaFree waits for the whole device) once the run has started.
//
// Every rank holds the same KV heads' worth (tp divides the KV heads), so one host-side map of free ranges serves
// all ranks: a slot is the same offset in each rank's arena, its K then its V. First fit, neighbours merged when a
// range comes back. A slot the arena cannot hold (a plan without KV, or a fragmented arena) is a cudaMalloc of its
// own, counted as an allocation after the start.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

size_t kv_bytes_per_token(const backend *base) {
    const cuda_backend *b = reinterpret_cast<const cuda_backend *>(base);
    return memory_plan_kv_bytes_per_position(base->cfg, b->tp > 0 ? b->tp : 1);
}

// The arena of every rank, sized by the plan's KV (once: its slots stay where they are as the run goes on).
void kv_arena_alloc(cuda_backend *b, size_t bytes) {
    if (b->kv_arena_bytes || !bytes) return;
    each(b, [&](rank_state *r) { r->kv_arena = dev_alloc<unsigned char>(bytes); });
    b->kv_arena_bytes = bytes;
    b->kv_free_ranges[0] = bytes;
}

// A range of `bytes` from the arena (its offset), or SIZE_MAX where no free range is that long.
static size_t arena_take(cuda_backend *b, size_t bytes) {
    for (auto it = b->kv_free_ranges.begin(); it != b->kv_free_ranges.end(); ++it) {
        if (it->second < bytes) continue;
        size_t at = it->first, left = it->second - bytes;
        b->kv_free_ranges.erase(it);
        if (left) b->kv_free_ranges[at + bytes] = left;
        return at;
    }
    return SIZE_MAX;
}

static void arena_give(cuda_backend *b, size_t at, size_t bytes) {
    auto next = b->kv_free_ranges.lower_bound(at);
    if (next != b->kv_free_ranges.end() && at + bytes == next->first) bytes += next->second, next = b->kv_free_ranges.erase(next);
    if (next != b->kv_free_ranges.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == at) {
            prev->second += bytes;
            return;
        }
    }
    b->kv_free_ranges[at] = bytes;
}

static bool in_arena(const rank_state *r, const cuda_backend *b, const void *p) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    return r->kv_arena && c >= r->kv_arena && c < r->kv_arena + b->kv_arena_bytes;
}

// kv->k and kv->v point to host arrays of the ranks' pointers.
void kv_free(backend *base, kv_slot *kv) {
    cuda_backend *b = cb(base);
    bf16 **ks = static_cast<bf16 **>(kv->k), **vs = static_cast<bf16 **>(kv->v);
    if (ks && ks[0] && in_arena(b->ranks[0], b, ks[0])) {
        size_t half = (reinterpret_cast<unsigned char *>(vs[0]) - reinterpret_cast<unsigned char *>(ks[0]));
        arena_give(b, reinterpret_cast<unsigned char *>(ks[0]) - b->ranks[0]->kv_arena, 2 * half);
    } else if (ks)
        each(b, [&](rank_state *r) {
            CUDA_CHECK(device_free(ks[r->rank]));
            CUDA_CHECK(device_free(vs[r->rank]));
        });
    delete[] ks;
    delete[] vs;
    kv->k = kv->v = nullptr;
}

int kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    cuda_backend *b = cb(base);
    size_t n = (size_t)capacity * b->ranks[0]->shard.n_kv_heads * base->cfg->head_dim;
    size_t half = memory_plan_kv_slot_bytes(base->cfg, b->tp, capacity) / 2;   // K's bytes, then V's
    bf16 **ks = new bf16 *[b->tp](), **vs = new bf16 *[b->tp]();
    kv->k = ks, kv->v = vs;
    kv->capacity = capacity;
    size_t at = arena_take(b, 2 * half);
    if (at != SIZE_MAX) {
        for (rank_state *r : b->ranks)
            ks[r->rank] = reinterpret_cast<bf16 *>(r->kv_arena + at), vs[r->rank] = reinterpret_cast<bf16 *>(r->kv_arena + at + half);
        return 0;
    }
    std::vector<int> failed(b->tp, 0);
    each(b, [&](rank_state *r) {
        if (device_malloc((void **)&ks[r->rank], n * sizeof(bf16)) != cudaSuccess ||
            device_malloc((void **)&vs[r->rank], n * sizeof(bf16)) != cudaSuccess)
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

}   // namespace reprise_cuda
