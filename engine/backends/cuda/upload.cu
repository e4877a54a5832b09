// The CUDA backend's weights: each rank's share converted to BF16 and uploaded once, Q/K/V stacked, gate/up
// interleaved, the RMSNorm weights before them folded into their columns. FP8 projections (an FP8 checkpoint's, or
// --weights fp8's) go up as E4M3 codes in the GEMM's fragment order with a float scale a row, the RMSNorm weight
// beside them as column multipliers that the GEMM folds in as it widens the codes (kernels.h).
#include <initializer_list>

#include "engine/backends/cuda/internal.h"
extern "C" {
#include "loader/fp8.h"
#include "loader/quantization.h"
}

namespace reprise_cuda {

// Host rows (rows of row_bytes, packed) to d in runs of `run` rows, run i at row i x `pitch` of d (the gate/up
// interleaving), or all in a row when run is rows.
static void copy_runs(void *d, const void *h, size_t row_bytes, int64_t rows, int64_t run, int64_t pitch) {
    int64_t whole = rows / run, rest = rows % run;
    unsigned char *at = static_cast<unsigned char *>(d);
    const unsigned char *src = static_cast<const unsigned char *>(h);
    if (whole) CUDA_CHECK(cudaMemcpy2D(at, pitch * row_bytes, src, run * row_bytes, run * row_bytes, whole, cudaMemcpyHostToDevice));
    if (rest)
        CUDA_CHECK(cudaMemcpy(at + (size_t)(whole * pitch) * row_bytes, src + (size_t)(whole * run) * row_bytes, rest * row_bytes,
                              cudaMemcpyHostToDevice));
}

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
        int64_t rows = std::min(step, blk.rows - row);
        size_t m = (size_t)(rows * blk.cols);
        f.resize(m), h.resize(m);
        tensor_block_to_f32(t, blk.row0 + row, rows, blk.col0, blk.cols, f.data());
        if (col_scale)
            for (size_t i = 0; i < m; i++) f[i] *= col_scale[i % (size_t)blk.cols];
        for (size_t i = 0; i < m; i++) h[i] = __float2bfloat16(f[i]);
        copy_runs(d + (size_t)(row / run * pitch * blk.cols), h.data(), row_bytes, rows, run, pitch);
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

// --- FP8 ---

// Whether a GEMM of these tensors runs in FP8: --weights fp8, or any of them stored in FP8 (a projection the
// checkpoint left in 16 bits that shares a GEMM with FP8 ones is quantized with them, a scale a row).
static bool group_fp8(const rank_state *r, const st_archive *a, int l, std::initializer_list<layer_tensor> ws) {
    if (r->plan.shape.weights == WEIGHTS_FP8) return true;
    for (layer_tensor w : ws)
        if (weights_layer(a, l, w)->dtype == ST_F8_E4M3) return true;
    return false;
}

// The input columns one FP8 scale covers in this model's GEMMs: the checkpoint's block_cols, or 0 for one a row
// (per tensor or per output channel, and --weights fp8).
static int fp8_group_k(const model_config *c) { return c->quant.method != QUANT_NONE ? c->quant.block_cols : 0; }

// A projection's block as E4M3 codes into codes (device, rows of gemm_e4m3_row_codes(cols) in the GEMM's fragment
// order, in runs as upload_to) and its rows' scales times scale_mult into scales (device, the same rows, each
// quant_row_groups scales: the groups of the block's columns): the checkpoint's codes and scales (a rank takes the
// scales of the groups its columns fall in), or quantized here as the CPU quantizes at load, each row's scale over the
// whole row (a rank holding some of its columns quantizes them as the CPU does the row; with groups, the row's scale
// in each). -1 with err for a weight that is not finite.
static int upload_fp8_to(rank_state *r, const model_config *c, const st_archive *a, uint8_t *codes, float *scales,
                         const st_tensor *t, const tp_block &blk, int64_t run, int64_t pitch, float scale_mult, rp_err *err) {
    int64_t K = t->shape[1];
    if (run <= 0) run = pitch = std::max<int64_t>(1, blk.rows);
    int G = quant_row_groups(&c->quant, blk.col0, blk.cols), g0 = fp8_group_k(c) ? (int)(blk.col0 / fp8_group_k(c)) : 0;
    int stored_groups = (int)((K + quant_group_cols(&c->quant, (int)K) - 1) / quant_group_cols(&c->quant, (int)K));
    std::vector<float> stored_scale;
    if (t->dtype == ST_F8_E4M3) {   // the checkpoint's: (rows, stored_groups)
        const st_tensor *st = quant_scales_check(&c->quant, a, t, err);
        if (!st) return -1;
        stored_scale.resize((size_t)t->shape[0] * stored_groups);
        quant_scales_expand(&c->quant, st, (int)t->shape[0], (int)K, stored_scale.data());
    }
    int64_t step = std::max<int64_t>(1, ((int64_t)16 << 20) / std::max<int64_t>(1, blk.cols));
    step = std::max<int64_t>(run, step / run * run);   // whole runs a piece
    size_t row_codes = (size_t)gemm_e4m3_row_codes((int)blk.cols);
    std::vector<uint8_t> hc, in((size_t)blk.cols);
    std::vector<float> hs, row((size_t)K);
    for (int64_t row0 = 0; row0 < blk.rows; row0 += step) {
        int64_t rows = std::min(step, blk.rows - row0);
        hc.resize((size_t)rows * row_codes), hs.resize((size_t)rows * G);
        for (int64_t i = 0; i < rows; i++) {
            int64_t src = blk.row0 + row0 + i;
            float *h = &hs[(size_t)i * G];
            if (t->dtype == ST_F8_E4M3) {
                memcpy(in.data(), static_cast<const uint8_t *>(t->data) + (size_t)(src * K + blk.col0), (size_t)blk.cols);
                for (int g = 0; g < G; g++) h[g] = stored_scale[(size_t)src * stored_groups + g0 + g];
            } else {
                tensor_block_to_f32(t, src, 1, 0, K, row.data());
                if (fp8_row_scale(row.data(), (int)K, &h[0], err)) return rp_wrap(err, "%s: row %lld", t->name, (long long)src);
                fp8_encode(row.data() + blk.col0, (int)blk.cols, h[0], in.data());
                for (int g = 1; g < G; g++) h[g] = h[0];
            }
            gemm_e4m3_order_row(in.data(), (int)blk.cols, hc.data() + (size_t)i * row_codes);
            for (int g = 0; g < G; g++) h[g] *= scale_mult;
        }
        int64_t at = row0 / run * pitch;
        copy_runs(codes + (size_t)at * row_codes, hc.data(), row_codes, rows, run, pitch);
        copy_runs(scales + (size_t)at * G, hs.data(), G * sizeof(float), rows, run, pitch);
    }
    r->weight_bytes += (size_t)blk.rows * (row_codes + G * sizeof(float));
    return 0;
}

// An FP8 GEMM's operand: `rows` rows of codes (zeros) and scales (zeros) allocated for this rank, for the columns
// of blk (their scale groups: a scale a row, or one per row and group the columns fall in).
static gemm_weight alloc_fp8(rank_state *r, const model_config *c, size_t rows, const tp_block &blk, const uint32_t *col_mult) {
    size_t row_codes = (size_t)gemm_e4m3_row_codes((int)blk.cols), groups = (size_t)quant_row_groups(&c->quant, blk.col0, blk.cols);
    uint8_t *codes = dev_alloc<uint8_t>(rows * row_codes);
    float *scales = dev_alloc<float>(rows * groups);
    CUDA_CHECK(cudaMemset(codes, 0, rows * row_codes));
    CUDA_CHECK(cudaMemset(scales, 0, rows * groups * sizeof(float)));
    r->weight_allocs.push_back(codes), r->weight_allocs.push_back(scales);
    int gk = fp8_group_k(c);
    return gemm_weight_e4m3(codes, scales, col_mult, gk, gk ? (int)(blk.col0 % gk) : 0);
}

// A norm's weight as the column multipliers of the FP8 GEMM after it (kernels.h, gemm_e4m3_col_mults), on the
// device; *scale_mult: the 2^E its rows' scales must carry.
static const uint32_t *upload_col_mults(rank_state *r, const std::vector<float> &norm, float *scale_mult) {
    std::vector<uint32_t> h((size_t)gemm_e4m3_row_codes((int)norm.size()) / 2);
    *scale_mult = ldexpf(1.0f, gemm_e4m3_col_mults(norm.data(), (int)norm.size(), h.data()));
    uint32_t *d = dev_alloc<uint32_t>(h.size());
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(uint32_t), cudaMemcpyHostToDevice));
    r->weight_allocs.push_back(d);
    r->weight_bytes += h.size() * sizeof(uint32_t);
    return d;
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
    r->proj[l][W_Q] = gemm_weight_bf16(r->layers[l][W_Q]);
}

