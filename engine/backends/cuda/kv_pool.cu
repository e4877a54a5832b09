// The CUDA backend's KV slots: pages of KV_PAGE positions from one device arena per rank, allocated with the memory
// plan (its kv_pages), so that a server's requests and a sweep's configurations take and give back KV without
// cudaMalloc or cudaFree (each cudaFree waits for the whole device) once the run has started, and a slot grows by
// taking pages, never by moving what it holds: the kernels follow its page table (kernels/kv_pages.h).
//
// Every rank holds the same KV heads' worth (tp divides the KV heads), so page ids are the same on every rank and
// one host-side free list serves all. A page past the arena (a plan without KV, or every page taken) is a cudaMalloc
// of its own on each rank, counted as an allocation after the start, and kept for reuse. The page tables live in a
// pool after the pages (PLAN_KV_TABLE_ENTRIES entries a page): a slot's table holds a power of two of entries, first
// fit, ranges merged as they come back; a table that outgrows its range moves (its entries are written again, not
// the KV). A table the pool cannot place is a cudaMalloc of its own, counted. Tables are written by the host after
// the rank's stream has drained (a slot is made or grown between steps), so no kernel reads one as it changes.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

// A slot's pages and where its table lives (kv_slot.k points to one; kv_slot.v is unused).
struct paged_slot {
    std::vector<int> pages;                  // page ids, in position order
    size_t table_at = SIZE_MAX, table_cap = 0;   // entries [table_at, + table_cap) of the pool; SIZE_MAX: own
    std::vector<bf16 **> own;                // (tp) its own table on each rank, where the pool had no room
};

static paged_slot *slot_of(const kv_slot *kv) { return static_cast<paged_slot *>(kv->k); }

size_t kv_bytes_per_token(const backend *base) {
    const cuda_backend *b = reinterpret_cast<const cuda_backend *>(base);
    return memory_plan_kv_bytes_per_position(base->cfg, b->tp > 0 ? b->tp : 1);
}

static size_t page_bytes(const cuda_backend *b) { return memory_plan_kv_page_bytes(b->base.cfg, b->tp > 0 ? b->tp : 1); }

// The arena of every rank: the plan's pages, then the tables' pool (once: pages stay where they are).
void kv_arena_alloc(cuda_backend *b, size_t pages) {
    if (b->ranks[0]->kv_arena || !pages) return;
    size_t bytes = page_bytes(b), entries = PLAN_KV_TABLE_ENTRIES * pages;
    each(b, [&](rank_state *r) {
        r->kv_arena = dev_alloc<unsigned char>(pages * bytes + entries * sizeof(bf16 *));
        r->kv_tables = reinterpret_cast<bf16 **>(r->kv_arena + pages * bytes);
        r->kv_page_at.resize(pages);
        for (size_t i = 0; i < pages; i++) r->kv_page_at[i] = reinterpret_cast<bf16 *>(r->kv_arena + i * bytes);
    });
    for (size_t i = pages; i-- > 0;) b->kv_free_pages.push_back((int)i);   // page 0 taken first
    b->kv_free_tables[0] = entries;
}

// n more pages for s: free ones, then, for what is missing, one allocation of them on every rank.
static int take_pages(cuda_backend *b, paged_slot *s, int n, rp_err *err) {
    for (; n > 0 && !b->kv_free_pages.empty(); n--) s->pages.push_back(b->kv_free_pages.back()), b->kv_free_pages.pop_back();
    if (n <= 0) return 0;
    size_t bytes = page_bytes(b) * (size_t)n;
    std::vector<unsigned char *> got(b->tp, nullptr);
    each(b, [&](rank_state *r) {
        if (device_malloc((void **)&got[r->rank], bytes) != cudaSuccess) cudaGetLastError(), got[r->rank] = nullptr;
    });
    for (int i = 0; i < b->tp; i++)
        if (!got[i]) {
            for (int j = 0; j < b->tp; j++)
                if (got[j]) CUDA_CHECK(device_free(got[j]));
            char where[64] = "";
            if (b->tp > 1) snprintf(where, sizeof where, " on GPU %d (rank %d)", b->ranks[i]->device, i);
            return rp_fail(err, "out of GPU memory%s for %d KV pages of %d positions (%zu bytes)", where, n, KV_PAGE, bytes);
        }
    int first = (int)b->ranks[0]->kv_page_at.size();
    for (rank_state *r : b->ranks) {
        r->kv_extra.push_back(got[r->rank]);
        for (int i = 0; i < n; i++) r->kv_page_at.push_back(reinterpret_cast<bf16 *>(got[r->rank] + (size_t)i * page_bytes(b)));
    }
    for (int i = 0; i < n; i++) s->pages.push_back(first + i);
    return 0;
}

// A range of `entries` from the tables' pool (its first entry), or SIZE_MAX where no free range is that long.
static size_t table_take(cuda_backend *b, size_t entries) {
    for (auto it = b->kv_free_tables.begin(); it != b->kv_free_tables.end(); ++it) {
        if (it->second < entries) continue;
        size_t at = it->first, left = it->second - entries;
        b->kv_free_tables.erase(it);
        if (left) b->kv_free_tables[at + entries] = left;
        return at;
    }
    return SIZE_MAX;
}

