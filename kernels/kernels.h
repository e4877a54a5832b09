// The CUDA kernels' host-side launchers, one per kernel file; the CUDA backend calls only these.
#ifndef REPRISE_KERNELS_H
#define REPRISE_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda_compat.h"
#include "kernels/shapes.h"

typedef __nv_bfloat16 bf16;

// Rows of x (n, dim) = the embedding rows of tokens, for tokens in [vocab0, vocab0 + n_vocab) (the rows the table
// holds), zeros for the others (embed.cu).
cudaError_t launch_embed(const bf16 *table, const int *tokens, int n, int dim, int vocab0, int n_vocab, float *x, cudaStream_t s);

// x += delta (when delta is not NULL), then out = x / rms(x) * w, per row (rmsnorm.cu): into out (FP32) and/or
// out_bf16 (rounded as launch_to_bf16 rounds: a GEMM's input without a conversion launch); at least one.
cudaError_t launch_rmsnorm(float *x, const float *delta, const bf16 *w, int n, int dim, float eps, float *out, bf16 *out_bf16,
                           cudaStream_t s);


// out (R, N) = X (R, K) . W^T, X and W in BF16, FP32 accumulation on tensor cores (WMMA), any R, N, K; every
// output element is computed the same way whatever R: batch-invariant (gemm_bf16.cu). The forward's GEMM before
// gemm_mma.cu; kept as the baseline bench_gpu's GEMM table measures the new one against.
cudaError_t launch_gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, cudaStream_t s);
// The same by another variant (how the weight tiles reach the tensor cores): the same results, another speed
// (benchmarks compare them).
#define GEMM_BF16_VARIANTS 3
#define GEMM_BF16_DEFAULT_VARIANT 0   // what launch_gemm_bf16 runs (measured on an H200: no variant is faster)
extern const char *const gemm_bf16_variant_name[GEMM_BF16_VARIANTS];
cudaError_t launch_gemm_bf16_variant(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, int variant, cudaStream_t s);
// Where a GEMM's output goes (its epilogue), built by the functions below:
// GEMM_STORE: W's rows (the output's columns) in up to GEMM_OUT_MAX segments, each written to its own buffer:
//   columns [first[i], first[i + 1]) to p[i], (R, width) row-major. One launch computes Q, K and V from the
//   projections' weights stacked in one matrix; every element is computed exactly as alone. With ssq (as
//   GEMM_SWIGLU's below), each row times its 1 / rms: the RMSNorm before attention folded in.
// GEMM_ADD: p[0] (R, N) += the product: the residual add of the O and down projections, in the GEMM's last write;
//   with ssq, also the new rows rounded to BF16 into h (R, N) and their sums of squares into ssq (R,
//   row_ssq_blocks(N)): the next RMSNorm's statistics (row_stats.h), so that no kernel of its own runs.
// GEMM_SWIGLU: W is gate and up interleaved by 8 rows (gemm_swiglu_rows: rows 16 b .. 16 b + 7 are gate's 8 b ..,
//   the next 8 up's, zero rows past the MLP's width) and h (R, width) gets BF16(silu(gate) * up) - the down
//   projection's input, rounded as launch_to_bf16 rounds - for the `width` MLP rows; gate and up never stored.
//   With ssq, gate and up are first multiplied by each row's 1 / rms (from ssq, (R, row_ssq_blocks(K)), and eps):
//   the RMSNorm before the MLP folded in, its weight in W's columns.
#define GEMM_OUT_MAX 3
enum gemm_epilogue { GEMM_STORE, GEMM_ADD, GEMM_SWIGLU };
struct gemm_out {
    float *p[GEMM_OUT_MAX];
    int first[GEMM_OUT_MAX];
    int n;
    gemm_epilogue epilogue;
    bf16 *h;      // GEMM_SWIGLU's output; GEMM_ADD's rows in BF16 (with ssq)
    int width;    // GEMM_SWIGLU: h's columns
    float *ssq;   // sums of squares: GEMM_ADD writes them, GEMM_SWIGLU reads them; or nullptr
    float eps;    // GEMM_SWIGLU with ssq: the RMSNorm's epsilon
};
static inline gemm_out gemm_store(float *p) {
    return gemm_out{{p, nullptr, nullptr}, {0, 0, 0}, 1, GEMM_STORE, nullptr, 0, nullptr, 0.0f};
}
static inline gemm_out gemm_store_segments(float *p0, float *p1, int first1, float *p2 = nullptr, int first2 = 0,
                                           const float *ssq = nullptr, float eps = 0.0f) {
    return gemm_out{{p0, p1, p2}, {0, first1, first2}, p2 ? 3 : 2, GEMM_STORE, nullptr, 0, const_cast<float *>(ssq), eps};
}
static inline gemm_out gemm_add_to(float *x, bf16 *x_bf16 = nullptr, float *ssq = nullptr) {
    return gemm_out{{x, nullptr, nullptr}, {0, 0, 0}, 1, GEMM_ADD, x_bf16, 0, ssq, 0.0f};
}
static inline gemm_out gemm_swiglu(bf16 *h, int width, const float *ssq = nullptr, float eps = 0.0f) {
    return gemm_out{{nullptr, nullptr, nullptr}, {0, 0, 0}, 1, GEMM_SWIGLU, h, width, const_cast<float *>(ssq), eps};
}
cudaError_t launch_gemm_bf16_split(const bf16 *X, const bf16 *W, int R, int N, int K, gemm_out out, int variant, cudaStream_t s);

