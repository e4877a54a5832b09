// The CPU backend: the engine's backend interface on the host (AVX2 matmuls, OpenMP threads).
#ifndef REPRISE_BACKEND_CPU_H
#define REPRISE_BACKEND_CPU_H

#include "engine/backend.h"

// n_threads <= 0: every core. Never fails (err untouched): it grows its buffers on demand.
backend *backend_cpu_create(const model_config *cfg, int n_threads, rp_err *err);

#endif
