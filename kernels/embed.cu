// Embedding gather: x[r] = table[tokens[r]] as float. One block per row, threads stride over the row.
#include "kernels/kernels.h"
#include "kernels/launch.h"

__global__ void embed_kernel(const bf16 *table, const int *tokens, int dim, float *x) {
    const bf16 *src = table + (size_t)tokens[blockIdx.x] * dim;
    float *dst = x + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

cudaError_t launch_embed(const bf16 *table, const int *tokens, int n, int dim, float *x, cudaStream_t s) {
    return REPRISE_LAUNCH(embed_kernel, dim3(n), dim3(128), 0, s, table, tokens, dim, x);
}