// The GEMM on mma.sync with a cp.async pipeline (gemm_mma.cu): out (R, N) = X (R, K) . W^T into out's column segments,
// every element summed by the rule of gemm_k_segments(N, K) whatever R. Up to GEMM_SPLIT_ROWS rows with more than
// one segment it needs a workspace of gemm_workspace_floats(N, K) floats and gemm_workspace_counters(N) counters,
// zeroed once (launches on one stream may share it: each leaves the counters zero).
struct gemm_workspace {
    float *partial;
    unsigned *count;
    int wgmma;   // GEMM_WGMMA_ON (gemm_wgmma_probe's answer on this GPU): GEMM_WGMMA_ROWS rows and more on wgmma
};
// The weight operand: its elements' type, and for FP8 (E4M3 codes, W8A16) its scales - one per output feature (the
// weight is value(code) x col_mult x row_scale[n]), or, with group_k, one per output feature and group of group_k
// inputs (value x col_mult x row_scale[n][group]: the 128x128 blocks and groups published checkpoints carry) - in the
// layout below. The wgmma path takes BF16 alone: FP8 runs the mma.sync kernel at every R (gemm_mma.cu). A type the
// kernel does not know: cudaErrorNotSupported.
//
// E4M3 on the device: each row gemm_e4m3_row_codes(K) codes (K rounded up to 16, zeros past K), each block of 16 in
// fragment order (gemm_e4m3_order_row): position 4t + j holds the block's column (2t, 2t+1, 2t+8, 2t+9)[j], so that
// lane t of an MMA quad reads the 4 codes of its A fragment in a row with one 32-bit load and widens them in
// registers (no pass through shared memory). col_mult, optional: per block, per t, two BF16x2 words, the columns'
// multipliers x 2^120 (2t, 2t+1) and (2t+8, 2t+9) (gemm_e4m3_col_mults: the RMSNorm weight the BF16 path folds into
// its weights, folded here as it widens them); nullptr: 2^120 (the codes' values).
// Groups: the input columns [0, K) fall in groups of group_k (a multiple of 16) whose first boundary is at
// group_k - group_shift (a tensor-parallel rank holding columns from c0 of a checkpoint's groups: shift = c0 mod
// group_k, a multiple of 16), gemm_e4m3_groups of them; row_scale (N, groups).
enum gemm_weight_type : int { GEMM_WEIGHT_BF16 = 0, GEMM_WEIGHT_E4M3 = 1 };   // (int: any value may come, and be refused)
struct gemm_weight {
    const void *data;          // BF16: (N, K) row-major; E4M3: (N, gemm_e4m3_row_codes(K)) in fragment order
    gemm_weight_type type;
    const float *row_scale;    // E4M3: (N) without groups, (N, gemm_e4m3_groups) with; nullptr for BF16
    const uint32_t *col_mult;  // (row_codes / 16, 4, 2) BF16x2 for E4M3, or nullptr
    int group_k;               // E4M3: the inputs one scale covers, or 0 for one scale a row
    int group_shift;           // where the inputs start in their first group (0 <= shift < group_k)
};
static inline gemm_weight gemm_weight_bf16(const bf16 *w) { return gemm_weight{w, GEMM_WEIGHT_BF16, nullptr, nullptr, 0, 0}; }
static inline gemm_weight gemm_weight_e4m3(const uint8_t *codes, const float *row_scale, const uint32_t *col_mult = nullptr,
                                           int group_k = 0, int group_shift = 0) {
    return gemm_weight{codes, GEMM_WEIGHT_E4M3, row_scale, col_mult, group_k, group_shift};
}
// The scale groups a row of K inputs spans (1 without groups).
__host__ __device__ static inline int gemm_e4m3_groups(int K, int group_k, int group_shift) {
    return group_k > 0 ? (group_shift + K + group_k - 1) / group_k : 1;
}
__host__ __device__ static inline int gemm_e4m3_row_codes(int K) { return (K + 15) / 16 * 16; }
// A row's K codes in the device's order (out: gemm_e4m3_row_codes(K) bytes, zeros past K). Host code.
static inline void gemm_e4m3_order_row(const uint8_t *codes, int K, uint8_t *out) {
    for (int b = 0; b < gemm_e4m3_row_codes(K); b += 16)
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < 4; j++) {
                int k = b + (j < 2 ? 2 * t + j : 2 * t + 8 + j - 2);
                out[b + 4 * t + j] = k < K ? codes[k] : 0;
            }
}
// The column multipliers of col_scale (K floats) as the kernel reads them (out: gemm_e4m3_row_codes(K) / 2 words),
// each BF16(col_scale x 2^(120 - E)) with E >= 0 the least that keeps them finite (|col_scale| < 2^(7 + E)); returns E:
// the rows' scales must carry 2^E. Columns past K get 0. Host code.
static inline int gemm_e4m3_col_mults(const float *col_scale, int K, uint32_t *out) {
    float most = 0;
    for (int k = 0; k < K; k++) most = fmaxf(most, fabsf(col_scale[k]));
    int E = 0;
    while (most >= ldexpf(1.0f, 7 + E)) E++;
    auto bits = [&](int k) -> uint32_t {
        if (k >= K) return 0;
        float f = ldexpf(col_scale[k], 120 - E);
        uint32_t u;
        memcpy(&u, &f, 4);
        return (u + 0x7fffu + ((u >> 16) & 1)) >> 16;   // to BF16, to nearest even
    };
    for (int b = 0; b < gemm_e4m3_row_codes(K); b += 16)
        for (int t = 0; t < 4; t++) {
            out[b / 2 + 2 * t] = bits(b + 2 * t) | bits(b + 2 * t + 1) << 16;
            out[b / 2 + 2 * t + 1] = bits(b + 2 * t + 8) | bits(b + 2 * t + 9) << 16;
        }
    return E;
}
cudaError_t launch_gemm_mma(const bf16 *X, gemm_weight W, int R, int N, int K, gemm_out out, gemm_workspace ws, cudaStream_t s);
// The same kernel with K cut into `segments` given by the caller: bench's yardstick of what batch invariance costs
// (segments chosen by R, as a library would, change a row's bits with the batch). The forward never calls it.
cudaError_t launch_gemm_mma_segments(const bf16 *X, gemm_weight W, int R, int N, int K, int segments, gemm_out out,
                                     gemm_workspace ws, cudaStream_t s);

