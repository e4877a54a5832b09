// Embedding gather: x[r] = table[tokens[r] - vocab0] as float when the token is one of the table's rows
// [vocab0, vocab0 + n_vocab), else zeros (under tensor parallelism each GPU holds a slice of the vocabulary; the
// all-reduce that follows sums the one nonzero row into every GPU's). One block per row, threads stride over it, 8
// elements a thread at a time where the row allows (one 16-byte load, two 16-byte stores: a few requests a warp,
// not one per element).
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void embed_kernel(const bf16 *table, const int *tokens, int dim, int vocab0, int n_vocab, float *x) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    int t = tokens[blockIdx.x] - vocab0;
    float *dst = x + (size_t)blockIdx.x * dim;
    bool inside = t >= 0 && t < n_vocab;
    const bf16 *src = table + (size_t)(inside ? t : 0) * dim;
    if (dim % 8 == 0 && (uintptr_t)src % 16 == 0 && (uintptr_t)dst % 16 == 0) {
        for (int c = threadIdx.x; c < dim / 8; c += blockDim.x) {
            uint4 raw = inside ? ldg_16(src + 8 * c) : make_uint4(0, 0, 0, 0);   // BF16 -> FP32: the bits moved up
            uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
            st_16(dst + 8 * c, make_uint4(w[0] << 16, w[0] & 0xffff0000u, w[1] << 16, w[1] & 0xffff0000u));
            st_16(dst + 8 * c + 4, make_uint4(w[2] << 16, w[2] & 0xffff0000u, w[3] << 16, w[3] & 0xffff0000u));
        }
        return;
    }
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = inside ? __bfloat162float(src[i]) : 0.0f;
}

cudaError_t launch_embed(const bf16 *table, const int *tokens, int n, int dim, int vocab0, int n_vocab, float *x, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(embed_kernel, dim3(n), dim3(256), 0, s, table, tokens, dim, vocab0, n_vocab, x);
}
