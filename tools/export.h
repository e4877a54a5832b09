// Writing the physically duplicated checkpoint of a schedule, for engines without layer schedules.
#ifndef REPRISE_EXPORT_H
#define REPRISE_EXPORT_H

#include "engine/schedule.h"
#include "loader/error.h"

// Reads the checkpoint in src_dir and writes out_dir (created if needed): model.safetensors where layer v is a
// copy of source layer schedule[v], config.json with num_hidden_layers = n_visits (and per-layer lists such as
// layer_types reordered to match), and every other file of src_dir copied unchanged.
int export_schedule(const char *src_dir, const schedule *s, const char *out_dir, rp_err *err);

#endif
