// Split-KV (flash-decoding) attention: each row's query attends causally to positions 0..pos of its KV slot.
// Pass 1: one block of 8 warps per (row, head, split of `chunk` positions). Warp w takes positions t0 + w, t0 + w + 8,
// ... four at a time - four independent dot products (lanes splitting head_dim, warp reductions interleaved), so
// four loads are in flight where a position-at-a-time loop waits on each - with an online softmax: running max m,
// running sum l, and the output accumulated with rescaling. The 8 warps' states then merge in warp order in shared
// memory into the split's (m, l, acc). Pass 2: one warp per (row, head) merges the splits:
// out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M). GQA: query head h reads key/value head h / (heads / kv).
// Which positions a warp and a split take depends on `chunk` alone, never on the rows beside it or the grid's size
// (splits past a row's length are empty), so the result is batch-invariant.
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define MAX_HEAD_DIM 256
#define ATT_WARPS 8   // warps per split
#define ATT_UNROLL 4  // positions a warp scores together

__global__ void attention_partial_kernel(const float *q, const int *row_pos, bf16 *const *row_k, bf16 *const *row_v,
                                         int n_heads, int n_kv_heads, int hd, int chunk, float *partial) {
    __shared__ float warp_ml[ATT_WARPS][2];
    __shared__ float warp_acc[ATT_WARPS][MAX_HEAD_DIM];
    int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int n_splits = gridDim.z, kvd = n_kv_heads * hd, kvh = h / (n_heads / n_kv_heads), len = row_pos[r] + 1;
    int t0 = split * chunk, t1 = min(t0 + chunk, len);
    const float *qh = q + ((size_t)r * n_heads + h) * hd;
    const bf16 *K = row_k[r] + kvh * hd, *V = row_v[r] + kvh * hd;
    float scale = rsqrtf((float)hd), m = -INFINITY, l = 0, acc[MAX_HEAD_DIM / 32], qr[MAX_HEAD_DIM / 32];
    REPRISE_UNROLL
    for (int j = 0; j < MAX_HEAD_DIM / 32; j++) acc[j] = 0, qr[j] = lane + 32 * j < hd ? qh[lane + 32 * j] : 0.0f;
    for (int tb = t0 + warp * ATT_UNROLL; tb < t1; tb += ATT_WARPS * ATT_UNROLL) {
        float s[ATT_UNROLL], vv[ATT_UNROLL][MAX_HEAD_DIM / 32];
        REPRISE_UNROLL
        for (int u = 0; u < ATT_UNROLL; u++) {   // the values are loaded with the keys: one round trip, not two
            s[u] = 0;
            REPRISE_UNROLL
            for (int j = 0; j < MAX_HEAD_DIM / 32; j++) vv[u][j] = 0;
            if (tb + u < t1) {
                const bf16 *kt = K + (size_t)(tb + u) * kvd, *vt = V + (size_t)(tb + u) * kvd;
                REPRISE_UNROLL
                for (int j = 0; j < MAX_HEAD_DIM / 32; j++)
                    if (lane + 32 * j < hd) {
                        s[u] += qr[j] * __bfloat162float(kt[lane + 32 * j]);
                        vv[u][j] = __bfloat162float(vt[lane + 32 * j]);
                    }
            }
        }
        REPRISE_UNROLL
        for (int o = 16; o > 0; o >>= 1)
            REPRISE_UNROLL
            for (int u = 0; u < ATT_UNROLL; u++) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
        float m_new = m;
        REPRISE_UNROLL
        for (int u = 0; u < ATT_UNROLL; u++) {
            s[u] = tb + u < t1 ? s[u] * scale : -INFINITY;
            m_new = fmaxf(m_new, s[u]);
        }
        float correction = __expf(m - m_new), p[ATT_UNROLL];
        l *= correction;
        REPRISE_UNROLL
        for (int u = 0; u < ATT_UNROLL; u++) p[u] = tb + u < t1 ? __expf(s[u] - m_new) : 0.0f, l += p[u];
        REPRISE_UNROLL
        for (int j = 0; j < MAX_HEAD_DIM / 32; j++) {
            if (lane + 32 * j >= hd) continue;
            float a = acc[j] * correction;
            REPRISE_UNROLL
            for (int u = 0; u < ATT_UNROLL; u++)
                if (tb + u < t1) a += p[u] * vv[u][j];
            acc[j] = a;
        }
        m = m_new;
    }
    // the warps' states, merged in warp order
    if (lane == 0) warp_ml[warp][0] = m, warp_ml[warp][1] = l;
    REPRISE_UNROLL
    for (int j = 0; j < MAX_HEAD_DIM / 32; j++)
        if (lane + 32 * j < hd) warp_acc[warp][lane + 32 * j] = acc[j];
    __syncthreads();
    float M = -INFINITY, L = 0;
    for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, warp_ml[w][0]);
    for (int w = 0; w < ATT_WARPS; w++)
        if (warp_ml[w][0] > -INFINITY) L += warp_ml[w][1] * __expf(warp_ml[w][0] - M);
    float *out = partial + (((size_t)r * n_heads + h) * n_splits + split) * (hd + 2);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float a = 0;
        for (int w = 0; w < ATT_WARPS; w++)
            if (warp_ml[w][0] > -INFINITY) a += warp_acc[w][i] * __expf(warp_ml[w][0] - M);
        out[i] = a;
    }
    if (threadIdx.x == 0) out[hd] = M, out[hd + 1] = L;
}

__global__ void attention_merge_kernel(const float *partial, int n_heads, int hd, int n_splits, float *out) {
    int r = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
    const float *p = partial + ((size_t)r * n_heads + h) * n_splits * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, p[s * (hd + 2) + hd]);
    float denom = 0;
    for (int s = 0; s < n_splits; s++) {
        float ms = p[s * (hd + 2) + hd];
        if (ms > -INFINITY) denom += p[s * (hd + 2) + hd + 1] * __expf(ms - M);
    }
    float *o = out + ((size_t)r * n_heads + h) * hd;
    for (int i = lane; i < hd; i += 32) {
        float num = 0;
        for (int s = 0; s < n_splits; s++) {
            float ms = p[s * (hd + 2) + hd];
            if (ms > -INFINITY) num += p[s * (hd + 2) + i] * __expf(ms - M);
        }
        o[i] = num / denom;
    }
}

cudaError_t launch_attention(const float *q, const int *row_pos, bf16 *const *row_k, bf16 *const *row_v, int rows,
                             int n_heads, int n_kv_heads, int head_dim, int n_splits, int chunk, float *partial,
                             float *out, cudaStream_t s) {
    if (head_dim > MAX_HEAD_DIM) return cudaErrorInvalidValue;
    cudaError_t e = REPRISE_LAUNCH(attention_partial_kernel, dim3(rows, n_heads, n_splits), dim3(32 * ATT_WARPS), 0, s, q, row_pos,
                                   row_k, row_v, n_heads, n_kv_heads, head_dim, chunk, partial);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(attention_merge_kernel, dim3(rows, n_heads), dim3(32), 0, s, (const float *)partial, n_heads,
                          head_dim, n_splits, out);
}
