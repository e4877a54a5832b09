// Decode attention in one kernel (split-KV, flash-decoding): each row's query heads attend causally to positions
// 0..pos of its KV slot. Fed the QKV projection's raw output (qkv_raw), it first does qkv_rope.cu's work by the same
// function (head_transform.h): each CTA transforms its own query heads into shared memory, and the CTAs of the split
// holding the row's position transform its key and value, use them for that position from shared memory, and one
// of them (the KV head's first head group) appends them to the slot - no CTA reads what another writes.
// Grid: (row, head group, CTA of the group's splits of `chunk` positions). A head group is `gs` query heads of one GQA
// group (the whole group, or an equal part of it when it has more than ATT_GROUP heads), so each K/V row a CTA reads
// serves all of them. A group's CTAs (att_split_ctas: enough for two an SM) take its splits in turn, z, z + ctas, ...,
// up to the row's length (read from device memory: a replayed graph covers the current length), so a grid sized
// for the longest context costs a short sequence only CTAs that exit at once. Within a split, a lane holds 8 dimensions of a position (16-byte loads; hd / 8 lanes a position, rounded up
// to a power of two: `lanes`), so a warp reads 32 / lanes positions at a time; the block's 8 x 32 / lanes position
// slots take positions t0 + slot, t0 + slot + slots, ..., ATT_LOADS of them a lane at once, each slot with its own
// online softmax (running max m, sum l, output acc, rescaled) per head. The slots' states then merge in slot order
// into the split's (M, L, acc), written to `partial` (n_splits a row and head: the grid's most); the CTA that
// finishes the (row, head group)'s last split (a counter) merges the splits in split order - out = sum_s acc_s
// e^(m_s - M) / sum_s l_s e^(m_s - M) - and resets the counter.
// The output in FP32, or rounded to BF16 (the output projection's input, as launch_to_bf16 rounds) into out16.
// Which positions a slot and a split take depends on `chunk` and the head size alone, never on the rows beside it or
// the grid's size or which CTA takes a split, so the result is batch-invariant.
#include <stdint.h>

#include "kernels/head_transform.h"
#include "kernels/kernels.h"
#include "kernels/kv_pages.h"
#include "kernels/launch.h"

#define MAX_HEAD_DIM 256
#define ATT_WARPS 8   // warps per split
#define ATT_GROUP 4   // most query heads a CTA serves
#define ATT_LOADS 2   // positions a lane loads at once (keys and values)
#define ATT_MAX_CHUNK 256   // most positions a split: its pages' addresses fit the CTA's shared table

// Lanes that hold one position: its 16-byte chunks (hd / 8), rounded up to a power of two.
__host__ __device__ static inline int att_lanes(int hd) {
    int chunks = (hd + 7) / 8, lanes = 1;
    while (lanes < chunks) lanes *= 2;
    return lanes;
}

// 8 elements of a BF16 row from element `at` (zeros past hd): one 16-byte load where the row allows it.
__device__ static inline void att_load8(const bf16 *row, int at, int hd, bool wide, float v[8]) {
    if (wide && at + 8 <= hd) {
        uint4 raw = ldg_16(row + at);   // positions before the row's: no CTA of this launch writes them
        uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
REPRISE_UNROLL
        for (int e = 0; e < 8; e++) v[e] = __uint_as_float((w[e / 2] >> (16 * (e % 2)) & 0xffffu) << 16);
    } else {
REPRISE_UNROLL
        for (int e = 0; e < 8; e++) v[e] = at + e < hd ? __bfloat162float(row[at + e]) : 0.0f;
    }
}

// The same 8 elements of the row's own key or value, from shared memory (kept as floats, BF16-rounded).
__device__ static inline void att_own8(const float *row, int at, int hd, float v[8]) {
REPRISE_UNROLL
    for (int e = 0; e < 8; e++) v[e] = at + e < hd ? row[at + e] : 0.0f;
}

