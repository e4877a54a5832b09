// Flash-attention-style prefill: the queries of one sequence's new rows (consecutive positions pos0..) attend
// causally to its KV slot. A block takes 16 query rows of one head (4 warps, 4 rows each) and walks the keys in
// tiles: all 128 threads load a tile of K and V (BF16 to float) into shared memory, barrier, then each warp
// updates its rows' online softmax - running max, running sum, and the output rescaled - over the tile's positions
// up to each row's own (the causal mask), lanes splitting head_dim. So a K/V tile is read from memory once per
// 16 queries instead of once per query. GQA: query head h reads key/value head h / (heads / kv_heads). The output in
// FP32, or rounded to BF16 (the output projection's input, as launch_to_bf16 rounds) into out16.
#include "kernels/kernels.h"
#include "kernels/kv_pages.h"
#include "kernels/launch.h"

#define PREFILL_ROWS 16
#define MAX_HD 256

__global__ void attention_prefill_kernel(const float *q, int n_rows, int pos0, kv_table kv, int n_heads,
                                         int n_kv_heads, int hd, int tile, float *out, bf16 *out16) {
    REPRISE_DYNAMIC_SHARED(float, smem);   // K tile then V tile: 2 * tile * hd floats
    float *ks = smem, *vs = smem + (size_t)tile * hd;
    int h = blockIdx.y, kvh = h / (n_heads / n_kv_heads), kvd = n_kv_heads * hd, qd = n_heads * hd;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, first = blockIdx.x * PREFILL_ROWS;
    int last_pos = pos0 + min(first + PREFILL_ROWS, n_rows) - 1;   // the block's furthest query position
    float scale = rsqrtf((float)hd), m[4], l[4], acc[4][MAX_HD / 32];
    for (int j = 0; j < 4; j++) {
        m[j] = -INFINITY, l[j] = 0;
        for (int i = 0; i < MAX_HD / 32; i++) acc[j][i] = 0;
    }
    for (int t0 = 0; t0 <= last_pos; t0 += tile) {
        int tn = min(tile, last_pos + 1 - t0);
        for (int e = threadIdx.x; e < tn * hd; e += blockDim.x) {
            int t = e / hd, i = e % hd;
            ks[e] = __bfloat162float(kv_key(kv, t0 + t, kvd)[kvh * hd + i]);
            vs[e] = __bfloat162float(kv_value(kv, t0 + t, kvd)[kvh * hd + i]);
        }
        __syncthreads();
        for (int j = 0; j < 4; j++) {
            int row = first + warp * 4 + j;
            if (row >= n_rows) break;   // warp-uniform
            const float *qh = q + (size_t)row * qd + h * hd;
            int limit = min(tn, pos0 + row - t0 + 1);   // causal: positions up to the row's own
            for (int t = 0; t < limit; t++) {
                float dot = 0;
                for (int i = lane; i < hd; i += 32) dot += qh[i] * ks[t * hd + i];
                for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
                float s = dot * scale, m_new = fmaxf(m[j], s), corr = __expf(m[j] - m_new), p = __expf(s - m_new);
                l[j] = l[j] * corr + p;
                for (int i = lane, c = 0; i < hd; i += 32, c++) acc[j][c] = acc[j][c] * corr + p * vs[t * hd + i];
                m[j] = m_new;
            }
        }
        __syncthreads();   // the tile is overwritten next
    }
    for (int j = 0; j < 4; j++) {
        int row = first + warp * 4 + j;
        if (row >= n_rows) break;
        size_t o = (size_t)row * qd + h * hd;
        for (int i = lane, c = 0; i < hd; i += 32, c++) {
            float v = acc[j][c] / l[j];
            if (out16) out16[o + i] = __float2bfloat16(v);
            else out[o + i] = v;
        }
    }
}

cudaError_t launch_attention_prefill(const float *q, int n_rows, int pos0, bf16 *const *kv,
                                     int n_heads, int n_kv_heads, int head_dim, float *out, bf16 *out_bf16, cudaStream_t s) {
    if (head_dim > MAX_HD || !out == !out_bf16) return cudaErrorInvalidValue;
    int tile = 4096 / head_dim;   // 2 * tile * head_dim floats = 32 KB of shared memory
    if (tile < 8) tile = 8;
    size_t smem = 2 * (size_t)tile * head_dim * sizeof(float);
    return REPRISE_LAUNCH(attention_prefill_kernel, dim3((n_rows + PREFILL_ROWS - 1) / PREFILL_ROWS, n_heads), dim3(128), smem,
                          s, q, n_rows, pos0, kv, n_heads, n_kv_heads, head_dim, tile, out, out_bf16);
}
