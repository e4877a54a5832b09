// Embedding gather: x[r] = table[tokens[r] - vocab0] as float when the token is one of the table's rows
// [vocab0, vocab0 + n_vocab), else zeros (under tensor parallelism each GPU holds a slice of the vocabulary; the
// all-reduce that follows sums the one nonzero row into every GPU's). One block per row, threads stride over it.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void embed_kernel(const bf16 *table, const int *tokens, int dim, int vocab0, int n_vocab, float *x) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    int t = tokens[blockIdx.x] - vocab0;
    float *dst = x + (size_t)blockIdx.x * dim;
    if (t < 0 || t >= n_vocab) {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = 0.0f;
        return;
    }
    const bf16 *src = table + (size_t)t * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

cudaError_t launch_embed(const bf16 *table, const int *tokens, int n, int dim, int vocab0, int n_vocab, float *x, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(embed_kernel, dim3(n), dim3(128), 0, s, table, tokens, dim, vocab0, n_vocab, x);
}
