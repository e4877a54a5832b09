// The CPU backend's matrix multiply: out = x . W^T with W stored like a torch Linear weight.
#ifndef REPRISE_MATMUL_H
#define REPRISE_MATMUL_H

// out (n, d) = x (n, k) . W^T, W (d, k) row-major. Each output element is computed by the same sequence of
// float operations whatever n is and whichever rows share the call, so a sequence's logits do not depend on
// what it is batched with (OpenBLAS picks different kernels by size, and its results do).
void matmul(float *out, const float *x, const float *w, int n, int d, int k, int n_threads);

// The multiply-adds below which a parallel region costs more than it saves (waking the team, the barrier): such
// work runs on the calling thread alone, so a tiny model never wakes, or waits for, a thread.
#define PARALLEL_MIN_WORK 100000

#endif
