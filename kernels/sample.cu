// Sampling on the device, each row by its own request (sample_row_params: its filters, its uniform draw, its logit
// edits, the log-probabilities it wants) - the CPU sampler's rules (engine/sampler.c's sample_rows_host) on at most
// SAMPLE_MAX_K candidates - in launches cut so that a GPU holding a slice of the vocabulary hands on only its
// candidates. Log-probabilities: per slice, the largest logit, the sum of e^(l - max) in double and the top n, before
// the edits. Edits: a block a row, its threads over the row's edits (in mapped host memory: a server's penalties over
// a long prompt need no device buffer sized for them). Candidates: one block of 256 threads per row and slice. Argmax
// (greedy): each thread scans a strided slice, then a shared-memory tree keeps the larger value (the lower id on
// ties). The top k (up to SAMPLE_MAX_K) by a radix select: the logits as order-preserving 32-bit keys, 8 bits a pass
// from the top, a histogram of the next digit among the keys that share the digits chosen so far (one per warp, then
// added) finds the k-th largest key in 4 passes over the row; the keys above it are gathered, then the lowest ids of
// the keys equal to it (a pass in id order, a block scan a tile) up to k, and the k sorted (a bitonic sort in shared
// memory: larger logit first, lower id on ties) - the same candidates as k rounds of argmax, in 6 passes instead of
// k. The softmax's denominator over the slice is a block sum. Pick: one thread per row merges the slices' sorted
// candidates, scales each slice's denominator to the common max, applies the filters and draws.
#include "kernels/kernels.h"
#include "kernels/launch.h"

