// Sampling on the device, per row of logits: greedy (argmax, lowest id on ties), and temperature with top-k,
// top-p and min-p from a given uniform number - the CPU sampler's rules, on at most SAMPLE_MAX_K candidates - in
// two kernels, so that a GPU holding a slice of the vocabulary hands on only its candidates.
// Candidates: one block of 256 threads per row. Argmax: each thread scans a strided slice, then a shared-memory
// tree keeps the larger value (the lower id on ties). The top candidates are found one by one with that same
// block argmax, masking each winner (k rounds over the vocabulary: fine for the k of practice); the softmax's
// denominator over the slice is a block sum. Pick: one thread per row merges the slices' sorted candidates, scales
// each slice's denominator to the common max, applies the filters and draws.
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

struct cand_header {
    float max, sum;   // the slice's largest logit; sum of e^((l - max) / temp) over the slice
    int bad, k;       // the row holds NaN or an infinity; candidates that follow
};
struct cand_pair {
    float v;
    int id;
};

__device__ static cand_header *record(unsigned char *cand, int row, int k) {
    return (cand_header *)(cand + (size_t)row * SAMPLE_CANDIDATE_ROW_BYTES(k));
}

__global__ void sample_candidates_kernel(const float *logits, int n_vocab, int vocab0, float temp, int k,
                                         unsigned char *taken, unsigned char *cand) {
    __shared__ float sv[256];
    __shared__ int si[256], bad;
    __shared__ float first;
    const float *l = logits + (size_t)blockIdx.x * n_vocab;
    cand_header *h = record(cand, blockIdx.x, k);
    cand_pair *pairs = (cand_pair *)(h + 1);
    if (row_not_finite(l, n_vocab, &bad)) {
        if (threadIdx.x == 0) h->bad = 1, h->k = 0, h->max = 0, h->sum = 0;
        return;
    }
    int kk = k < n_vocab ? k : n_vocab;
    if (temp <= 0) {   // greedy: the best alone
        float best;
        int id;
        block_argmax(l, n_vocab, nullptr, sv, si, &best, &id);
        if (threadIdx.x == 0) h->bad = 0, h->k = 1, h->max = best, h->sum = 0, pairs[0] = cand_pair{best, vocab0 + id};
        return;
    }
    unsigned char *tk = taken + (size_t)blockIdx.x * n_vocab;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) tk[i] = 0;
    __syncthreads();
    for (int c = 0; c < kk; c++) {   // candidates in order of decreasing logit
        float best;
        int id;
        block_argmax(l, n_vocab, tk, sv, si, &best, &id);
        if (threadIdx.x == 0) {
            pairs[c] = cand_pair{best, vocab0 + id}, tk[id] = 1;
            if (c == 0) first = best;
        }
        __syncthreads();
    }
    // the softmax's denominator over the slice, as the CPU sampler normalises over the vocabulary
    float mx = first, part = 0;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) part += __expf((l[i] - mx) / temp);
    sv[threadIdx.x] = part;
    __syncthreads();
    for (int s2 = blockDim.x / 2; s2 > 0; s2 >>= 1) {
        if ((int)threadIdx.x < s2) sv[threadIdx.x] += sv[threadIdx.x + s2];
        __syncthreads();
    }
    if (threadIdx.x == 0) h->bad = 0, h->k = kk, h->max = mx, h->sum = sv[0];
}

// (v, id) before (w, jd) in candidate order: the larger logit, the lower id on ties.
__device__ static bool before(cand_pair a, cand_pair b) { return a.v > b.v || (a.v == b.v && a.id < b.id); }