// The same in FP8: codes stacked, their scales stacked alike, the norm's weight the column scale.
static int upload_qkv_fp8(rank_state *r, const model_config *c, const st_archive *a, int l, rp_err *err) {
    std::initializer_list<layer_tensor> ws = {W_Q, W_K, W_V};
    tp_block blk;
    size_t rows = 0, at = 0;
    for (layer_tensor w : ws) tp_layer_block(c, &r->shard, w, &blk), rows += (size_t)blk.rows;
    float scale_mult;
    gemm_weight g = alloc_fp8(r, c, rows, blk, upload_col_mults(r, norm_weight(r, c, a, l, W_ATTN_NORM), &scale_mult));
    size_t row_codes = (size_t)gemm_e4m3_row_codes((int)blk.cols), groups = (size_t)quant_row_groups(&c->quant, blk.col0, blk.cols);
    for (layer_tensor w : ws) {
        tp_layer_block(c, &r->shard, w, &blk);
        if (upload_fp8_to(r, c, a, (uint8_t *)g.data + at * row_codes, (float *)g.row_scale + at * groups, weights_layer(a, l, w), blk,
                          0, 0, scale_mult, err))
            return -1;
        at += (size_t)blk.rows;
    }
    r->proj[l][W_Q] = g;
    return 0;
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
    r->proj[l][W_GATE] = gemm_weight_bf16(d);
}