__global__ void __launch_bounds__(32 * ATT_WARPS, 2)
    attention_decode_kernel(const float *q, qkv_raw raw, bool fused, const int *row_pos, bf16 *const *const *row_kv,
                            int n_heads, int n_kv_heads, int hd, int gs, int chunk, int n_splits,
                            float *partial, unsigned *count, float *out, bf16 *out16) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    // each slot's (m, l) and acc per head: slots x gs x (lanes x 8) floats, at most 8 x 32 x 4 x 8 (32 KB)
    __shared__ float slot_ml[ATT_WARPS * 32 * ATT_GROUP][2];
    __shared__ float slot_acc[ATT_WARPS * 32 * ATT_GROUP * 8];
    __shared__ float q_head[ATT_GROUP][MAX_HEAD_DIM];   // fused: the CTA's query heads, transformed
    __shared__ float kv_own[2][MAX_HEAD_DIM];           // fused, the last split: the row's key and value (as cached)
    __shared__ bf16 *split_pages[ATT_MAX_CHUNK / KV_PAGE];   // the split's pages (kv_pages.h), read once a split
    __shared__ bool last;
    const int r = blockIdx.x, hg = blockIdx.y, group = n_heads / n_kv_heads;
    const int h0 = hg * gs, kvh = h0 / group, pos = row_pos[r], len = pos + 1, active = (len + chunk - 1) / chunk;
    if ((int)blockIdx.z >= active) return;   // past the row's length: no work, not counted
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, lanes = att_lanes(hd), per_warp = 32 / lanes;
    const int sub = lane / lanes, at = 8 * (lane % lanes), slot = warp * per_warp + sub, slots = ATT_WARPS * per_warp;
    const int kvd = n_kv_heads * hd;
    const kv_table kv = row_kv[r];   // the KV head's rows: kv_key / kv_value (position, kvd) + kvh * hd
    const bool wide = hd % 8 == 0;     // pages start on 16-byte boundaries (kv_pages.h)
    // fused, the CTA that takes the split holding the row's position: its key and value from kv_own
    const bool own_cta = fused && (active - 1) % (int)gridDim.z == (int)blockIdx.z;
    const float scale = rsqrtf((float)hd);
    if (fused) {   // warp g < gs: query head h0 + g; warp gs, in the last split's CTA: the KV head's new key and value
        if (warp < gs) {
            float *h = q_head[warp];
            for (int i = lane; i < hd; i += 32) h[i] = q[((size_t)r * n_heads + h0 + warp) * hd + i];
            __syncwarp();
            head_transform(h, hd, raw.bq ? raw.bq + (h0 + warp) * hd : nullptr, raw.q_norm, raw.eps, raw.inv_freq, (float)pos, lane);
        } else if (warp == gs && own_cta) {
            float *h = kv_own[0];
            for (int i = lane; i < hd; i += 32) h[i] = raw.k[(size_t)r * kvd + kvh * hd + i];
            __syncwarp();
            head_transform(h, hd, raw.bk ? raw.bk + kvh * hd : nullptr, raw.k_norm, raw.eps, raw.inv_freq, (float)pos, lane);
            for (int i = lane; i < hd; i += 32) {
                bf16 kb = __float2bfloat16(h[i]), vb = head_value(raw.v[(size_t)r * kvd + kvh * hd + i], raw.bv ? raw.bv + kvh * hd : nullptr, i);
                h[i] = __bfloat162float(kb), kv_own[1][i] = __bfloat162float(vb);
                if (h0 % group == 0)   // one writer per KV head
                    kv_key(kv, pos, kvd)[kvh * hd + i] = kb, kv_value(kv, pos, kvd)[kvh * hd + i] = vb;
            }
        }
        __syncthreads();
    }
    float qv[ATT_GROUP][8];
REPRISE_UNROLL
    for (int g = 0; g < ATT_GROUP; g++)
