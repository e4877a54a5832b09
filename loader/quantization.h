// Checkpoints whose projections are stored in FP8 E4M3: config.json's quantization_config (the compressed-tensors
// "float-quantized" layout and the "fp8" layout), and the scales beside each FP8 projection, checked and expanded
// to one scale per output row and group of input columns (what the backends apply).
#ifndef REPRISE_QUANTIZATION_H
#define REPRISE_QUANTIZATION_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "loader/config.h"
#include "loader/safetensors.h"

// Reads root's "quantization_config" into q (QUANT_NONE without one). Refused, naming the field: another
// quant_method (gptq, awq, bitsandbytes...), weights that are not 8-bit floats, an asymmetric or dynamic weight
// scheme, a strategy reprise does not read, config groups that quantize weights differently, a block size that is
// not two positive integers.
int quant_config_parse(const cJSON *root, quant_config *q, const char *file, rp_err *err);
// A line for people: "compressed-tensors, a scale per output channel", "fp8, a scale per 128x128 block".
void quant_describe(const quant_config *q, char *out, size_t cap);

// The name of the scale of projection weight `weight_name` (which ends in "weight"), into out.
void quant_scale_name(const quant_config *q, const char *weight_name, char *out, size_t cap);

// The input columns one scale covers along a row: block_cols, or k when a row has one scale.
int quant_group_cols(const quant_config *q, int k);

// The scale groups along a row's inputs [col0, col0 + cols) (a tensor-parallel rank's columns of a row) when a
// scale covers block_cols of them: those the columns touch, the first possibly in part; 1 for one scale a row.
int quant_row_groups(const quant_config *q, int64_t col0, int64_t cols);

// The scale tensor of FP8 projection w (d, k), checked: present, of the layout's shape ([R, C] with R = d /
// block_rows and C = k / block_cols rounded up, a 0 counting as the whole dimension; [R] when C is 1, [] or [1]
// for one scale), a float dtype, every value finite and positive. NULL with an error naming the tensor otherwise.
const st_tensor *quant_scales_check(const quant_config *q, const st_archive *a, const st_tensor *w, rp_err *err);

// The scales expanded to one per output row and group: out (d, ceil(k / quant_group_cols)), row j's group g being
// scale[j / block_rows][g] (as float; a BF16 or F16 scale widens exactly).
void quant_scales_expand(const quant_config *q, const st_tensor *scale, int d, int k, float *out);

// Whether `name` is a tensor the layout puts beside projection `weight_name`'s (its scale, or an input_scale: the
// static activation scale of a W8A8 checkpoint, which reprise does not need: its activations stay in 16 bits). On a
// match, the projection's weight name is written into base.
int quant_companion_of(const quant_config *q, const char *name, char *base, size_t cap);

#endif