// The same in FP8: codes and scales interleaved alike (the zero rows' scales zero), the norm's weight the column scale.
static int upload_gate_up_fp8(rank_state *r, const model_config *c, const st_archive *a, int l, rp_err *err) {
    tp_block blk;
    tp_layer_block(c, &r->shard, W_GATE, &blk);
    size_t rows = (size_t)gemm_swiglu_rows((int)blk.rows);
    float scale_mult;
    gemm_weight g = alloc_fp8(r, c, rows, blk, upload_col_mults(r, norm_weight(r, c, a, l, W_FFN_NORM), &scale_mult));
    uint8_t *codes = (uint8_t *)g.data;
    float *scales = (float *)g.row_scale;
    size_t row_codes = (size_t)gemm_e4m3_row_codes((int)blk.cols), groups = (size_t)quant_row_groups(&c->quant, blk.col0, blk.cols);
    if (upload_fp8_to(r, c, a, codes, scales, weights_layer(a, l, W_GATE), blk, 8, 16, scale_mult, err)) return -1;
    tp_layer_block(c, &r->shard, W_UP, &blk);
    if (upload_fp8_to(r, c, a, codes + 8 * row_codes, scales + 8 * groups, weights_layer(a, l, W_UP), blk, 8, 16, scale_mult, err))
        return -1;
    r->weight_bytes += (rows - 2 * (size_t)blk.rows) * (row_codes + groups * sizeof(float));   // the zero rows
    r->proj[l][W_GATE] = g;
    return 0;
}

// o_proj or down_proj alone, in FP8 or BF16 as stored or asked.
static int upload_single(rank_state *r, const model_config *c, const st_archive *a, int l, layer_tensor w, rp_err *err) {
    tp_block blk;
    tp_layer_block(c, &r->shard, w, &blk);
    if (!group_fp8(r, a, l, {w})) {
        r->layers[l][w] = upload(r, weights_layer(a, l, w), blk);
        r->proj[l][w] = gemm_weight_bf16(r->layers[l][w]);
        return 0;
    }
    gemm_weight g = alloc_fp8(r, c, (size_t)blk.rows, blk, nullptr);
    r->proj[l][w] = g;
    return upload_fp8_to(r, c, a, (uint8_t *)g.data, (float *)g.row_scale, weights_layer(a, l, w), blk, 0, 0, 1.0f, err);
}