REPRISE_UNROLL
        for (int e = 0; e < 8; e++)
            qv[g][e] = g < gs && at + e < hd ? (fused ? q_head[g][at + e] : q[((size_t)r * n_heads + h0 + g) * hd + at + e]) : 0.0f;
    unsigned *counter = &count[(size_t)r * gridDim.y + hg];
    for (int split = blockIdx.z; split < active; split += gridDim.z) {   // the CTA's splits, one after another
        const int t0 = split * chunk, t1 = min(t0 + chunk, len), own_t = fused && split == active - 1 ? pos : -1;
        // the split's page addresses into shared memory: each position's loads then wait on no table read of their
        // own (the barrier: the previous split's readers are past the merge's barriers already)
        if ((int)threadIdx.x < (t1 - t0 + KV_PAGE - 1) / KV_PAGE) split_pages[threadIdx.x] = kv[t0 / KV_PAGE + threadIdx.x];
        __syncthreads();
        float acc[ATT_GROUP][8], m[ATT_GROUP], l[ATT_GROUP];
REPRISE_UNROLL
        for (int g = 0; g < ATT_GROUP; g++) {
REPRISE_UNROLL
            for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
            m[g] = -INFINITY, l[g] = 0.0f;
        }
        // the warp's loop runs while its first slot has positions left (uniform, for the shuffles); a lane past t1 idles
        for (int tb = t0 + warp * per_warp; tb < t1; tb += ATT_LOADS * slots) {
            float kk[ATT_LOADS][8], vv[ATT_LOADS][8], s[ATT_LOADS][ATT_GROUP];
            bool valid[ATT_LOADS];
REPRISE_UNROLL
            for (int u = 0; u < ATT_LOADS; u++) {   // keys and values together: one round trip
                int t = t0 + slot + (tb - t0 - warp * per_warp) + u * slots;
                valid[u] = t < t1 && at < hd;
                if (valid[u] && t == own_t) {   // the row's own key and value, as the slot now holds them
                    att_own8(kv_own[0], at, hd, kk[u]);
                    att_own8(kv_own[1], at, hd, vv[u]);
                } else if (valid[u]) {
                    const bf16 *page = split_pages[(t - t0) / KV_PAGE];   // chunk: whole pages, so t0 starts one
                    att_load8(page + (size_t)(t % KV_PAGE) * kvd + kvh * hd, at, hd, wide, kk[u]);
                    att_load8(page + (size_t)(KV_PAGE + t % KV_PAGE) * kvd + kvh * hd, at, hd, wide, vv[u]);
                } else {
REPRISE_UNROLL
                    for (int e = 0; e < 8; e++) kk[u][e] = vv[u][e] = 0.0f;
                }
REPRISE_UNROLL
                for (int g = 0; g < ATT_GROUP; g++) {
                    float d = 0.0f;
REPRISE_UNROLL
                    for (int e = 0; e < 8; e++) d += qv[g][e] * kk[u][e];
                    s[u][g] = d;
                }
                valid[u] = t < t1;
            }
            // each position's dot products summed over its lanes (xor within aligned groups of `lanes`)
            for (int o = lanes / 2; o > 0; o >>= 1)
REPRISE_UNROLL
                for (int u = 0; u < ATT_LOADS; u++)
REPRISE_UNROLL
                    for (int g = 0; g < ATT_GROUP; g++) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], o);
REPRISE_UNROLL
            for (int g = 0; g < ATT_GROUP; g++) {
                float m_new = m[g], p[ATT_LOADS];
REPRISE_UNROLL
                for (int u = 0; u < ATT_LOADS; u++) m_new = valid[u] ? fmaxf(m_new, s[u][g] * scale) : m_new;
                if (m_new == -INFINITY) continue;   // nothing valid yet for this slot
                float correction = __expf(m[g] - m_new);
                l[g] *= correction;
REPRISE_UNROLL
                for (int u = 0; u < ATT_LOADS; u++) p[u] = valid[u] ? __expf(s[u][g] * scale - m_new) : 0.0f, l[g] += p[u];
REPRISE_UNROLL
                for (int e = 0; e < 8; e++) {
                    float a = acc[g][e] * correction;
REPRISE_UNROLL
                    for (int u = 0; u < ATT_LOADS; u++) a += p[u] * vv[u][e];
                    acc[g][e] = a;
                }
                m[g] = m_new;
            }
        }
        // the slots' states, merged in slot order into the split's