// The prefill GEMM on sm_90a (gemm_wgmma.cu): warp-specialised, TMA into a ring of 128-byte-swizzled stages, wgmma,
// a CTA per 128 rows x `tile` outputs (128, or 64; 0: 64 where 128 would leave over half the SMs idle); K cut into
// `segments` (the forward: gemm_k_segments(N, K)) summed by gemm_mma.cu's rule. Needs K % 8 == 0 and 16-byte aligned
// X and W (gemm_wgmma_fits); cudaErrorInvalidValue otherwise. launch_gemm_mma runs it (tile 0) for GEMM_WGMMA_ROWS
// rows and more when the workspace says GEMM_WGMMA_ON.
bool gemm_wgmma_fits(const bf16 *X, gemm_weight W, int K);
cudaError_t launch_gemm_wgmma(const bf16 *X, gemm_weight W, int R, int N, int K, int segments, gemm_out out, int tile,
                              cudaStream_t s);
// Whether the forward may run it on the current GPU: an sm_90 GPU, a binary with sm_90a code, and the same product
// through mma.sync and wgmma bit for bit (nothing documents that the two families sum a k-step alike; batch
// invariance needs it). *answer is one of these; cudaSuccess unless the GPU failed.
enum { GEMM_WGMMA_ON = 1, GEMM_WGMMA_NOT_SM90 = 0, GEMM_WGMMA_NOT_BUILT = -1, GEMM_WGMMA_BITS_DIFFER = -2,
       GEMM_WGMMA_REFUSED = -3, GEMM_WGMMA_OFF = -4 };
