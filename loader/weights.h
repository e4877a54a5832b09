// The tensors a model of a given config must have: names, shapes, and conversion of their data to float32.
#ifndef REPRISE_WEIGHTS_H
#define REPRISE_WEIGHTS_H

#include <stdint.h>
#include <string.h>

#include "loader/config.h"
#include "loader/safetensors.h"

typedef enum {
    W_ATTN_NORM, W_Q, W_K, W_V, W_Q_BIAS, W_K_BIAS, W_V_BIAS, W_Q_NORM, W_K_NORM, W_O,
    W_FFN_NORM, W_GATE, W_UP, W_DOWN, W_N_LAYER_TENSORS
} layer_tensor;

typedef enum { G_EMBED, G_FINAL_NORM, G_LM_HEAD, G_N_GLOBAL_TENSORS } global_tensor;

// HF name suffix after "model.layers.N.".
extern const char *const layer_tensor_suffix[W_N_LAYER_TENSORS];
extern const char *const global_tensor_name[G_N_GLOBAL_TENSORS];

// Expected shape of a tensor for this config; returns its ndim, or 0 when the architecture has no such tensor.
int layer_tensor_shape(const model_config *c, layer_tensor w, int64_t shape[2]);
int global_tensor_shape(const model_config *c, global_tensor g, int64_t shape[2]);

// Checks that every tensor the config needs is present with its shape and a float dtype (F32, F16, BF16; a
// projection also F8_E4M3 where config.json's quantization_config says where its scales are, which are checked too:
// loader/quantization.h).
int weights_check(const model_config *c, const st_archive *a, rp_err *err);

// The checkpoint's tensors the model does not read (a layer at or beyond num_hidden_layers, a name the architecture
// does not use; HF's recomputed rotary_emb.inv_freq buffers aside): their count, the first `cap` of them in out.
int weights_unused(const model_config *c, const st_archive *a, const st_tensor **out, int cap);
// An error naming them and the config field when there are any (a checkpoint that disagrees with its config.json
// would run truncated, with no other sign); 0 when every tensor is read.
int weights_refuse_unused(const model_config *c, const st_archive *a, rp_err *err);

// The tensor for layer l (NULL when absent); the global tensor (lm_head resolves to the embedding when tied).
const st_tensor *weights_layer(const st_archive *a, int layer, layer_tensor w);
const st_tensor *weights_global(const model_config *c, const st_archive *a, global_tensor g);

// Converts a F32/F16/BF16 tensor to float32 (dst holds numel floats).
void tensor_to_f32(const st_tensor *t, float *dst);
// Converts the block rows [row0, row0 + rows) x columns [col0, col0 + cols) of a tensor seen as (shape[0], rest)
// (a 1-D tensor as (shape[0], 1)) to float32, row-major (rows, cols) in dst.
void tensor_block_to_f32(const st_tensor *t, int64_t row0, int64_t rows, int64_t col0, int64_t cols, float *dst);

// BF16 is the top half of a float32: widening is exact (and inlined: the CPU backend's attention reads BF16 keys).
static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// Round to nearest even, as CUDA's __float2bfloat16 (a NaN stays a quiet NaN).
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
float f16_to_f32(uint16_t h);

#endif