REPRISE_UNROLL
        for (int g = 0; g < ATT_GROUP; g++) {
            if (g >= gs) break;
            if (lane % lanes == 0) slot_ml[slot * gs + g][0] = m[g], slot_ml[slot * gs + g][1] = l[g];
REPRISE_UNROLL
            for (int e = 0; e < 8; e++) slot_acc[((size_t)(slot * gs + g) * lanes * 8) + at + e] = acc[g][e];
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < gs * hd; idx += blockDim.x) {
            int g = idx / hd, i = idx % hd;
            float M = -INFINITY, L = 0.0f, a = 0.0f;
            for (int sl = 0; sl < slots; sl++) M = fmaxf(M, slot_ml[sl * gs + g][0]);
            for (int sl = 0; sl < slots; sl++) {
                float ms = slot_ml[sl * gs + g][0];
                if (ms == -INFINITY) continue;
                float w = __expf(ms - M);
                L += slot_ml[sl * gs + g][1] * w;
                a += slot_acc[(size_t)(sl * gs + g) * lanes * 8 + i] * w;
            }
            float *p = partial + (((size_t)r * n_heads + h0 + g) * n_splits + split) * (hd + 2);
            p[i] = a;
            if (i == 0) p[hd] = M, p[hd + 1] = L;
        }
        __threadfence();   // the split's partial is visible device-wide before the counter says so
        __syncthreads();
        if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == (unsigned)active - 1;
        __syncthreads();
        if (!last) continue;   // (slot_ml and slot_acc are free: every thread has passed the barrier above)
        __threadfence();
        for (int idx = threadIdx.x; idx < gs * hd; idx += blockDim.x) {   // the splits, merged in split order
            int g = idx / hd, i = idx % hd;
            const float *p = partial + ((size_t)r * n_heads + h0 + g) * n_splits * (hd + 2);
            float M = -INFINITY, denom = 0.0f, num = 0.0f;
            for (int sp = 0; sp < active; sp++) M = fmaxf(M, __ldcg(&p[sp * (hd + 2) + hd]));
            for (int sp = 0; sp < active; sp++) {
                float ms = __ldcg(&p[sp * (hd + 2) + hd]);
                if (ms == -INFINITY) continue;
                float w = __expf(ms - M);
                denom += __ldcg(&p[sp * (hd + 2) + hd + 1]) * w;
                num += __ldcg(&p[sp * (hd + 2) + i]) * w;
            }
            size_t o = ((size_t)r * n_heads + h0 + g) * hd + i;
            if (out16) out16[o] = __float2bfloat16(num / denom);
            else out[o] = num / denom;
        }
        if (threadIdx.x == 0) *counter = 0;   // ready for the next launch
    }
}

// The CTAs of a row's head group: enough in all for two an SM, never more than the splits; CTA z takes splits z,
// z + ctas, ... (which CTA takes a split changes no number). So a grid sized for a long KV slot costs little while
// the sequence is short, and a graph's grid need not change as it grows.
static int att_ctas_fixed = 0;   // attention_fix_split_ctas
void attention_fix_split_ctas(int ctas) { att_ctas_fixed = ctas > 0 ? ctas : 0; }

static int att_split_ctas(int rows, int groups, int n_splits) {
    if (att_ctas_fixed) return att_ctas_fixed < n_splits ? att_ctas_fixed : n_splits;
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        sms = 132;
    long cells = (long)rows * groups, per = (2L * sms + cells - 1) / cells;
    return (int)(per < 1 ? 1 : per > n_splits ? n_splits : per);
}

// The query heads a CTA serves: the largest divisor of the GQA group's size up to ATT_GROUP.
static int att_heads_per_cta(int n_heads, int n_kv_heads) {
    int group = n_heads / n_kv_heads, gs = ATT_GROUP < group ? ATT_GROUP : group;
    while (group % gs) gs--;
    return gs;
}

cudaError_t launch_attention(const float *q, const qkv_raw *raw, const int *row_pos, bf16 *const *const *row_kv, int rows,
                             int n_heads, int n_kv_heads, int head_dim, int n_splits, int chunk, float *partial,
                             unsigned *count, float *out, bf16 *out_bf16, cudaStream_t s) {
    if (head_dim < 1 || head_dim > MAX_HEAD_DIM || n_kv_heads < 1 || n_heads % n_kv_heads || n_splits < 1 || chunk < 1 ||
        chunk > ATT_MAX_CHUNK || chunk % KV_PAGE || !out == !out_bf16)
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    int gs = att_heads_per_cta(n_heads, n_kv_heads), ctas = att_split_ctas(rows, n_heads / gs, n_splits);
    qkv_raw none = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0.0f};
    return REPRISE_LAUNCH_PDL(attention_decode_kernel, dim3(rows, n_heads / gs, ctas), dim3(32 * ATT_WARPS), 0, s, q,
                          raw ? *raw : none, raw != nullptr, row_pos, row_kv, n_heads, n_kv_heads, head_dim, gs, chunk, n_splits, partial, count, out, out_bf16);
}
