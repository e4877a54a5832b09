// The one place a kernel is started: a real <<<>>> launch under nvcc, the CPU emulation's launch otherwise.
#ifndef REPRISE_LAUNCH_H
#define REPRISE_LAUNCH_H

#include "kernels/cuda_compat.h"

// Launches kernel(args...) on grid x block threads with `smem` bytes of dynamic shared memory on `stream`, and
// returns the launch's error (a bad configuration is reported here, as cudaGetLastError would).
#ifdef __CUDACC__
#define REPRISE_LAUNCH(kernel, grid, block, smem, stream, ...) \
    (kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__), cudaGetLastError())
#else
#define REPRISE_LAUNCH(kernel, grid, block, smem, stream, ...) \
    emu::launch_kernel(#kernel, kernel, (grid), (block), (smem), (stream), __VA_ARGS__)
#endif

#endif
