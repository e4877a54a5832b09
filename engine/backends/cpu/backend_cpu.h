// The CPU backend: the engine's backend interface on the host (AVX2 matmuls, OpenMP threads).
#ifndef REPRISE_BACKEND_CPU_H
#define REPRISE_BACKEND_CPU_H

#include <stddef.h>

#include "engine/backend.h"
#include "engine/memory_plan.h"

// n_threads <= 0: every core. Never fails (err untouched): it grows its buffers on demand.
backend *backend_cpu_create(const model_config *cfg, int n_threads, rp_err *err);

// Bytes the CPU backend keeps of tensor t: a matrix packed in its stored dtype (a projection in FP8 when asked, or
// stored so, with a float scale a row and group), a vector in float32.
double cpu_tensor_bytes(const model_config *c, const st_tensor *t, weights_format w);

// Bytes of host memory a new allocation can take: /proc/meminfo's MemAvailable, or less where a cgroup (v2) caps
// this process's memory; why names which (at most 96 bytes). 0 when neither can be read.
double host_memory_available(char *why, size_t cap);

#endif
