// SwiGLU: silu(gate) * up = gate / (1 + e^-gate) * up, elementwise, grid-stride, into gate (FP32) or, rounded to
// BF16 (the down projection's input: launch_to_bf16's rounding without its launch), into out_bf16.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void swiglu_kernel(float *gate, const float *up, long n, bf16 *out16) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = gate[i], v = g / (1.0f + __expf(-g)) * up[i];
        if (out16) out16[i] = __float2bfloat16(v);
        else gate[i] = v;
    }
}

cudaError_t launch_swiglu(float *gate, const float *up, long n, bf16 *out_bf16, cudaStream_t s) {
    long blocks = (n + 255) / 256;
    return REPRISE_LAUNCH(swiglu_kernel, dim3(blocks < 1024 ? (unsigned)blocks : 1024u), dim3(256), 0, s, gate, up, n, out_bf16);
}