// Block-wide argmax of v; every thread gets (best value, best id).
__device__ static void block_argmax(const float *v, int n, float *sv, int *si, float *best, int *best_id) {
    float m = -INFINITY;
    int id = n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (v[i] > m || (v[i] == m && i < id)) m = v[i], id = i;
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

// A logit as a key whose unsigned order is the logits' order (finite values: the row was checked).
__device__ static inline unsigned order_key(float v) {
    unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

#define SC_THREADS 256
#define SC_WARPS (SC_THREADS / 32)

// The k-th largest key of row l (k <= n); *equal_needed: how many of the keys equal to it are among the k largest
// (the keys above it are k - that many). Every thread gets both.
__device__ static unsigned block_kth_key(const float *l, int n, int k, unsigned (*hist)[256], int *equal_needed) {
    __shared__ unsigned digit, left;
    unsigned prefix = 0, mask = 0;
    int want = k;   // the rank sought among the keys that share the prefix
    int warp = threadIdx.x / 32;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < SC_WARPS * 256; b += blockDim.x) hist[b / 256][b % 256] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            unsigned key = order_key(l[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[warp][(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        for (int b = threadIdx.x; b < 256; b += blockDim.x)   // the warps' histograms, added
            for (int w = 1; w < SC_WARPS; w++) hist[0][b] += hist[w][b];
        __syncthreads();
        if (threadIdx.x == 0) {   // from the top digit down: the bin that holds the want-th largest
            unsigned cum = 0;
            int d = 255;
            for (; d > 0 && cum + hist[0][d] < (unsigned)want; d--) cum += hist[0][d];
            digit = (unsigned)d, left = (unsigned)want - cum;
        }
        __syncthreads();
        prefix |= digit << shift, mask |= 255u << shift, want = (int)left;
        __syncthreads();   // digit and left are written again next pass
    }
    *equal_needed = want;
    return prefix;
}

// Sorts n (<= SAMPLE_MAX_K) candidates in place into candidate order (larger logit first, lower id on ties): bitonic,
// over the next power of two, the padding last.
__device__ static void block_sort_candidates(float *v, int *id, int n) {
    int size = 1;
    while (size < n) size *= 2;
    for (int i = n + threadIdx.x; i < size; i += blockDim.x) v[i] = -INFINITY, id[i] = 0x7fffffff;
    __syncthreads();
    for (int k = 2; k <= size; k *= 2)
        for (int j = k / 2; j > 0; j /= 2) {
            for (int i = threadIdx.x; i < size; i += blockDim.x) {
                int o = i ^ j;
                if (o <= i) continue;
                bool ascending_block = (i & k) == 0;   // this pair's half of the bitonic step puts "before" first
                bool o_first = v[o] > v[i] || (v[o] == v[i] && id[o] < id[i]);
                if (o_first == ascending_block) {
                    float tv = v[i];
                    int ti = id[i];
                    v[i] = v[o], id[i] = id[o], v[o] = tv, id[o] = ti;
                }
            }
            __syncthreads();
        }
}

// The kk (<= n, <= SAMPLE_MAX_K) largest logits of l (finite) in candidate order into top_v / top_id (ids relative
// to l): the keys above the k-th (fewer than kk, in any order), then the lowest ids of those equal to it, sorted.
// si: (SC_THREADS) scratch.
__device__ static void block_top_k(const float *l, int n, int kk, float *top_v, int *top_id, unsigned (*hist)[256], int *si) {
    __shared__ int n_above, n_equal;
    int equal_needed;
    unsigned kth = block_kth_key(l, n, kk, hist, &equal_needed);
    if (threadIdx.x == 0) n_above = 0, n_equal = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (order_key(l[i]) > kth) {
            int at = atomicAdd(&n_above, 1);
            top_v[at] = l[i], top_id[at] = i;
        }
    __syncthreads();
    const int above = n_above, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int base = 0; base < n && n_equal < equal_needed; base += blockDim.x) {   // the equal ones, lowest ids first
        int i = base + threadIdx.x;
        bool eq = i < n && order_key(l[i]) == kth;
        unsigned ballot = __ballot_sync(0xffffffffu, eq);
        if (lane == 0) si[warp] = __popc(ballot);
        __syncthreads();
        int rank = n_equal + __popc(ballot & ((1u << lane) - 1u));
        for (int w = 0; w < warp; w++) rank += si[w];
        if (eq && rank < equal_needed) top_v[above + rank] = l[i], top_id[above + rank] = i;
        __syncthreads();
        if (threadIdx.x == 0)
            for (int w = 0; w < SC_WARPS; w++) n_equal += si[w];
        __syncthreads();
    }
    block_sort_candidates(top_v, top_id, kk);
}

// This CTA's slice (blockIdx.y of gridDim.y) of a row's n_vocab logits: its first id and length.
__device__ static void slice_of(int n_vocab, int *s0, int *n) {
    *s0 = (int)((long)n_vocab * blockIdx.y / gridDim.y);
    *n = (int)((long)n_vocab * (blockIdx.y + 1) / gridDim.y) - *s0;
}

__global__ void __launch_bounds__(SC_THREADS) sample_candidates_kernel(const float *logits, int row_vocab, int vocab0,
                                                                         const sample_row_params *params, int k_stride,
                                                                         unsigned char *cand) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    __shared__ float sv[SC_THREADS];
    __shared__ int si[SC_THREADS], bad;
    __shared__ unsigned hist[SC_WARPS][256];
    __shared__ float top_v[SAMPLE_MAX_K];
    __shared__ int top_id[SAMPLE_MAX_K];
    const sample_row_params p = params[blockIdx.x];
    int s0, n_vocab;
    slice_of(row_vocab, &s0, &n_vocab);
    const float *l = logits + (size_t)blockIdx.x * row_vocab + s0;
    vocab0 += s0;
    cand_header *h = record(cand + (size_t)blockIdx.y * gridDim.x * SAMPLE_CANDIDATE_ROW_BYTES(k_stride), blockIdx.x, k_stride);
    cand_pair *pairs = (cand_pair *)(h + 1);
    if (row_not_finite(l, n_vocab, &bad)) {
        if (threadIdx.x == 0) h->bad = 1, h->k = 0, h->max = 0, h->sum = 0;
        return;
    }
    int k = sample_candidates_k(p.temp, p.top_k), kk = k < n_vocab ? k : n_vocab;
    if (p.temp <= 0) {   // greedy: the best alone
        float best;
        int id;
        block_argmax(l, n_vocab, sv, si, &best, &id);
        if (threadIdx.x == 0) h->bad = 0, h->k = 1, h->max = best, h->sum = 0, pairs[0] = cand_pair{best, vocab0 + id};
        return;
    }
    block_top_k(l, n_vocab, kk, top_v, top_id, hist, si);
    for (int c = threadIdx.x; c < kk; c += blockDim.x) pairs[c] = cand_pair{top_v[c], vocab0 + top_id[c]};
    // the softmax's denominator over the slice, as the CPU sampler normalises over the vocabulary
    float mx = top_v[0], part = 0;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) part += __expf((l[i] - mx) / p.temp);
    sv[threadIdx.x] = part;
    __syncthreads();
    for (int s2 = blockDim.x / 2; s2 > 0; s2 >>= 1) {
        if ((int)threadIdx.x < s2) sv[threadIdx.x] += sv[threadIdx.x + s2];
        __syncthreads();
    }
    if (threadIdx.x == 0) h->bad = 0, h->k = kk, h->max = mx, h->sum = sv[0];
}

// The logit edits of each row (logit_bias, penalties), in place, for the ids this GPU holds; each edited logit's
// value before the edit goes to raw[edit] (the chosen token's log-probability is of the unedited logits). A
// block a row, its threads over the row's edits (each id once: no two threads write one logit).
__global__ void sample_edit_kernel(float *logits, int row_vocab, int vocab0, const sample_row_params *params,
                                   const logit_edit *edits, float *raw) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    const sample_row_params p = params[blockIdx.x];
    float *l = logits + (size_t)blockIdx.x * row_vocab;
    for (int e = threadIdx.x; e < p.n_edits; e += blockDim.x) {
        logit_edit ed = edits[p.edit0 + e];
        int i = ed.id - vocab0;
        if (i < 0 || i >= row_vocab) continue;
        raw[p.edit0 + e] = l[i];
        l[i] = logit_edit_apply(&ed, l[i]);
    }
}