// Reports layer l's tensors (l -1: the embeddings, final norm and LM head) to the load's progress: rank 0 speaks for
// every rank, which read slices of the same tensors.
static void report_loaded(backend *base, const st_archive *a, int l) {
    const model_config *c = base->cfg;
    double bytes = 0;
    int n = 0;
    int64_t shape[2];
    if (l < 0)
        for (global_tensor g : {G_EMBED, G_FINAL_NORM, G_LM_HEAD}) {
            const st_tensor *t = g == G_LM_HEAD && c->tied_embeddings ? nullptr : weights_global(c, a, g);
            if (t) bytes += (double)t->nbytes, n++;
        }
    for (int w = 0; l >= 0 && w < W_N_LAYER_TENSORS; w++)
        if (layer_tensor_shape(c, (layer_tensor)w, shape)) {
            const st_tensor *t = weights_layer(a, l, (layer_tensor)w);
            if (t) bytes += (double)t->nbytes, n++;
        }
    load_progress_add(base->progress, bytes, n);
}

int load_weights(backend *base, const st_archive *a, rp_err *err) {
    cuda_backend *b = cb(base);
    const model_config *c = base->cfg;
    if (weights_check(c, a, err)) return -1;
    std::vector<rp_err> errs(b->ranks.size());
    std::vector<int> failed(b->ranks.size(), 0);
    each(b, [&](rank_state *r) {
        size_t me = (size_t)(std::find(b->ranks.begin(), b->ranks.end(), r) - b->ranks.begin());
        tp_block blk;
        tp_global_block(c, &r->shard, G_EMBED, &blk);
        r->embed = upload(r, weights_global(c, a, G_EMBED), blk);   // (and lm_head, when tied, is the same)
        tp_global_block(c, &r->shard, G_FINAL_NORM, &blk);
        r->final_norm = upload(r, weights_global(c, a, G_FINAL_NORM), blk);
        tp_global_block(c, &r->shard, G_LM_HEAD, &blk);
        r->lm_head = c->tied_embeddings ? r->embed : upload(r, weights_global(c, a, G_LM_HEAD), blk);
        if (me == 0) report_loaded(base, a, -1);
        r->layers.assign(c->n_layers, std::vector<bf16 *>(W_N_LAYER_TENSORS, nullptr));
        r->proj.assign(c->n_layers, std::vector<gemm_weight>(W_N_LAYER_TENSORS, gemm_weight_bf16(nullptr)));
        for (int l = 0; l < c->n_layers && !failed[me]; l++) {
            if (group_fp8(r, a, l, {W_Q, W_K, W_V})) failed[me] = upload_qkv_fp8(r, c, a, l, &errs[me]) != 0;
            else upload_qkv(r, c, a, l);
            if (group_fp8(r, a, l, {W_GATE, W_UP})) failed[me] |= upload_gate_up_fp8(r, c, a, l, &errs[me]) != 0;
            else upload_gate_up(r, c, a, l);
            failed[me] |= upload_single(r, c, a, l, W_O, &errs[me]) != 0 || upload_single(r, c, a, l, W_DOWN, &errs[me]) != 0;
            const layer_tensor projections[] = {W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN};
            for (int w = 0; w < W_N_LAYER_TENSORS; w++)
                if (std::find(std::begin(projections), std::end(projections), (layer_tensor)w) == std::end(projections) &&
                    !r->layers[l][w] && tp_layer_block(c, &r->shard, (layer_tensor)w, &blk))
                    r->layers[l][w] = upload(r, weights_layer(a, l, (layer_tensor)w), blk);
            if (me == 0) report_loaded(base, a, l);
        }
    });
    for (size_t i = 0; i < failed.size(); i++)
        if (failed[i]) return *err = errs[i], -1;
    return 0;
}

}   // namespace reprise_cuda
