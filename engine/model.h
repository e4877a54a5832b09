// A model: its config, its mmap'ed checkpoint, and its weights converted once into a backend's layout.
#ifndef REPRISE_MODEL_H
#define REPRISE_MODEL_H

#include "engine/backend.h"
#include "engine/memory_plan.h"
#include "loader/config.h"
#include "loader/safetensors.h"

typedef struct {
    char *dir;
    model_config cfg;
    st_archive weights;   // the checkpoint as stored (kept mapped for inspect and export)
    backend *be;
    memory_plan plan;     // what the run was planned for; plan.shape.ubatch bounds the rows of a forward step
} model;

// Loads DIR (config.json + safetensors) into the named backend: "cpu", "cuda", or "auto" (cuda when it is built
// in and a device is present, else cpu). n_threads <= 0: all cores. The run's shape (NULL: one sequence, no KV
// planned) gives the memory plan, which the backend refuses before any weight is read when it does not fit.
// allow_unused_tensors: run a checkpoint holding tensors the model does not read (else refused, naming them).
int model_load_planned(model *m, const char *dir, const char *backend_name, int n_threads, const plan_shape *shape,
                       int allow_unused_tensors, rp_err *err);
int model_load(model *m, const char *dir, const char *backend_name, int n_threads, rp_err *err);
void model_free(model *m);

#endif
