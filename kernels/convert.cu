// Elementwise helpers, grid-stride: BF16 copies of activations (the rounding every kernel that writes a GEMM's BF16
// input makes, and the tests' reference for it), and the sum of several buffers in order (the all-reduce of a
// tensor-parallel run: the ranks' copies on one GPU, or gathered from more than two).
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void to_bf16_kernel(const float *src, long n, bf16 *dst) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) dst[i] = __float2bfloat16(src[i]);
}

__global__ void sum_buffers_kernel(buffer_list bufs, long n, float *out) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float s = bufs.p[0][i];
        for (int b = 1; b < bufs.n; b++) s += bufs.p[b][i];   // in rank order: every rank computes the same sum
        out[i] = s;
    }
}

static dim3 grid_for(long n) {
    long blocks = (n + 255) / 256;
    return dim3(blocks < 1024 ? (unsigned)blocks : 1024u);
}

cudaError_t launch_to_bf16(const float *src, long n, bf16 *dst, cudaStream_t s) {
    return REPRISE_LAUNCH(to_bf16_kernel, grid_for(n), dim3(256), 0, s, src, n, dst);
}

cudaError_t launch_sum_buffers(buffer_list bufs, long n, float *out, cudaStream_t s) {
    if (bufs.n < 1 || bufs.n > BUFFER_LIST_MAX) return cudaErrorInvalidValue;
    return REPRISE_LAUNCH_PDL(sum_buffers_kernel, grid_for(n), dim3(256), 0, s, bufs, n, out);
}