__global__ void sample_pick_kernel(const unsigned char *cand, int n_slices, size_t slice_stride, int k, int top_k, float temp,
                                   float top_p, float min_p, const float *uniform, int *out) {
    __shared__ float cand_v[SAMPLE_MAX_K];
    __shared__ int cand_id[SAMPLE_MAX_K];
    if (threadIdx.x != 0) return;   // sequential over the candidates
    const cand_header *h[BUFFER_LIST_MAX];
    int at[BUFFER_LIST_MAX], total = 0, bad = 0;
    for (int s = 0; s < n_slices; s++) {
        h[s] = record((unsigned char *)cand + s * slice_stride, blockIdx.x, k);
        at[s] = 0, total += h[s]->k, bad |= h[s]->bad;
    }
    if (bad) {
        out[blockIdx.x] = -1;
        return;
    }
    int kk = k < total ? k : total;
    for (int c = 0; c < kk; c++) {   // the slices' sorted lists, merged
        int from = -1;
        for (int s = 0; s < n_slices; s++)
            if (at[s] < h[s]->k && (from < 0 || before(((const cand_pair *)(h[s] + 1))[at[s]], ((const cand_pair *)(h[from] + 1))[at[from]])))
                from = s;
        cand_pair p = ((const cand_pair *)(h[from] + 1))[at[from]++];
        cand_v[c] = p.v, cand_id[c] = p.id;
    }
    if (temp <= 0) {
        out[blockIdx.x] = cand_id[0];
        return;
    }
    // the denominator over the whole vocabulary: each slice's sum scaled to the common max (unscaled when the
    // slice holds it, so one slice gives exactly its own sum)
    float mx = cand_v[0], sum = 0;
    for (int s = 0; s < n_slices; s++) sum += h[s]->max == mx ? h[s]->sum : h[s]->sum * __expf((h[s]->max - mx) / temp);
    for (int c = 0; c < kk; c++) cand_v[c] = __expf((cand_v[c] - mx) / temp);
    // The candidates decide the draw when they hold every token the filters could keep: the whole vocabulary (each
    // slice kept fewer than k), or every top-k survivor, or a top-p / min-p cut that falls inside them. Otherwise
    // the row is SAMPLE_NEEDS_HOST and the backend samples its logits on the host by the same rule.
    int complete = 1;
    for (int s = 0; s < n_slices; s++) complete &= h[s]->k < k;
    int decided = complete || (top_k > 0 && top_k <= SAMPLE_MAX_K);
    if (!decided && top_k > 0) {   // top-k past the candidates
        out[blockIdx.x] = SAMPLE_NEEDS_HOST;
        return;
    }
    float norm = sum;   // HF: top-p over the top-k survivors, renormalised; top-k off: the whole vocabulary
    if (top_k > 0) {
        norm = 0;
        for (int c = 0; c < kk; c++) norm += cand_v[c];
    }
    int keep = kk;
    if (top_p < 1) {
        float cum = 0;
        for (int c = 0; c < keep; c++) {
            cum += cand_v[c] / norm;
            if (cum >= top_p) {
                keep = c + 1, decided = 1;
                break;
            }
        }
    }
    if (min_p > 0) {
        int c = 1;
        while (c < keep && cand_v[c] >= min_p * cand_v[0]) c++;
        if (c < keep) decided = 1;   // a candidate below the floor: every token after it is too
        keep = c;
    }
    if (!decided) {
        out[blockIdx.x] = SAMPLE_NEEDS_HOST;
        return;
    }
    float all = 0;
    for (int c = 0; c < keep; c++) all += cand_v[c];
    float r = uniform[blockIdx.x] * all, cum = 0;
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

int sample_candidates_k(float temp, int top_k) {   // the record's stride: a slice with fewer ids keeps fewer
    if (temp <= 0) return 1;
    return top_k > 0 && top_k < SAMPLE_MAX_K ? top_k : SAMPLE_MAX_K;
}

cudaError_t launch_sample_candidates(const float *logits, int rows, int n_vocab, int vocab0, float temp, int top_k,
                                     unsigned char *scratch, unsigned char *cand, cudaStream_t s) {
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH(sample_candidates_kernel, dim3(rows), dim3(256), 0, s, logits, n_vocab, vocab0, temp,
                          sample_candidates_k(temp, top_k), scratch, cand);
}

cudaError_t launch_sample_pick(const unsigned char *cand, int n_slices, size_t slice_stride, int rows, int k, int top_k, float temp,
                               float top_p, float min_p, const float *uniform, int *out, cudaStream_t s) {
    if (n_slices < 1 || n_slices > BUFFER_LIST_MAX) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH(sample_pick_kernel, dim3(rows), dim3(32), 0, s, cand, n_slices, slice_stride, k, top_k, temp, top_p,
                          min_p, uniform, out);
}

cudaError_t launch_sample(const float *logits, int rows, int vocab, float temp, int top_k, float top_p, float min_p,
                          const float *uniform, unsigned char *scratch, unsigned char *cand, int *out, cudaStream_t s) {
    cudaError_t e = launch_sample_candidates(logits, rows, vocab, 0, temp, top_k, scratch, cand, s);
    if (e != cudaSuccess) return e;
    int k = sample_candidates_k(temp, top_k);
    return launch_sample_pick(cand, 1, (size_t)rows * SAMPLE_CANDIDATE_ROW_BYTES(k), rows, k, top_k, temp, top_p, min_p, uniform, out, s);
}
