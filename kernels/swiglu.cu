// SwiGLU: gate = silu(gate) * up = gate / (1 + e^-gate) * up, elementwise, grid-stride.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void swiglu_kernel(float *gate, const float *up, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = gate[i];
        gate[i] = g / (1.0f + __expf(-g)) * up[i];
    }
}

cudaError_t launch_swiglu(float *gate, const float *up, long n, cudaStream_t s) {
    long blocks = (n + 255) / 256;
    return REPRISE_LAUNCH(swiglu_kernel, dim3(blocks < 1024 ? (unsigned)blocks : 1024u), dim3(256), 0, s, gate, up, n);
}
