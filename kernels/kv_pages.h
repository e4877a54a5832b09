// Where a position's key and value live in a KV slot made of pages (engine/backends/cuda/kv_pool.cu), for the kernels
// that read and write the cache and for the host code that lays pages out.
#ifndef REPRISE_KV_PAGES_H
#define REPRISE_KV_PAGES_H

#include "kernels/kernels.h"

// A slot is its table: the device addresses of its pages, in position order. Page i holds positions
// [KV_PAGE i, KV_PAGE (i + 1)): their keys (KV_PAGE rows of kvd = n_kv_heads * head_dim elements), then their values;
// a page starts on a 16-byte boundary (the kernels' 16-byte loads).
typedef bf16 *const *kv_table;

// Elements of one page (keys and values).
__host__ __device__ static inline size_t kv_page_elems(int kvd) { return 2 * (size_t)KV_PAGE * kvd; }
// Position t's key row, and its value row.
__host__ __device__ static inline bf16 *kv_key(kv_table table, int t, int kvd) {
    return table[t / KV_PAGE] + (size_t)(t % KV_PAGE) * kvd;
}
__host__ __device__ static inline bf16 *kv_value(kv_table table, int t, int kvd) {
    return table[t / KV_PAGE] + (size_t)(KV_PAGE + t % KV_PAGE) * kvd;
}

#endif
