// Sampling on the device, per row of logits: greedy (argmax, lowest id on ties), and temperature with top-k,
// top-p and min-p from a given uniform number - the CPU sampler's rules, on at most SAMPLE_MAX_K candidates.
// One block of 256 threads per row. Argmax: each thread scans a strided slice, then a shared-memory tree keeps
// the larger value (the lower id on ties). Sampling: the top candidates are found one by one with that same
// block argmax, masking each winner (k rounds over the vocabulary: fine for the k of practice); then thread 0
// applies the filters to the sorted candidates and draws.
#include "kernels/kernels.h"
#include "kernels/launch.h"

// Block-wide argmax of v over the ids where mask allows; every thread gets (best value, best id).
__device__ static void block_argmax(const float *v, int n, const unsigned char *taken, float *sv, int *si, float *best, int *best_id) {
    float m = -INFINITY;
    int id = n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if ((!taken || !taken[i]) && (v[i] > m || (v[i] == m && i < id))) m = v[i], id = i;
    sv[threadIdx.x] = m, si[threadIdx.x] = id;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float o = sv[threadIdx.x + s];
            int oi = si[threadIdx.x + s];
            if (o > sv[threadIdx.x] || (o == sv[threadIdx.x] && oi < si[threadIdx.x])) sv[threadIdx.x] = o, si[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    *best = sv[0], *best_id = si[0];
    __syncthreads();   // sv/si are reused by the next call
}

// Whether the row holds NaN or an infinity (then its id is -1: the sequence has failed). Every thread gets it.
__device__ static int row_not_finite(const float *v, int n, int *flag) {
    if (threadIdx.x == 0) *flag = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (!(v[i] - v[i] == 0.0f)) *flag = 1;   // NaN and infinities only; a benign race: every writer writes 1
    __syncthreads();
    int bad = *flag;
    __syncthreads();
    return bad;
}

__global__ void argmax_kernel(const float *logits, int vocab, int *out) {
    __shared__ float sv[256];
    __shared__ int si[256], bad;
    if (row_not_finite(logits + (size_t)blockIdx.x * vocab, vocab, &bad)) {
        if (threadIdx.x == 0) out[blockIdx.x] = -1;
        return;
    }
    float best;
    int id;
    block_argmax(logits + (size_t)blockIdx.x * vocab, vocab, nullptr, sv, si, &best, &id);
    if (threadIdx.x == 0) out[blockIdx.x] = id;
}

__global__ void sample_kernel(const float *logits, int vocab, float temp, int top_k, float top_p, float min_p,
                              const float *uniform, unsigned char *taken, int *out) {
    __shared__ float sv[256], cand_v[SAMPLE_MAX_K];
    __shared__ int si[256], cand_id[SAMPLE_MAX_K], bad;
    const float *l = logits + (size_t)blockIdx.x * vocab;
    if (row_not_finite(l, vocab, &bad)) {
        if (threadIdx.x == 0) out[blockIdx.x] = -1;
        return;
    }
    unsigned char *tk = taken + (size_t)blockIdx.x * vocab;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) tk[i] = 0;
    __syncthreads();
    int k = top_k > 0 && top_k < SAMPLE_MAX_K ? top_k : SAMPLE_MAX_K;
    if (k > vocab) k = vocab;
    for (int c = 0; c < k; c++) {   // candidates in order of decreasing logit
        float best;
        int id;
        block_argmax(l, vocab, tk, sv, si, &best, &id);
        if (threadIdx.x == 0) cand_v[c] = best, cand_id[c] = id, tk[id] = 1;
        __syncthreads();
    }
    // the softmax's denominator over the whole vocabulary, as the CPU sampler normalises
    float mx = cand_v[0], part = 0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) part += __expf((l[i] - mx) / temp);
    sv[threadIdx.x] = part;
    __syncthreads();
    for (int s2 = blockDim.x / 2; s2 > 0; s2 >>= 1) {
        if ((int)threadIdx.x < s2) sv[threadIdx.x] += sv[threadIdx.x + s2];
        __syncthreads();
    }
    if (threadIdx.x != 0) return;   // the rest is sequential over k candidates
    float sum = sv[0];
    for (int c = 0; c < k; c++) cand_v[c] = __expf((cand_v[c] - mx) / temp);
    int keep = k;
    if (top_p < 1) {
        float cum = 0;
        for (int c = 0; c < keep; c++) {
            cum += cand_v[c] / sum;
            if (cum >= top_p) {
                keep = c + 1;
                break;
            }
        }
    }
    if (min_p > 0) {
        int c = 1;
        while (c < keep && cand_v[c] >= min_p * cand_v[0]) c++;
        keep = c;
    }
    float total = 0;
    for (int c = 0; c < keep; c++) total += cand_v[c];
    float r = uniform[blockIdx.x] * total, cum = 0;
    int pick = cand_id[keep - 1];
    for (int c = 0; c < keep; c++) {
        cum += cand_v[c];
        if (r < cum) {
            pick = cand_id[c];
            break;
        }
    }
    out[blockIdx.x] = pick;
}

cudaError_t launch_argmax(const float *logits, int rows, int vocab, int *out, cudaStream_t s) {
    return REPRISE_LAUNCH(argmax_kernel, dim3(rows), dim3(256), 0, s, logits, vocab, out);
}

cudaError_t launch_sample(const float *logits, int rows, int vocab, float temp, int top_k, float top_p, float min_p,
                          const float *uniform, unsigned char *scratch, int *out, cudaStream_t s) {
    if (temp <= 0) return launch_argmax(logits, rows, vocab, out, s);
    return REPRISE_LAUNCH(sample_kernel, dim3(rows), dim3(256), 0, s, logits, vocab, temp, top_k, top_p, min_p, uniform, scratch, out);
}
