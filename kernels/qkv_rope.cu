// After the QKV projection, per row and per head, fused: add the q/k/v biases (Qwen2), RMSNorm q and k over the head
// (Qwen3), rotate q and k by RoPE at the row's position (head_transform.h), and append k and v to the row's KV slot
// in BF16. One block per row; warp w takes heads w, w + 4, .... A prompt's rows take this kernel before attention;
// a decode step's attention kernel applies the same transform itself (attention.cu).
#include "kernels/head_transform.h"
#include "kernels/kernels.h"
#include "kernels/kv_pages.h"
#include "kernels/launch.h"

__global__ void qkv_rope_kernel(float *q, float *k, const float *v, const bf16 *bq, const bf16 *bk, const bf16 *bv,
                                const bf16 *q_norm, const bf16 *k_norm, const float *inv_freq, const int *row_pos,
                                bf16 *const *const *row_kv, int n_heads, int n_kv_heads, int hd, float eps) {
    int r = blockIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    int qd = n_heads * hd, kvd = n_kv_heads * hd, pos = row_pos[r];
    float *qr = q + (size_t)r * qd, *kr = k + (size_t)r * kvd;
    const float *vr = v + (size_t)r * kvd;
    for (int h = warp; h < n_heads; h += n_warps)
        head_transform(qr + h * hd, hd, bq ? bq + h * hd : nullptr, q_norm, eps, inv_freq, (float)pos, lane);
    for (int h = warp; h < n_kv_heads; h += n_warps) {
        head_transform(kr + h * hd, hd, bk ? bk + h * hd : nullptr, k_norm, eps, inv_freq, (float)pos, lane);
        bf16 *kc = kv_key(row_kv[r], pos, kvd) + h * hd, *vc = kv_value(row_kv[r], pos, kvd) + h * hd;
        for (int i = lane; i < hd; i += 32) {
            kc[i] = __float2bfloat16(kr[h * hd + i]);
            vc[i] = head_value(vr[h * hd + i], bv ? bv + h * hd : nullptr, i);
        }
    }
}

cudaError_t launch_qkv_rope(float *q, float *k, const float *v, const bf16 *bq, const bf16 *bk, const bf16 *bv,
                            const bf16 *q_norm, const bf16 *k_norm, const float *inv_freq, const int *row_pos,
                            bf16 *const *const *row_kv, int rows, int n_heads, int n_kv_heads, int head_dim, float eps,
                            cudaStream_t s) {
    return REPRISE_LAUNCH(qkv_rope_kernel, dim3(rows), dim3(128), 0, s, q, k, v, bq, bk, bv, q_norm, k_norm, inv_freq,
                          row_pos, row_kv, n_heads, n_kv_heads, head_dim, eps);
}