cudaError_t gemm_wgmma_probe(int *answer, cudaStream_t s);
const char *gemm_wgmma_probe_name(int answer);

// Per row: q/k/v bias, q/k RMSNorm per head, RoPE at row_pos[r], then k and v written into the row's KV slot
// (the page table row_kv[r], kv_pages.h; position row_pos[r]) as BF16 (qkv_rope.cu).
cudaError_t launch_qkv_rope(float *q, float *k, const float *v, const bf16 *bq, const bf16 *bk, const bf16 *bv,
                            const bf16 *q_norm, const bf16 *k_norm, const float *inv_freq, const int *row_pos,
                            bf16 *const *const *row_kv, int rows, int n_heads, int n_kv_heads, int head_dim, float eps,
                            cudaStream_t s);

// A decode step's QKV projection as the GEMM wrote it, and what makes attention's inputs of it (head_transform.h).
struct qkv_raw {
    const float *k, *v;                           // (rows, n_kv_heads * head_dim)
    const bf16 *bq, *bk, *bv, *q_norm, *k_norm;   // nullptr where the model has none
    const float *inv_freq;                        // (head_dim / 2)
    float eps;
};

// Causal attention of each row's query over positions 0..row_pos[r] of its KV slot (the page table row_kv[r],
// kv_pages.h), in one kernel (attention.cu): n_splits chunks of `chunk` positions (whole KV pages, at most 256;
// those past a row's length do nothing), each CTA serving the query heads of one GQA group that share its K/V reads;
// the splits' partial (max, sum, output) merged in split order by the last CTA to finish. With raw, q is the projection's raw output and the kernel does launch_qkv_rope's work itself -
// the same bits - appending each row's k and v at row_pos[r]; without, q is final and the KV slot holds the row's
// own position. partial: rows * n_heads * n_splits * (head_dim + 2) floats; count: attention_counters(rows,
// n_heads) counters (shapes.h), zero before the first launch (each launch leaves them zero). The output into out
// (FP32) or out_bf16 (rounded as launch_to_bf16 rounds: the output projection's input), exactly one of them.
cudaError_t launch_attention(const float *q, const qkv_raw *raw, const int *row_pos, bf16 *const *const *row_kv, int rows,
                             int n_heads, int n_kv_heads, int head_dim, int n_splits, int chunk, float *partial,
                             unsigned *count, float *out, bf16 *out_bf16, cudaStream_t s);

// The CTAs launch_attention gives each row's head group from now on (capped by n_splits; 0: two an SM in all, the
// default): the tests' way to have CTAs take several splits. The numbers never depend on it.
void attention_fix_split_ctas(int ctas);

// Causal attention of one sequence's n_rows new queries (positions pos0..) over its KV slot (positions 0..; the page
// table kv, on the device), tiled: a K/V tile in shared memory serves 16 queries (attention_prefill.cu); into out or
// out_bf16, as above.
cudaError_t launch_attention_prefill(const float *q, int n_rows, int pos0, bf16 *const *kv,
                                     int n_heads, int n_kv_heads, int head_dim, float *out, bf16 *out_bf16,
                                     cudaStream_t s);

