// Writing the physically duplicated checkpoint of a schedule, for engines without layer schedules.
#ifndef REPRISE_EXPORT_H
#define REPRISE_EXPORT_H

#include "engine/memory_plan.h"
#include "engine/schedule.h"
#include "loader/error.h"

#define EXPORT_SHARD_BYTES 5e9   // Hugging Face's max_shard_size default, "5GB"

typedef struct {
    weights_format weights;   // WEIGHTS_FP8: the projections quantized (below)
    double shard_bytes;       // most tensor bytes a shard holds (0: EXPORT_SHARD_BYTES); a larger tensor has its own
    int no_clones;            // write every shard from its tensors, even one the source holds whole
    int quiet;                // no progress lines on stderr
} export_opts;

// Reads the checkpoint in src_dir and writes out_dir (created if needed): the tensors, where layer v is a copy of
// source layer schedule[v]; config.json with num_hidden_layers = n_visits (and per-layer lists such as layer_types
// reordered to match); every other file of src_dir copied unchanged. The tensors go in shards of at most
// shard_bytes, model-00001-of-0000N.safetensors with model.safetensors.index.json (one shard: model.safetensors
// alone), as Hugging Face writes them; a source shard whose every tensor the export keeps under the same name (the
// layers before a schedule's first repeat or skip) is copied whole, reflinked where the filesystem shares blocks
// (btrfs, XFS: a RYS export then writes only what is new), never hard-linked (a write into the export would reach
// the source). The bytes to write are checked against the free space before anything is
// written; a line on stderr after each shard says how far it is. weights WEIGHTS_FP8 writes the projections
// quantized as --weights fp8 quantizes them at load (E4M3, a float32 scale per output row), in the compressed-tensors
// layout (F8_E4M3 `weight` and `weight_scale` [d, 1]; config.json's quantization_config says so), which reprise
// reads back to the same bits; a checkpoint that is FP8 already is refused so (export it as stored).
int export_schedule(const char *src_dir, const schedule *s, const export_opts *eo, const char *out_dir, rp_err *err);

// "5GB", "500MB", "2GiB", "1000000": bytes (decimal units as Hugging Face's max_shard_size, binary with an i).
int export_parse_size(const char *text, double *bytes);

#endif
