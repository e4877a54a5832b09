// Decode GEMV: out[r][n] = sum_k x[r][k] * W[n][k], W in BF16, for up to 8 rows at once.
// One warp per output n (4 per block). Lanes walk the weight row in 16-byte chunks of 8 BF16 values (a uint4
// load; K must be a multiple of 8, else a scalar path), and each chunk is multiplied into every row's
// accumulator, so the weights are read from memory once per step for the whole batch - decode is bound by
// exactly that read. The warp then reduces each row's sum with __shfl_xor_sync.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void gemv_bf16_kernel(const bf16 *W, const float *x, int rows, int N, int K, float *out) {
    int lane = threadIdx.x % 32, n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return;   // a whole warp leaves together: no barrier follows
    float acc[GEMV_MAX_ROWS] = {0};
    const bf16 *w = W + (size_t)n * K;
    if (K % 8 == 0) {
        for (int k = lane * 8; k < K; k += 32 * 8) {
            uint4 raw = __ldg(reinterpret_cast<const uint4 *>(w + k));
            const __nv_bfloat162 *pair = reinterpret_cast<const __nv_bfloat162 *>(&raw);
            float wf[8];
            for (int p = 0; p < 4; p++) {
                float2 f = __bfloat1622float2(pair[p]);
                wf[2 * p] = f.x, wf[2 * p + 1] = f.y;
            }
            for (int r = 0; r < rows; r++) {
                const float *xr = x + (size_t)r * K + k;
                for (int i = 0; i < 8; i++) acc[r] += wf[i] * xr[i];
            }
        }
    } else {
        for (int k = lane; k < K; k += 32) {
            float wf = __bfloat162float(w[k]);
            for (int r = 0; r < rows; r++) acc[r] += wf * x[(size_t)r * K + k];
        }
    }
    for (int r = 0; r < rows; r++) {
        float v = acc[r];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) out[(size_t)r * N + n] = v;
    }
}

cudaError_t launch_gemv_bf16(const bf16 *W, const float *x, int rows, int N, int K, float *out, cudaStream_t s) {
    if (rows < 1 || rows > GEMV_MAX_ROWS) return cudaErrorInvalidValue;
    return REPRISE_LAUNCH(gemv_bf16_kernel, dim3((N + 3) / 4), dim3(128), 0, s, W, x, rows, N, K, out);
}
