// The built-in backends of a build without CUDA: the CPU backend alone.
#include "engine/backends/builtin.h"
#include "engine/backends/cpu/backend_cpu.h"

const backend_entry backend_builtin[] = {
    {.name = "cpu", .create = backend_cpu_create},
    {0},
};
