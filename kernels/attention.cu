// Split-KV (flash-decoding) attention: each row's query attends causally to positions 0..pos of its KV slot.
// Pass 1: one warp per (row, head, split) walks its chunk of positions with an online softmax - running max m,
// running sum l, and the output accumulated with rescaling - lanes splitting head_dim for the dot products (warp
// reduction) and the accumulation. It writes (m, l, acc). Pass 2: one warp per (row, head) merges the splits:
// out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M). GQA: query head h reads key/value head h / (heads / kv).
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define MAX_HEAD_DIM 256

__global__ void attention_partial_kernel(const float *q, const int *row_pos, bf16 *const *row_k, bf16 *const *row_v,
                                         int n_heads, int n_kv_heads, int hd, int chunk, float *partial) {
    int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z, lane = threadIdx.x, n_splits = gridDim.z;
    int kvd = n_kv_heads * hd, kvh = h / (n_heads / n_kv_heads), len = row_pos[r] + 1;
    int t0 = split * chunk, t1 = min(t0 + chunk, len);
    const float *qh = q + ((size_t)r * n_heads + h) * hd;
    const bf16 *K = row_k[r] + kvh * hd, *V = row_v[r] + kvh * hd;
    float scale = rsqrtf((float)hd), m = -INFINITY, l = 0, acc[MAX_HEAD_DIM / 32];
    for (int i = 0; i < MAX_HEAD_DIM / 32; i++) acc[i] = 0;
    for (int t = t0; t < t1; t++) {
        const bf16 *kt = K + (size_t)t * kvd, *vt = V + (size_t)t * kvd;
        float dot = 0;
        for (int i = lane; i < hd; i += 32) dot += qh[i] * __bfloat162float(kt[i]);
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        float s = dot * scale, m_new = fmaxf(m, s), correction = __expf(m - m_new), p = __expf(s - m_new);
        l = l * correction + p;
        for (int i = lane, j = 0; i < hd; i += 32, j++) acc[j] = acc[j] * correction + p * __bfloat162float(vt[i]);
        m = m_new;
    }
    float *out = partial + (((size_t)r * n_heads + h) * n_splits + split) * (hd + 2);
    for (int i = lane, j = 0; i < hd; i += 32, j++) out[i] = acc[j];
    if (lane == 0) out[hd] = m, out[hd + 1] = l;
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
    cudaError_t e = REPRISE_LAUNCH(attention_partial_kernel, dim3(rows, n_heads, n_splits), dim3(32), 0, s, q, row_pos,
                                   row_k, row_v, n_heads, n_kv_heads, head_dim, chunk, partial);
    if (e != cudaSuccess) return e;
    return REPRISE_LAUNCH(attention_merge_kernel, dim3(rows, n_heads), dim3(32), 0, s, (const float *)partial, n_heads,
                          head_dim, n_splits, out);
}
