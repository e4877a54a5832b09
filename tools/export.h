// Writing the physically duplicated checkpoint of a schedule, for engines without layer schedules.
#ifndef REPRISE_EXPORT_H
#define REPRISE_EXPORT_H

#include "engine/memory_plan.h"
#include "engine/schedule.h"
#include "loader/error.h"

// Reads the checkpoint in src_dir and writes out_dir (created if needed): model.safetensors where layer v is a
// copy of source layer schedule[v], config.json with num_hidden_layers = n_visits (and per-layer lists such as
// layer_types reordered to match), and every other file of src_dir copied unchanged. weights WEIGHTS_FP8 writes the
// projections quantized as --weights fp8 quantizes them at load (E4M3, a float32 scale per output row), in the
// compressed-tensors layout (F8_E4M3 `weight` and `weight_scale` [d, 1]; config.json's quantization_config says so),
// which reprise reads back to the same bits; a checkpoint that is FP8 already is refused so (export it as stored).
int export_schedule(const char *src_dir, const schedule *s, weights_format weights, const char *out_dir, rp_err *err);

#endif
