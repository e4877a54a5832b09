// The backends built into a program: an explicit list, compiled into each program that runs models (CMake's
// reprise_link_backends picks builtin_cpu.c or builtin_cuda.c), so the engine knows what exists without weak symbols.
#ifndef REPRISE_BACKENDS_BUILTIN_H
#define REPRISE_BACKENDS_BUILTIN_H

#include <stddef.h>

#include "engine/backend.h"

typedef struct {
    const char *name;   // what --backend names
    // NULL with an error naming the problem when the backend cannot run here (no device).
    backend *(*create)(const model_config *cfg, int n_threads, rp_err *err);
    // A device backend's measurements of its device (bench's rooflines); NULL for the host's.
    const char *(*device_name)(void);
    double (*copy_bandwidth)(size_t bytes, rp_err *err);
    double (*time_gemm)(int R, int N, int K, int variant, rp_err *err);
} backend_entry;

// In the order `--backend auto` tries them (a device backend first, the CPU's last), ended by an entry without name.
extern const backend_entry backend_builtin[];

// The built-in backend called name, or NULL when this program was built without it (engine/model.c).
const backend_entry *backend_builtin_find(const char *name);

#endif
