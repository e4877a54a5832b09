// The CUDA backend's weights: each rank's share converted to BF16 and uploaded once, Q/K/V stacked, gate/up
// interleaved, the RMSNorm weights before them folded into their columns.
#include <initializer_list>

#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

// The block of a tensor this rank holds, converted to BF16 and uploaded to d, in pieces of at most 16M elements so
// the host holds little at once (a 72B model's LM head is 1.2G elements). Its rows go in runs of `run` rows, run i
// at row i x `pitch` of d (the gate/up interleaving), or all in a row when run is 0; with col_scale, each element
// times its column's scale first (in FP32, then rounded).
void upload_to(rank_state *r, bf16 *d, const st_tensor *t, const tp_block &blk, int64_t run = 0, int64_t pitch = 0,
               const float *col_scale = nullptr) {
    size_t n = (size_t)(blk.rows * blk.cols), row_bytes = (size_t)blk.cols * sizeof(bf16);
    if (run <= 0) run = pitch = std::max<int64_t>(1, blk.rows);
    int64_t step = std::max<int64_t>(1, ((int64_t)16 << 20) / std::max<int64_t>(1, blk.cols));
    step = std::max<int64_t>(run, step / run * run);   // whole runs a piece
    std::vector<float> f;
    std::vector<bf16> h;
    for (int64_t row = 0; row < blk.rows; row += step) {
        int64_t rows = std::min(step, blk.rows - row), whole = rows / run, rest = rows % run;
        size_t m = (size_t)(rows * blk.cols);
        f.resize(m), h.resize(m);
        tensor_block_to_f32(t, blk.row0 + row, rows, blk.col0, blk.cols, f.data());
        if (col_scale)
            for (size_t i = 0; i < m; i++) f[i] *= col_scale[i % (size_t)blk.cols];
        for (size_t i = 0; i < m; i++) h[i] = __float2bfloat16(f[i]);
        bf16 *at = d + (size_t)(row / run * pitch * blk.cols);
        if (whole)
            CUDA_CHECK(cudaMemcpy2D(at, pitch * row_bytes, h.data(), run * row_bytes, run * row_bytes, whole, cudaMemcpyHostToDevice));
        if (rest)
            CUDA_CHECK(cudaMemcpy(at + (size_t)(whole * pitch * blk.cols), h.data() + (size_t)(whole * run * blk.cols), rest * row_bytes,
                                  cudaMemcpyHostToDevice));
    }
    r->weight_bytes += n * sizeof(bf16);
}

bf16 *upload(rank_state *r, const st_tensor *t, const tp_block &blk) {
    bf16 *d = dev_alloc<bf16>((size_t)(blk.rows * blk.cols));
    r->weight_allocs.push_back(d);
    upload_to(r, d, t, blk);
    return d;
}

// A norm's weight of layer l (every rank holds it whole), as floats: what the GEMM after it folds into its columns.
std::vector<float> norm_weight(rank_state *r, const model_config *c, const st_archive *a, int l, layer_tensor w) {
    tp_block blk;
    tp_layer_block(c, &r->shard, w, &blk);
    std::vector<float> norm((size_t)(blk.rows * blk.cols));
    tensor_block_to_f32(weights_layer(a, l, w), blk.row0, blk.rows, blk.col0, blk.cols, norm.data());
    return norm;
}

// Q, K and V uploaded as one matrix, their rows stacked in order, so that one GEMM computes them all; each tensor's
// pointer is its first row. The RMSNorm before attention is folded in: its weight multiplies their columns here,
// each row's 1 / rms the products in the GEMM's epilogue.
void upload_qkv(rank_state *r, const model_config *c, const st_archive *a, int l) {
    std::initializer_list<layer_tensor> ws = {W_Q, W_K, W_V};
    std::vector<float> norm = norm_weight(r, c, a, l, W_ATTN_NORM);
    tp_block blk;
    size_t rows = 0;
    for (layer_tensor w : ws) tp_layer_block(c, &r->shard, w, &blk), rows += (size_t)blk.rows;
    bf16 *d = dev_alloc<bf16>(rows * (size_t)blk.cols);
    r->weight_allocs.push_back(d);
    for (layer_tensor w : ws) {
        tp_layer_block(c, &r->shard, w, &blk);
        r->layers[l][w] = d;
        upload_to(r, d, weights_layer(a, l, w), blk, 0, 0, norm.data());
        d += (size_t)(blk.rows * blk.cols);
    }
}

// Gate and up as the GEMM's SwiGLU epilogue reads them (kernels.h, GEMM_SWIGLU): interleaved by 8 rows, zero rows
// past the MLP's width; gate's pointer is the matrix, up's its ninth row. The RMSNorm before the MLP is folded in:
// its weight multiplies their columns here, each row's 1 / rms the products in the epilogue.
void upload_gate_up(rank_state *r, const model_config *c, const st_archive *a, int l) {
    std::vector<float> norm = norm_weight(r, c, a, l, W_FFN_NORM);
    tp_block blk;
    tp_layer_block(c, &r->shard, W_GATE, &blk);
    size_t rows = (size_t)gemm_swiglu_rows((int)blk.rows);
    bf16 *d = dev_alloc<bf16>(rows * (size_t)blk.cols);
    r->weight_allocs.push_back(d);
    CUDA_CHECK(cudaMemset(d, 0, rows * (size_t)blk.cols * sizeof(bf16)));
    upload_to(r, d, weights_layer(a, l, W_GATE), blk, 8, 16, norm.data());
    tp_layer_block(c, &r->shard, W_UP, &blk);
    upload_to(r, d + 8 * (size_t)blk.cols, weights_layer(a, l, W_UP), blk, 8, 16, norm.data());
    r->layers[l][W_GATE] = d, r->layers[l][W_UP] = d + 8 * (size_t)blk.cols;
    r->weight_bytes += (rows - 2 * (size_t)blk.rows) * (size_t)blk.cols * sizeof(bf16);   // the zero rows
}

int load_weights(backend *base, const st_archive *a, rp_err *err) {
    cuda_backend *b = cb(base);
    const model_config *c = base->cfg;
    if (weights_check(c, a, err)) return -1;
    each(b, [&](rank_state *r) {
        tp_block blk;
        tp_global_block(c, &r->shard, G_EMBED, &blk);
        r->embed = upload(r, weights_global(c, a, G_EMBED), blk);   // (and lm_head, when tied, is the same)
        tp_global_block(c, &r->shard, G_FINAL_NORM, &blk);
        r->final_norm = upload(r, weights_global(c, a, G_FINAL_NORM), blk);
        tp_global_block(c, &r->shard, G_LM_HEAD, &blk);
        r->lm_head = c->tied_embeddings ? r->embed : upload(r, weights_global(c, a, G_LM_HEAD), blk);
        r->layers.assign(c->n_layers, std::vector<bf16 *>(W_N_LAYER_TENSORS, nullptr));
        for (int l = 0; l < c->n_layers; l++) {
            upload_qkv(r, c, a, l);
            upload_gate_up(r, c, a, l);
            for (int w = 0; w < W_N_LAYER_TENSORS; w++)
                if (!r->layers[l][w] && tp_layer_block(c, &r->shard, (layer_tensor)w, &blk))
                    r->layers[l][w] = upload(r, weights_layer(a, l, (layer_tensor)w), blk);
        }
    });
    return 0;
}

}   // namespace reprise_cuda
