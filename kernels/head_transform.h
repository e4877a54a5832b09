// The per-head transform between the QKV projection and attention (qkv_rope.cu, and attention.cu's decode kernel,
// which applies it itself): bias, RMSNorm over the head, RoPE. One function, so both give the same bits.
#ifndef REPRISE_HEAD_TRANSFORM_H
#define REPRISE_HEAD_TRANSFORM_H

#include "kernels/kernels.h"

// One warp transforms a head of hd floats in place: add the bias (Qwen2), RMSNorm it (Qwen3's q/k norm: a warp
// reduction), rotate it by RoPE at `pos` (HF rotate_half pairs i and i + hd/2). Lanes stride over the dimensions;
// __syncwarp orders the in-place steps.
__device__ static inline void head_transform(float *h, int hd, const bf16 *bias, const bf16 *norm_w, float eps,
                                             const float *inv_freq, float pos, int lane) {
    if (bias)
        for (int i = lane; i < hd; i += 32) h[i] += __bfloat162float(bias[i]);
    __syncwarp();
    if (norm_w) {
        float ss = 0;
        for (int i = lane; i < hd; i += 32) ss += h[i] * h[i];
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        float inv = rsqrtf(ss / hd + eps);
        for (int i = lane; i < hd; i += 32) h[i] = h[i] * inv * __bfloat162float(norm_w[i]);
        __syncwarp();
    }
    int half = hd / 2;
    for (int i = lane; i < half; i += 32) {
        float a = h[i], b = h[i + half], ang = pos * inv_freq[i], c = cosf(ang), s = sinf(ang);
        h[i] = a * c - b * s;
        h[i + half] = b * c + a * s;
    }
    __syncwarp();
}

// A value's V entry as the cache keeps it: the bias added, rounded to BF16.
__device__ static inline bf16 head_value(float v, const bf16 *bias, int i) {
    return __float2bfloat16(v + (bias ? __bfloat162float(bias[i]) : 0.0f));
}

#endif
