// The model description: config.json (and generation_config.json) for Llama, Qwen2, Mistral and Qwen3.
#ifndef REPRISE_CONFIG_H
#define REPRISE_CONFIG_H

#include "loader/error.h"

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_MISTRAL, ARCH_QWEN3 } arch_kind;

#define MAX_EOS_IDS 8

// config.json's quantization_config, for checkpoints whose projections are stored in FP8 E4M3 (loader/quantization.h
// reads it and the scales). Every layout is a scale per block of weights, block_rows x block_cols, a 0 meaning the
// whole dimension: per tensor (0, 0), per output channel (1, 0), a group along the input (1, g), blocks (128, 128).
typedef enum { QUANT_NONE, QUANT_COMPRESSED_TENSORS, QUANT_FP8 } quant_method;
typedef struct {
    quant_method method;      // compressed-tensors float-quantized, or the "fp8" layout (transformers, DeepSeek)
    int block_rows, block_cols;
    char scale_name[24];      // the scale's name, replacing the projection's last component "weight":
                              // "weight_scale" (a multiplier), or "weight_scale_inv" (the fp8 layout's blocks: the
                              // same multiplier, named for the inverse of the quantizer's divisor)
} quant_config;

typedef struct {
    arch_kind arch;
    char model_type[16];
    int dim;            // hidden_size
    int hidden_dim;     // intermediate_size
    int n_layers;       // num_hidden_layers
    int n_heads;        // num_attention_heads
    int n_kv_heads;     // num_key_value_heads (GQA)
    int head_dim;       // head_dim, or hidden_size / num_attention_heads
    int vocab_size;
    int max_pos;        // positions a sequence may hold: max_position_embeddings, or sliding_window when smaller
    int sliding_window; // the window of sliding-window attention when the model uses one below its
                        // max_position_embeddings (Mistral-7B-v0.1: 4096), else 0. reprise's attention is full
                        // causal attention, equal to sliding-window attention up to the window, so max_pos is
                        // capped there: a longer context is refused, naming the window, never computed wrongly
    int declared_max_pos;   // max_position_embeddings as config.json says
    float norm_eps;     // rms_norm_eps
    double rope_theta;
    int rope_llama3;    // rope_scaling type llama3, with the four values below
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int qkv_bias;       // qwen2: q/k/v projections carry a bias
    int qk_norm;        // qwen3: per-head RMSNorm of q and k before RoPE
    int tied_embeddings;
    int bos_id;         // -1 if none
    int n_eos;
    int eos_ids[MAX_EOS_IDS];
    quant_config quant;     // quantization_config; method QUANT_NONE without one
} model_config;

const char *arch_name(arch_kind a);
// What limits max_pos, for messages: "sliding_window" or "max_position_embeddings".
const char *config_context_name(const model_config *c);

// Reads DIR/config.json, then DIR/generation_config.json if present (its eos/bos ids take precedence).
int config_load(model_config *c, const char *dir, rp_err *err);

// The RoPE inverse frequencies (head_dim / 2 of them), with llama3 scaling applied when configured.
void config_rope_inv_freq(const model_config *c, double *inv_freq);

#endif
