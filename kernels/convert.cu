// Elementwise helpers, grid-stride: BF16 copies of activations for the cuBLAS GEMMs, and the residual add.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void to_bf16_kernel(const float *src, long n, bf16 *dst) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) dst[i] = __float2bfloat16(src[i]);
}

__global__ void add_kernel(float *x, const float *d, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) x[i] += d[i];
}

static dim3 grid_for(long n) {
    long blocks = (n + 255) / 256;
    return dim3(blocks < 1024 ? (unsigned)blocks : 1024u);
}

cudaError_t launch_to_bf16(const float *src, long n, bf16 *dst, cudaStream_t s) {
    return REPRISE_LAUNCH(to_bf16_kernel, grid_for(n), dim3(256), 0, s, src, n, dst);
}

cudaError_t launch_add(float *x, const float *d, long n, cudaStream_t s) {
    return REPRISE_LAUNCH(add_kernel, grid_for(n), dim3(256), 0, s, x, d, n);
}