// Per row that asks (n_top >= 0), per slice of its vocabulary: the largest logit, the sum of e^(l - max) in double
// (a block sum; the host sums the slices' and GPUs' scaled to the common max) and the min(n_top, slice) largest
// logits in candidate order - the unedited logits: this runs before the edits.
__global__ void __launch_bounds__(SC_THREADS) sample_logprobs_kernel(const float *logits, int row_vocab, int vocab0,
                                                                       const sample_row_params *params, sample_logprob_record *out) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    __shared__ double sd[SC_THREADS];
    __shared__ float sv[SC_THREADS];
    __shared__ int si[SC_THREADS], bad;
    __shared__ unsigned hist[SC_WARPS][256];
    __shared__ float top_v[32];
    __shared__ int top_id[32];
    const sample_row_params p = params[blockIdx.x];
    if (p.n_top < 0) return;
    int s0, n_vocab;
    slice_of(row_vocab, &s0, &n_vocab);
    const float *l = logits + (size_t)blockIdx.x * row_vocab + s0;
    sample_logprob_record *rec = out + (size_t)blockIdx.y * gridDim.x + blockIdx.x;
    if (row_not_finite(l, n_vocab, &bad)) {   // no distribution: the row's draw fails (-1) and says so
        if (threadIdx.x == 0) rec->max = NAN, rec->n = 0, rec->sum = 0;
        return;
    }
    float mx;
    int id;
    block_argmax(l, n_vocab, sv, si, &mx, &id);
    int n = p.n_top < SAMPLE_MAX_LOGPROBS ? p.n_top : SAMPLE_MAX_LOGPROBS;
    if (n > n_vocab) n = n_vocab;
    if (n > 0) block_top_k(l, n_vocab, n, top_v, top_id, hist, si);
    double part = 0;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) part += exp((double)l[i] - mx);
    sd[threadIdx.x] = part;
    __syncthreads();
    for (int s2 = blockDim.x / 2; s2 > 0; s2 >>= 1) {
        if ((int)threadIdx.x < s2) sd[threadIdx.x] += sd[threadIdx.x + s2];
        __syncthreads();
    }
    for (int c = threadIdx.x; c < n; c += blockDim.x) rec->top[c].v = top_v[c], rec->top[c].id = vocab0 + s0 + top_id[c];
    if (threadIdx.x == 0) rec->max = mx, rec->n = n, rec->sum = sd[0];
}

