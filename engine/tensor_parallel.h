// How a tensor-parallel run splits a model over tp GPUs (ranks), Megatron-style: Q/K/V by whole KV-head groups and
// gate/up by rows (column-parallel), O and down by columns (row-parallel, their outputs summed by an all-reduce),
// embedding and LM head by vocabulary rows, norms on every rank. One place for the rule, used by the memory plan
// and by the CUDA backend's upload.
#ifndef REPRISE_TENSOR_PARALLEL_H
#define REPRISE_TENSOR_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "loader/config.h"
#include "loader/error.h"
#include "loader/weights.h"

#define TP_MAX_RANKS 8

typedef struct {
    int tp, rank;
    int head0, n_heads;         // query heads [head0, head0 + n_heads)
    int kv_head0, n_kv_heads;   // KV heads: the rank's query heads' whole GQA groups
    int hidden0, n_hidden;      // MLP intermediate rows
    int vocab0, n_vocab;        // embedding and LM head rows
} tp_shard;

// A block of a 2-D tensor (rows, cols), or of a 1-D tensor (cols = 1): what one rank holds of it.
typedef struct {
    int64_t row0, rows, col0, cols;
} tp_block;

// Refuses a tp the model cannot be split by: tp outside 1..TP_MAX_RANKS, or not dividing the KV heads.
int tp_check(const model_config *c, int tp, rp_err *err);
void tp_shard_of(const model_config *c, int tp, int rank, tp_shard *s);
// The block of a layer tensor or a global tensor that rank s holds; 0 when the architecture has no such tensor.
int tp_layer_block(const model_config *c, const tp_shard *s, layer_tensor w, tp_block *b);
int tp_global_block(const model_config *c, const tp_shard *s, global_tensor g, tp_block *b);
// BF16 weight bytes rank `rank` holds (each unique layer once, whatever the schedule; gate and up with the zero
// rows their interleaving pads them by).
size_t tp_rank_weight_bytes(const model_config *c, int tp, int rank);
// The same with the layers' projections in FP8 (--weights fp8, or an FP8 checkpoint): a byte a weight (rows padded to
// 16) and a float scale a row - one a row and group of inputs for a checkpoint whose scales vary along a row
// (quant_row_groups) - and each layer's two RMSNorm weights again as the GEMM's column multipliers (2 bytes a
// column); embeddings, LM head, norms and biases in BF16.
size_t tp_rank_weight_bytes_fp8(const model_config *c, int tp, int rank);
// The most weight bytes any rank holds (rank 0 in BF16; with FP8 scale groups, a rank whose columns start inside a
// group holds one more scale a row).
size_t tp_max_rank_weight_bytes(const model_config *c, int tp, int fp8);

// The GEMMs a rank runs, one per weight as the CUDA backend multiplies by them (Q|K|V stacked, O, gate|up stacked,
// down, the LM head): out (R, n) = X (R, k) . W^T. The memory plan sizes the GEMM's workspace by them; bench_gpu
// times and predicts them.
#define TP_GEMMS 5
typedef struct {
    const char *name;
    int n, k;
} tp_gemm;
void tp_gemms_of(const model_config *c, const tp_shard *s, tp_gemm out[TP_GEMMS]);

#endif
