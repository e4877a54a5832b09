// RMSNorm fused with the residual add: x += delta; out = x * rsqrt(mean(x^2) + eps) * w, as FP32 and/or rounded to
// BF16 (the next GEMM's input: the same rounding launch_to_bf16 makes, without its launch). One block of 256 threads per row: each thread sums squares over a strided slice, warps reduce with
// __shfl_xor_sync, the 8 warp sums meet in shared memory, then every thread scales its slice.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void rmsnorm_kernel(float *x, const float *delta, const bf16 *w, int dim, float eps, float *out, bf16 *out16) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    __shared__ float warp_sums[32];
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *dr = delta ? delta + (size_t)blockIdx.x * dim : nullptr;
    float ss = 0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i];
        if (dr) v += dr[i], xr[i] = v;
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0;
    for (int i = 0; i < (int)(blockDim.x / 32); i++) total += warp_sums[i];
    float inv = rsqrtf(total / dim + eps);
    size_t row = (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i] * inv * __bfloat162float(w[i]);
        if (out) out[row + i] = v;
        if (out16) out16[row + i] = __float2bfloat16(v);
    }
}

cudaError_t launch_rmsnorm(float *x, const float *delta, const bf16 *w, int n, int dim, float eps, float *out, bf16 *out_bf16,
                           cudaStream_t s) {
    if (!out && !out_bf16) return cudaErrorInvalidValue;
    return REPRISE_LAUNCH_PDL(rmsnorm_kernel, dim3(n), dim3(256), 0, s, x, delta, w, dim, eps, out, out_bf16);
}
