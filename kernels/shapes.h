// Sizes the kernels fix and their callers must allocate by: plain C, so the engine's memory plan reads them too.
#ifndef REPRISE_KERNEL_SHAPES_H
#define REPRISE_KERNEL_SHAPES_H

#include <stddef.h>

// Sampling (sample.cu): the most candidates a sampled row keeps (a larger top-k is clamped; a nucleus past it is
// drawn on the host), and the bytes of one row's candidate record: a header (max logit, softmax sum, not-finite
// flag, count) and (logit, id) pairs.
#define SAMPLE_MAX_K 1024
#define SAMPLE_CANDIDATE_ROW_BYTES(k) (16 + 8 * (size_t)(k))
// A row's candidates are found by up to SAMPLE_MAX_SLICES CTAs in all, each over a slice of the vocabulary (at least
// 4096 ids): of the tp GPUs' shares, each cut in sample_slices(its vocabulary, tp), the same on every GPU.
#define SAMPLE_MAX_SLICES 8
static inline int sample_slices(int n_vocab, int tp) {
    int most = SAMPLE_MAX_SLICES / (tp > 0 ? tp : 1), s = n_vocab / 4096;
    return s < 1 ? 1 : s > most ? (most > 0 ? most : 1) : s;
}

// The GEMM (gemm_mma.cu): how many segments K's 16-wide steps are cut into, by the weight's shape (N outputs, K
// inputs) alone - it fixes every output's order of summation, whatever the row count. Doubled from 1 while the
// decode grid (a CTA per 64 outputs and segment) has fewer than 2 CTAs for each of an H100's 132 SMs, keeping at
// least 8 steps (128 k) a segment, at most 32 segments.
#define GEMM_SPLIT_ROWS 64   // up to this many rows, the segments run in CTAs of their own (the decode grid)
#define GEMM_SPLIT_ROW_BLOCKS 2   // ...and from 9 rows, in this many row blocks (CTAs) per 64 outputs and segment
#define GEMM_WGMMA_ROWS 128  // from this many rows, the prefill GEMM on wgmma where the GPU allows (gemm_wgmma.cu)
static inline int gemm_k_segments(int N, int K) {
    int blocks = (N + 63) / 64, steps = (K + 15) / 16, S = 1;
    while (blocks * S < 2 * 132 && S < 32 && steps >= 2 * S * 8) S *= 2;
    return S;
}
// The rows of gate and up stacked for the GEMM's SwiGLU epilogue (kernels.h, GEMM_SWIGLU): interleaved by 8 rows,
// each padded to a multiple of 8 with zero rows, so that an output and its pair fall in one thread's accumulators.
static inline int gemm_swiglu_rows(int hidden) { return 16 * ((hidden + 7) / 8); }
// A row's sum of squares (the RMSNorm folded into the gate/up GEMM, row_stats.h): in blocks of 64 elements, each a
// sequential sum, the blocks then added in order; (rows, row_ssq_blocks(dim)) floats hold the blocks' sums.
#define ROW_SSQ_BLOCK 64
static inline int row_ssq_blocks(int dim) { return (dim + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK; }
// The workspace a GEMM of that shape needs, in floats (the segments' partials of up to GEMM_SPLIT_ROWS rows) and in
// counters (one per 64 outputs and row block, zero before the first launch; each launch leaves them zero).
static inline size_t gemm_workspace_floats(int N, int K) {
    int S = gemm_k_segments(N, K);
    return S > 1 ? (size_t)S * GEMM_SPLIT_ROWS * (size_t)N : 0;
}
static inline size_t gemm_workspace_counters(int N) {
    return (size_t)(N + 63) / 64 * GEMM_SPLIT_ROW_BLOCKS;
}

// The CUDA backend's KV slots are pages of KV_PAGE positions (kernels/kv_pages.h), so that a slot grows by pages
// and never moves; the decode attention's 256-position splits are 16 whole pages. Small pages waste little of a short
// sequence's KV (a sweep's prompts), and a page's keys are still KV_PAGE rows of a whole KV width in one piece.
#define KV_PAGE 16
static inline int kv_pages_for(int positions) { return (positions + KV_PAGE - 1) / KV_PAGE; }

// Decode attention (attention.cu): one counter per row and head at most (its CTAs serve a head group each), zero
// before the first launch; each launch leaves them zero.
static inline size_t attention_counters(int rows, int n_heads) { return (size_t)rows * (size_t)n_heads; }

#endif
