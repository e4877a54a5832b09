// How a tensor-parallel run splits a model over its ranks: one rule for the memory plan and the upload.
#include "engine/tensor_parallel.h"

#include "loader/quantization.h"

#include "kernels/shapes.h"

int tp_check(const model_config *c, int tp, rp_err *err) {
    if (tp < 1 || tp > TP_MAX_RANKS) return rp_fail(err, "--tp %d: tensor parallelism runs on 1 to %d GPUs", tp, TP_MAX_RANKS);
    if (c->n_kv_heads % tp)
        return rp_fail(err, "--tp %d: the model's %d KV heads do not split evenly over %d GPUs (a GQA group is never "
                            "cut); use a --tp that divides %d", tp, c->n_kv_heads, tp, c->n_kv_heads);
    if (c->hidden_dim < tp || c->vocab_size < tp) return rp_fail(err, "--tp %d: the model is too small to split", tp);
    return 0;
}

void tp_shard_of(const model_config *c, int tp, int rank, tp_shard *s) {
    s->tp = tp, s->rank = rank;
    s->n_kv_heads = c->n_kv_heads / tp, s->kv_head0 = rank * s->n_kv_heads;
    s->n_heads = c->n_heads / tp, s->head0 = rank * s->n_heads;   // KV heads divide the heads: whole groups
    // uneven splits give the first ranks one more row
    s->hidden0 = (int)((int64_t)c->hidden_dim * rank / tp);
    s->n_hidden = (int)((int64_t)c->hidden_dim * (rank + 1) / tp) - s->hidden0;
    s->vocab0 = (int)((int64_t)c->vocab_size * rank / tp);
    s->n_vocab = (int)((int64_t)c->vocab_size * (rank + 1) / tp) - s->vocab0;
}

void tp_gemms_of(const model_config *c, const tp_shard *s, tp_gemm out[TP_GEMMS]) {
    int qd = s->n_heads * c->head_dim, kvd = s->n_kv_heads * c->head_dim;
    out[0] = (tp_gemm){"qkv", qd + 2 * kvd, c->dim};
    out[1] = (tp_gemm){"o", c->dim, qd};
    out[2] = (tp_gemm){"gate|up", gemm_swiglu_rows(s->n_hidden), c->dim};   // interleaved, SwiGLU in the epilogue
    out[3] = (tp_gemm){"down", c->dim, s->n_hidden};
    out[4] = (tp_gemm){"lm_head", s->n_vocab, c->dim};
}

int tp_layer_block(const model_config *c, const tp_shard *s, layer_tensor w, tp_block *b) {
    int64_t shape[2];
    int nd = layer_tensor_shape(c, w, shape);
    if (!nd) return 0;
    b->row0 = 0, b->rows = shape[0], b->col0 = 0, b->cols = nd > 1 ? shape[1] : 1;
    int hd = c->head_dim;
    switch (w) {
    case W_Q: case W_Q_BIAS: b->row0 = (int64_t)s->head0 * hd, b->rows = (int64_t)s->n_heads * hd; break;
    case W_K: case W_V: case W_K_BIAS: case W_V_BIAS: b->row0 = (int64_t)s->kv_head0 * hd, b->rows = (int64_t)s->n_kv_heads * hd; break;
    case W_O: b->col0 = (int64_t)s->head0 * hd, b->cols = (int64_t)s->n_heads * hd; break;
    case W_GATE: case W_UP: b->row0 = s->hidden0, b->rows = s->n_hidden; break;
    case W_DOWN: b->col0 = s->hidden0, b->cols = s->n_hidden; break;
    default: break;   // norms: every rank holds them whole
    }
    return nd;
}

int tp_global_block(const model_config *c, const tp_shard *s, global_tensor g, tp_block *b) {
    int64_t shape[2];
    int nd = global_tensor_shape(c, g, shape);
    if (!nd) return 0;
    b->row0 = 0, b->rows = shape[0], b->col0 = 0, b->cols = nd > 1 ? shape[1] : 1;
    if (g == G_EMBED || g == G_LM_HEAD) b->row0 = s->vocab0, b->rows = s->n_vocab;
    return nd;
}

// The bytes of rank `rank`'s weights: the layers' matrices in BF16, or with fp8 a byte an element (rows padded to 16)
// and a float scale a row and scale group (quant_row_groups of the rank's columns).
static size_t rank_weight_bytes(const model_config *c, int tp, int rank, int fp8) {
    tp_shard s;
    tp_block b;
    tp_shard_of(c, tp, rank, &s);
    size_t n = 0;
    for (int g = 0; g < G_N_GLOBAL_TENSORS; g++)
        if (!(g == G_LM_HEAD && c->tied_embeddings) && tp_global_block(c, &s, (global_tensor)g, &b)) n += 2 * (size_t)(b.rows * b.cols);
    int64_t shape[2], col_pad = fp8 ? 16 : 1;
    for (int w = 0; w < W_N_LAYER_TENSORS; w++)
        if (tp_layer_block(c, &s, (layer_tensor)w, &b)) {
            if (w == W_GATE || w == W_UP) b.rows = gemm_swiglu_rows((int)b.rows) / 2;   // their zero rows (interleaved)
            int matrix = layer_tensor_shape(c, (layer_tensor)w, shape) == 2;
            int64_t cols = (b.cols + col_pad - 1) / col_pad * col_pad;
            size_t row_bytes = fp8 ? (size_t)cols + sizeof(float) * (size_t)quant_row_groups(&c->quant, b.col0, b.cols) : 2 * (size_t)b.cols;
            n += (size_t)c->n_layers * (matrix ? (size_t)b.rows * row_bytes : 2 * (size_t)(b.rows * b.cols));
        }
    return n;
}

size_t tp_rank_weight_bytes(const model_config *c, int tp, int rank) { return rank_weight_bytes(c, tp, rank, 0); }
size_t tp_rank_weight_bytes_fp8(const model_config *c, int tp, int rank) {   // and the two norms as column multipliers
    size_t dim16 = (size_t)(c->dim + 15) / 16 * 16;
    return rank_weight_bytes(c, tp, rank, 1) + (size_t)c->n_layers * 2 * dim16 * 2;
}
size_t tp_max_rank_weight_bytes(const model_config *c, int tp, int fp8) {
    size_t most = 0;
    for (int rank = 0; rank < tp; rank++) {
        size_t n = fp8 ? tp_rank_weight_bytes_fp8(c, tp, rank) : tp_rank_weight_bytes(c, tp, rank);
        most = n > most ? n : most;
    }
    return most;
}