// (v, id) before (w, jd) in candidate order: the larger logit, the lower id on ties.
__device__ static bool before(cand_pair a, cand_pair b) { return a.v > b.v || (a.v == b.v && a.id < b.id); }

// out[row] = {id, its (edited) logit}; the logit is the chosen token's log-probability's numerator.
__device__ static void pick_out(int *out, int id, float v) {
    out[2 * blockIdx.x] = id;
    ((float *)out)[2 * blockIdx.x + 1] = v;
}

__global__ void sample_pick_kernel(const unsigned char *cand, int n_slices, size_t slice_stride, int k_stride,
                                   const sample_row_params *params, int *out) {
    pdl_wait();   // launched early (REPRISE_LAUNCH_PDL): nothing of global memory before the previous kernel is done
    pdl_launch_dependents();
    __shared__ float cand_v[SAMPLE_MAX_K], cand_l[SAMPLE_MAX_K];
    __shared__ int cand_id[SAMPLE_MAX_K];
    if (threadIdx.x != 0) return;   // sequential over the candidates
    const sample_row_params p = params[blockIdx.x];
    const int k = sample_candidates_k(p.temp, p.top_k), top_k = p.top_k;
    const float temp = p.temp, top_p = p.top_p, min_p = p.min_p;
    const cand_header *h[SAMPLE_MAX_SLICES];
    int at[SAMPLE_MAX_SLICES], total = 0, bad = 0;
    for (int s = 0; s < n_slices; s++) {
        h[s] = record((unsigned char *)cand + s * slice_stride, blockIdx.x, k_stride);
        at[s] = 0, total += h[s]->k, bad |= h[s]->bad;
    }
    if (bad) {
        pick_out(out, -1, 0);
        return;
    }
    // the slices' sorted lists, merged one candidate at a time: a draw whose top-p or min-p cut decides it merges
    // only up to the cut (a nucleus of a few dozen, not SAMPLE_MAX_K dependent steps)
    const int kk = k < total ? k : total;
    int merged = 0;
    auto merge_next = [&]() {
        int from = -1;
        for (int s = 0; s < n_slices; s++)
            if (at[s] < h[s]->k && (from < 0 || before(((const cand_pair *)(h[s] + 1))[at[s]], ((const cand_pair *)(h[from] + 1))[at[from]])))
                from = s;
        cand_pair cp = ((const cand_pair *)(h[from] + 1))[at[from]++];
        cand_v[merged] = cand_l[merged] = cp.v, cand_id[merged] = cp.id;
        merged++;
    };
    merge_next();
    if (temp <= 0) {
        pick_out(out, cand_id[0], cand_l[0]);
        return;
    }
    // the denominator over the whole vocabulary: each slice's sum scaled to the common max (unscaled when the
    // slice holds it, so one slice gives exactly its own sum)
    float mx = cand_v[0], sum = 0;
    for (int s = 0; s < n_slices; s++) sum += h[s]->max == mx ? h[s]->sum : h[s]->sum * __expf((h[s]->max - mx) / temp);
    // The candidates decide the draw when they hold every token the filters could keep: the whole vocabulary (each
    // slice kept fewer than k), or every top-k survivor, or a top-p / min-p cut that falls inside them. Otherwise
    // the row is SAMPLE_NEEDS_HOST and the backend samples its logits on the host by the same rule.
    int complete = 1;
    for (int s = 0; s < n_slices; s++) complete &= h[s]->k < k;
    int decided = complete || (top_k > 0 && top_k <= SAMPLE_MAX_K);
    if (!decided && top_k > 0) {   // top-k past the candidates
        pick_out(out, SAMPLE_NEEDS_HOST, 0);
        return;
    }
    int keep = kk;
    if (decided) {   // every candidate counts: all merged, top-p (over the top-k survivors when top-k is on), min-p
        while (merged < kk) merge_next();
        for (int c = 0; c < kk; c++) cand_v[c] = __expf((cand_v[c] - mx) / temp);
        float norm = sum;   // HF: top-p over the top-k survivors, renormalised; top-k off: the whole vocabulary
        if (top_k > 0) {
            norm = 0;
            for (int c = 0; c < kk; c++) norm += cand_v[c];
        }
        if (top_p < 1) {
            float cum = 0;
            for (int c = 0; c < keep; c++) {
                cum += cand_v[c] / norm;
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
    } else {   // top-k off, the vocabulary past the candidates: a top-p or min-p cut inside them decides, found in
               // order as the candidates merge - the same cut as over all of them (min-p's first, at a candidate)
        float cum = 0;
        for (int c = 0; c < kk; c++) {
            if (c == merged) merge_next();
            cand_v[c] = __expf((cand_v[c] - mx) / temp);
            if (min_p > 0 && c >= 1 && !(cand_v[c] >= min_p * cand_v[0])) {   // below the floor: so is every one after
                keep = c, decided = 1;
                break;
            }
            if (top_p < 1 && (cum += cand_v[c] / sum) >= top_p) {
                keep = c + 1, decided = 1;
                break;
            }
        }
    }
    if (!decided) {
        pick_out(out, SAMPLE_NEEDS_HOST, 0);
        return;
    }
    float all = 0;
    for (int c = 0; c < keep; c++) all += cand_v[c];
    float r = p.uniform * all, cum = 0;
    int pick = keep - 1;
    for (int c = 0; c < keep; c++) {
        cum += cand_v[c];
        if (r < cum) {
            pick = c;
            break;
        }
    }
    pick_out(out, cand_id[pick], cand_l[pick]);
}

cudaError_t launch_sample_candidates(const float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                     int k_stride, int slices, unsigned char *cand, cudaStream_t s) {
    if (slices < 1 || slices > SAMPLE_MAX_SLICES || slices > n_vocab || k_stride < 1 || k_stride > SAMPLE_MAX_K)
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(sample_candidates_kernel, dim3(rows, slices), dim3(SC_THREADS), 0, s, logits, n_vocab, vocab0, params,
                          k_stride, cand);
}

cudaError_t launch_sample_pick(const unsigned char *cand, int n_slices, size_t slice_stride, int rows, int k_stride,
                               const sample_row_params *params, int *out, cudaStream_t s) {
    if (n_slices < 1 || n_slices > SAMPLE_MAX_SLICES) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(sample_pick_kernel, dim3(rows), dim3(32), 0, s, cand, n_slices, slice_stride, k_stride, params, out);
}

cudaError_t launch_sample_edits(float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                const logit_edit *edits, float *raw, cudaStream_t s) {
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(sample_edit_kernel, dim3(rows), dim3(256), 0, s, logits, n_vocab, vocab0, params, edits, raw);
}

cudaError_t launch_sample_logprobs(const float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                   int slices, sample_logprob_record *out, cudaStream_t s) {
    if (slices < 1 || slices > SAMPLE_MAX_SLICES || slices > n_vocab) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    return REPRISE_LAUNCH_PDL(sample_logprobs_kernel, dim3(rows, slices), dim3(SC_THREADS), 0, s, logits, n_vocab, vocab0, params, out);
}

cudaError_t launch_sample(const float *logits, int rows, int vocab, const sample_row_params *params, int k_stride,
                          unsigned char *cand, int *out, cudaStream_t s) {
    int slices = sample_slices(vocab, 1);
    cudaError_t e = launch_sample_candidates(logits, rows, vocab, 0, params, k_stride, slices, cand, s);
    if (e != cudaSuccess) return e;
    return launch_sample_pick(cand, slices, (size_t)rows * SAMPLE_CANDIDATE_ROW_BYTES(k_stride), rows, k_stride, params, out, s);
}
