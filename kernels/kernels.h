// The CUDA kernels' host-side launchers, one per kernel file; the CUDA backend calls only these.
#ifndef REPRISE_KERNELS_H
#define REPRISE_KERNELS_H

#include "kernels/cuda_compat.h"

typedef __nv_bfloat16 bf16;

// Rows of x (n, dim) = the embedding rows of tokens (embed.cu).
cudaError_t launch_embed(const bf16 *table, const int *tokens, int n, int dim, float *x, cudaStream_t s);

// x += delta (when delta is not NULL), then out = x / rms(x) * w, per row (rmsnorm.cu).
cudaError_t launch_rmsnorm(float *x, const float *delta, const bf16 *w, int n, int dim, float eps, float *out, cudaStream_t s);


// out (R, N) = X (R, K) . W^T, X and W in BF16, FP32 accumulation on tensor cores (WMMA), any R, N, K; every
// output element is computed the same way whatever R: batch-invariant (gemm_bf16.cu).
cudaError_t launch_gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K, float *out, cudaStream_t s);

// Per row: q/k/v bias, q/k RMSNorm per head, RoPE at row_pos[r], then k and v written into the row's KV slot
// (row_k[r], row_v[r], position row_pos[r]) as BF16 (qkv_rope.cu).
cudaError_t launch_qkv_rope(float *q, float *k, const float *v, const bf16 *bq, const bf16 *bk, const bf16 *bv,
                            const bf16 *q_norm, const bf16 *k_norm, const float *inv_freq, const int *row_pos,
                            bf16 *const *row_k, bf16 *const *row_v, int rows, int n_heads, int n_kv_heads, int head_dim,
                            float eps, cudaStream_t s);

// Causal attention of each row's query over positions 0..row_pos[r] of its KV slot, split over n_splits chunks
// whose partial (max, sum, output) are merged (attention.cu). partial: rows * n_heads * n_splits * (head_dim + 2).
cudaError_t launch_attention(const float *q, const int *row_pos, bf16 *const *row_k, bf16 *const *row_v, int rows,
                             int n_heads, int n_kv_heads, int head_dim, int n_splits, int chunk, float *partial,
                             float *out, cudaStream_t s);

// Causal attention of one sequence's n_rows new queries (positions pos0..) over its KV slot (positions 0..),
// tiled: a K/V tile in shared memory serves 16 queries (attention_prefill.cu).
cudaError_t launch_attention_prefill(const float *q, int n_rows, int pos0, const bf16 *k_slot, const bf16 *v_slot,
                                     int n_heads, int n_kv_heads, int head_dim, float *out, cudaStream_t s);

// gate = silu(gate) * up, elementwise (swiglu.cu).
cudaError_t launch_swiglu(float *gate, const float *up, long n, cudaStream_t s);

// dst = BF16(src), and x += d, elementwise (convert.cu).
cudaError_t launch_to_bf16(const float *src, long n, bf16 *dst, cudaStream_t s);
cudaError_t launch_add(float *x, const float *d, long n, cudaStream_t s);

// Greedy ids of each row of logits (rows, vocab); -1 for a row holding NaN or an infinity (sample.cu).
cudaError_t launch_argmax(const float *logits, int rows, int vocab, int *out, cudaStream_t s);
// One id per row: temperature, then top-k, top-p, min-p over at most SAMPLE_MAX_K candidates, drawn with
// uniform[r] in [0, 1); temp <= 0 is greedy; -1 for a row that is not finite. scratch: rows * vocab bytes (sample.cu).
#define SAMPLE_MAX_K 1024
cudaError_t launch_sample(const float *logits, int rows, int vocab, float temp, int top_k, float top_p, float min_p,
                          const float *uniform, unsigned char *scratch, int *out, cudaStream_t s);

#endif