static void table_give(cuda_backend *b, size_t at, size_t entries) {
    auto next = b->kv_free_tables.lower_bound(at);
    if (next != b->kv_free_tables.end() && at + entries == next->first)
        entries += next->second, next = b->kv_free_tables.erase(next);
    if (next != b->kv_free_tables.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == at) {
            prev->second += entries;
            return;
        }
    }
    b->kv_free_tables[at] = entries;
}

static void table_release(cuda_backend *b, paged_slot *s) {
    if (s->table_at != SIZE_MAX) table_give(b, s->table_at, s->table_cap);
    for (size_t i = 0; i < s->own.size(); i++)
        if (s->own[i]) CUDA_CHECK(device_free(s->own[i]));
    s->own.clear();
    s->table_at = SIZE_MAX, s->table_cap = 0;
}

static bf16 **table_on(const paged_slot *s, const rank_state *r) {
    return s->table_at != SIZE_MAX ? r->kv_tables + s->table_at : s->own[r->rank];
}

kv_table rank_kv(const kv_slot *kv, const rank_state *r) { return table_on(slot_of(kv), r); }

// Makes s's table hold its pages: entries from `written` on written into it, or, when it has too few entries, all of
// them into a new one (the pool's, else its own) and the old one given back.
static int place_table(cuda_backend *b, paged_slot *s, size_t written, rp_err *err) {
    size_t n = s->pages.size(), cap = 1;
    while (cap < n) cap *= 2;
    if (cap > s->table_cap) {
        table_release(b, s);
        written = 0;
        s->table_at = table_take(b, cap);
        s->table_cap = cap;
        if (s->table_at == SIZE_MAX) {
            s->own.assign(b->tp, nullptr);
            bool failed = false;
            each(b, [&](rank_state *r) {
                if (device_malloc((void **)&s->own[r->rank], cap * sizeof(bf16 *)) != cudaSuccess)
                    cudaGetLastError(), s->own[r->rank] = nullptr, failed = true;
            });
            if (failed) return rp_fail(err, "out of GPU memory for a KV page table of %zu entries", cap);
        }
    }
    if (written >= n) return 0;
    each(b, [&](rank_state *r) {
        std::vector<bf16 *> at(n - written);
        for (size_t i = written; i < n; i++) at[i - written] = r->kv_page_at[s->pages[i]];
        CUDA_CHECK(cudaStreamSynchronize(r->stream));   // no kernel of an earlier step reads the table as it changes
        CUDA_CHECK(cudaMemcpy(table_on(s, r) + written, at.data(), at.size() * sizeof(bf16 *), cudaMemcpyHostToDevice));
    });
    return 0;
}

void kv_free(backend *base, kv_slot *kv) {
    cuda_backend *b = cb(base);
    paged_slot *s = slot_of(kv);
    if (s) {
        for (size_t i = s->pages.size(); i-- > 0;) b->kv_free_pages.push_back(s->pages[i]);   // its first page next
        table_release(b, s);
        delete s;
    }
    kv->k = kv->v = nullptr;
    kv->capacity = 0;
}

int kv_grow(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    cuda_backend *b = cb(base);
    paged_slot *s = slot_of(kv);
    int have = (int)s->pages.size(), want = kv_pages_for(capacity);
    if (want > have && (take_pages(b, s, want - have, err) || place_table(b, s, have, err))) return -1;
    if (capacity > kv->capacity) kv->capacity = capacity;
    return 0;
}

int kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    paged_slot *s = new paged_slot();
    kv->k = s, kv->v = nullptr;
    kv->capacity = capacity;
    if (take_pages(cb(base), s, kv_pages_for(capacity), err) || place_table(cb(base), s, 0, err)) {
        kv_free(base, kv);
        return -1;
    }
    return 0;
}

void kv_copy(backend *base, kv_slot *dst, const kv_slot *src, int n) {
    cuda_backend *b = cb(base);
    const paged_slot *from = slot_of(src), *to = slot_of(dst);
    size_t row = sizeof(bf16) * b->ranks[0]->shard.n_kv_heads * base->cfg->head_dim;   // one position's K (or V)
    // on the step stream, ordered before the prefill that reads it; the host does not wait. A page's positions are
    // its first rows of K and of V: one copy each, or one for a whole page
    each(b, [&](rank_state *r) {
        for (int p = 0; p * KV_PAGE < n; p++) {
            unsigned char *d = reinterpret_cast<unsigned char *>(r->kv_page_at[to->pages[p]]);
            const unsigned char *s = reinterpret_cast<const unsigned char *>(r->kv_page_at[from->pages[p]]);
            size_t m = (size_t)std::min(KV_PAGE, n - p * KV_PAGE);
            if (r->rank == 0) b->kv_bytes_copied += (long)(2 * m * row);
            if (m == KV_PAGE) CUDA_CHECK(cudaMemcpyAsync(d, s, 2 * KV_PAGE * row, cudaMemcpyDeviceToDevice, r->stream));
            else
                for (size_t half = 0; half < 2; half++)
                    CUDA_CHECK(cudaMemcpyAsync(d + half * KV_PAGE * row, s + half * KV_PAGE * row, m * row,
                                               cudaMemcpyDeviceToDevice, r->stream));
        }
    });
}

}   // namespace reprise_cuda
