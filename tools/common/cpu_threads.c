// How the CPU backend's OpenMP threads wait for work: spinning bounded, so that other work on the machine runs.
#include "tools/common/cpu_threads.h"

#include <stdlib.h>
#include <unistd.h>

void cpu_threads_bound_spinning(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", CPU_THREADS_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);
}
