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
    emu::launch_kernel(#kernel, kernel, false, (grid), (block), (smem), (stream), __VA_ARGS__)
#endif

// The same launch with programmatic dependent launch (the attribute cudaLaunchAttributeProgrammaticStreamSerialization):
// it may start while the kernel before it on the stream finishes - its launch latency, and its work before pdl_wait,
// hidden behind that kernel's tail. Only for a kernel that calls pdl_wait() before touching global memory
// (cuda_compat.h). On a GPU before sm_90, or with REPRISE_PDL=0 (to measure what it brings), an ordinary launch.
#ifdef __CUDACC__
int reprise_pdl_enabled();   // launch.cu: the device is sm_90 or later and REPRISE_PDL is not 0
template <typename... P, typename... A>
static inline cudaError_t reprise_launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                             A &&...args) {
    if (!reprise_pdl_enabled()) {
        kernel<<<grid, block, smem, stream>>>(static_cast<P>(args)...);
        return cudaGetLastError();
    }
    cudaLaunchConfig_t config = {};
    config.gridDim = grid, config.blockDim = block, config.dynamicSmemBytes = smem, config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute, config.numAttrs = 1;
    return cudaLaunchKernelEx(&config, kernel, static_cast<P>(args)...);
}
#define REPRISE_LAUNCH_PDL(kernel, grid, block, smem, stream, ...) \
    reprise_launch_pdl(kernel, (grid), (block), (smem), (stream), __VA_ARGS__)
#else
#define REPRISE_LAUNCH_PDL(kernel, grid, block, smem, stream, ...) \
    emu::launch_kernel(#kernel, kernel, emu::pdl_enabled(), (grid), (block), (smem), (stream), __VA_ARGS__)
#endif

#endif