// Per row: x += delta (when given), the row rounded to BF16 into out_bf16, and its sums of squares into ssq (n,
// row_ssq_blocks(dim)) - what GEMM_ADD's epilogue with ssq leaves, bit for bit (row_stats.cu).
cudaError_t launch_row_stats(float *x, const float *delta, int n, int dim, bf16 *out_bf16, float *ssq, cudaStream_t s);

// dst = BF16(src), elementwise (convert.cu).
cudaError_t launch_to_bf16(const float *src, long n, bf16 *dst, cudaStream_t s);
// out = p[0] + p[1] + ... (in that order), elementwise over n floats; the buffers on the launching device.
#define BUFFER_LIST_MAX 8
struct buffer_list {
    const float *p[BUFFER_LIST_MAX];
    int n;
};
cudaError_t launch_sum_buffers(buffer_list bufs, long n, float *out, cudaStream_t s);

// Sampling (sample.cu), each row by its own request (params: (rows) sample_row_params, kernels/sample_params.h), in
// launches that a tensor-parallel run chains so that only candidates move between GPUs:
// launch_sample_logprobs: for each row with n_top >= 0, per slice of this GPU's vocabulary (logits (rows, n_vocab),
// ids vocab0..; `slices` CTAs a row), a sample_logprob_record at out[slice * rows + r]: its largest logit, the sum
// of e^(l - max) in double, its min(n_top, 20) largest (logit, id) pairs in candidate order
// (larger first, lower id on ties); runs before the edits (log-probabilities are of the model's logits).
// launch_sample_edits: each row's edits (edits[edit0 ..+ n_edits), ids in this GPU's range) applied in place by
// logit_edit_apply; each edited logit's previous value to raw[edit] (edits and raw may be mapped host memory).
// launch_sample_candidates: per row and slice, the candidate record (SAMPLE_CANDIDATE_ROW_BYTES(k_stride) bytes at
// cand + (slice * rows + r) * that): its k best (logit, id) pairs in candidate order, its max, sum_i e^((l_i - max)
// / temp) over the slice, and whether it holds NaN or an infinity. k = sample_candidates_k(temp, top_k) of the row
// (<= k_stride: the largest over the rows), fewer where the slice is shorter; by a radix select, six passes
// over the row whatever k.
// launch_sample_pick: per row, the records of n_slices slices (slice s's at cand + s * slice_stride bytes) merged -
// the k best over all, the denominator over the whole vocabulary - then temperature, top-k, top-p and min-p, and a
// draw with its uniform in [0, 1); greedy when temp <= 0. out (rows, 2): the id and its logit (as a float's bits);
// -1 for a row that is not finite; SAMPLE_NEEDS_HOST for a row whose candidates cannot decide (top-k off or past
// SAMPLE_MAX_K, and the top-p / min-p cut, if any, beyond the candidates): its logits are then sampled on the host
// (sample_rows_host), so every draw follows the same rule.
// launch_sample: candidates and pick on one whole vocabulary (cand: sample_slices(vocab, 1) * rows *
// SAMPLE_CANDIDATE_ROW_BYTES(k_stride) bytes).
#include "kernels/sample_params.h"
#define SAMPLE_NEEDS_HOST (-2)
cudaError_t launch_sample_logprobs(const float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                   int slices, sample_logprob_record *out, cudaStream_t s);
cudaError_t launch_sample_edits(float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                const logit_edit *edits, float *raw, cudaStream_t s);
cudaError_t launch_sample_candidates(const float *logits, int rows, int n_vocab, int vocab0, const sample_row_params *params,
                                     int k_stride, int slices, unsigned char *cand, cudaStream_t s);
cudaError_t launch_sample_pick(const unsigned char *cand, int n_slices, size_t slice_stride, int rows, int k_stride,
                               const sample_row_params *params, int *out, cudaStream_t s);
cudaError_t launch_sample(const float *logits, int rows, int vocab, const sample_row_params *params, int k_stride,
                          unsigned char *cand, int *out, cudaStream_t s);

#endif
