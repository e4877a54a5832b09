// The tensors a model of a given config must have: names, shapes, and conversion of their data to float32.
#include "loader/weights.h"

#include <stdio.h>
#include <string.h>

#include "loader/quantization.h"

const char *const layer_tensor_suffix[W_N_LAYER_TENSORS] = {
    [W_ATTN_NORM] = "input_layernorm.weight",  [W_Q] = "self_attn.q_proj.weight",
    [W_K] = "self_attn.k_proj.weight",         [W_V] = "self_attn.v_proj.weight",
    [W_Q_BIAS] = "self_attn.q_proj.bias",      [W_K_BIAS] = "self_attn.k_proj.bias",
    [W_V_BIAS] = "self_attn.v_proj.bias",      [W_Q_NORM] = "self_attn.q_norm.weight",
    [W_K_NORM] = "self_attn.k_norm.weight",    [W_O] = "self_attn.o_proj.weight",
    [W_FFN_NORM] = "post_attention_layernorm.weight", [W_GATE] = "mlp.gate_proj.weight",
    [W_UP] = "mlp.up_proj.weight",             [W_DOWN] = "mlp.down_proj.weight",
};

const char *const global_tensor_name[G_N_GLOBAL_TENSORS] = {
    [G_EMBED] = "model.embed_tokens.weight", [G_FINAL_NORM] = "model.norm.weight", [G_LM_HEAD] = "lm_head.weight"};

int layer_tensor_shape(const model_config *c, layer_tensor w, int64_t s[2]) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (w) {
    case W_ATTN_NORM: case W_FFN_NORM: s[0] = c->dim; return 1;
    case W_Q: s[0] = q; s[1] = c->dim; return 2;
    case W_K: case W_V: s[0] = kv; s[1] = c->dim; return 2;
    case W_Q_BIAS: s[0] = q; return c->qkv_bias ? 1 : 0;
    case W_K_BIAS: case W_V_BIAS: s[0] = kv; return c->qkv_bias ? 1 : 0;
    case W_Q_NORM: case W_K_NORM: s[0] = c->head_dim; return c->qk_norm ? 1 : 0;
    case W_O: s[0] = c->dim; s[1] = q; return 2;
    case W_GATE: case W_UP: s[0] = c->hidden_dim; s[1] = c->dim; return 2;
    case W_DOWN: s[0] = c->dim; s[1] = c->hidden_dim; return 2;
    default: return 0;
    }
}

int global_tensor_shape(const model_config *c, global_tensor g, int64_t s[2]) {
    switch (g) {
    case G_EMBED: s[0] = c->vocab_size; s[1] = c->dim; return 2;
    case G_FINAL_NORM: s[0] = c->dim; return 1;
    case G_LM_HEAD: s[0] = c->vocab_size; s[1] = c->dim; return c->tied_embeddings ? 0 : 2;
    default: return 0;
    }
}

// "d0,d1,..." into buf, cut (never overrun) when it does not fit (the parser allows 8 dimensions up to 2^53: 120 bytes).
static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)shape[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

// q: the config's quantization where the tensor is a projection, whose weights may be FP8 with their scales; else NULL.
static int check_one(const st_archive *a, const char *name, int ndim, const int64_t *shape, const quant_config *q,
                     rp_err *err) {
    const st_tensor *t = st_find(a, name);
    if (!t) return rp_fail(err, "tensor '%s' is missing", name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128], want[128];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return rp_fail(err, "tensor '%s' has shape [%s], config.json implies [%s]", name, got, want);
    }
    if (q && t->dtype == ST_F8_E4M3) {
        if (q->method == QUANT_NONE)
            return rp_fail(err, "tensor '%s' is F8_E4M3 but config.json has no quantization_config (which says where its "
                           "scales are)", name);
        return quant_scales_check(q, a, t, err) ? 0 : -1;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return rp_fail(err, "tensor '%s' has dtype %s (supported: F32, F16, BF16%s)", name, st_dtype_name(t->dtype),
                       q ? "; F8_E4M3 with its scales" : "");
    return 0;
}

int weights_check(const model_config *c, const st_archive *a, rp_err *err) {
    int64_t s[2];
    for (int g = 0; g < G_N_GLOBAL_TENSORS; g++) {
        int nd = global_tensor_shape(c, (global_tensor)g, s);
        if (nd && check_one(a, global_tensor_name[g], nd, s, NULL, err)) return -1;
    }
    char name[160];
    for (int l = 0; l < c->n_layers; l++)
        for (int w = 0; w < W_N_LAYER_TENSORS; w++) {
            int nd = layer_tensor_shape(c, (layer_tensor)w, s);
            snprintf(name, sizeof name, "model.layers.%d.%s", l, layer_tensor_suffix[w]);
            if (nd && check_one(a, name, nd, s, nd == 2 ? &c->quant : NULL, err)) return -1;
        }
    return 0;
}

// Whether the architecture reads the tensor `name` for config c (a projection's scale with it).
static int weights_reads(const model_config *c, const char *name) {
    int64_t s[2];
    char base[256];
    if (quant_companion_of(&c->quant, name, base, sizeof base)) {
        int layer, at = 0;
        if (sscanf(base, "model.layers.%d.%n", &layer, &at) != 1 || !at || layer < 0 || layer >= c->n_layers) return 0;
        for (int w = 0; w < W_N_LAYER_TENSORS; w++)
            if (!strcmp(base + at, layer_tensor_suffix[w])) return layer_tensor_shape(c, (layer_tensor)w, s) == 2;
        return 0;
    }
    for (int g = 0; g < G_N_GLOBAL_TENSORS; g++)
        if (!strcmp(name, global_tensor_name[g])) return global_tensor_shape(c, (global_tensor)g, s) > 0;
    int layer, at = 0;
    if (sscanf(name, "model.layers.%d.%n", &layer, &at) != 1 || !at || layer < 0 || layer >= c->n_layers) return 0;
    for (int w = 0; w < W_N_LAYER_TENSORS; w++)
        if (!strcmp(name + at, layer_tensor_suffix[w])) return layer_tensor_shape(c, (layer_tensor)w, s) > 0;
    return 0;
}

int weights_unused(const model_config *c, const st_archive *a, const st_tensor **out, int cap) {
    int n = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const char *name = a->tensors[i].name;
        size_t len = strlen(name), tail = strlen("rotary_emb.inv_freq");
        if (len >= tail && !strcmp(name + len - tail, "rotary_emb.inv_freq")) continue;   // a buffer HF recomputes
        if (weights_reads(c, name)) continue;
        if (n < cap) out[n] = &a->tensors[i];
        n++;
    }
    return n;
}

int weights_refuse_unused(const model_config *c, const st_archive *a, rp_err *err) {
    for (int i = 0; i < a->n_tensors && c->quant.method == QUANT_NONE; i++)   // the scales are unread for this reason
        if (a->tensors[i].dtype == ST_F8_E4M3)
            return rp_fail(err, "tensor '%s' is F8_E4M3 but config.json has no quantization_config (which says where "
                           "its scales are)", a->tensors[i].name);
    const st_tensor *some[4];
    int n = weights_unused(c, a, some, 4), beyond = 0, top = -1;
    if (!n) return 0;
    for (int i = 0; i < a->n_tensors; i++) {   // layers past num_hidden_layers: the hand-duplicated RYS mistake
        int layer;
        if (sscanf(a->tensors[i].name, "model.layers.%d.", &layer) == 1 && layer >= c->n_layers) {
            beyond++;
            if (layer > top) top = layer;
        }
    }
    char names[640] = "";
    for (int i = 0; i < n && i < 4; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%.120s'", i ? ", " : "", some[i]->name);
    char why[320] = "";
    if (beyond)
        snprintf(why, sizeof why, "; %d of them belong to layers %d-%d, at or beyond num_hidden_layers %d of config.json "
                 "(a checkpoint with layers added by hand whose config.json was not raised to %d?)", beyond, c->n_layers,
                 top, c->n_layers, top + 1);
    return rp_fail(err, "%d tensor(s) in the checkpoint are not read by this %s model: %s%s%s; the model would run "
                   "without them. Fix config.json, or pass --allow-unused-tensors to run anyway",
                   n, arch_name(c->arch), names, n > 4 ? ", ..." : "", why);
}

const st_tensor *weights_layer(const st_archive *a, int layer, layer_tensor w) {
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, layer_tensor_suffix[w]);
    return st_find(a, name);
}

const st_tensor *weights_global(const model_config *c, const st_archive *a, global_tensor g) {
    if (g == G_LM_HEAD && c->tied_embeddings) g = G_EMBED;
    return st_find(a, global_tensor_name[g]);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) u = sign | 0x7f800000u | (man << 13);          // inf / nan
    else if (exp) u = sign | ((exp + 112) << 23) | (man << 13);      // normal
    else if (!man) u = sign;                                         // zero
    else {                                                           // subnormal: normalise
        int e = -1;
        do { e++; man <<= 1; } while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void tensor_block_to_f32(const st_tensor *t, int64_t row0, int64_t rows, int64_t col0, int64_t cols, float *dst) {
    int64_t width = t->ndim > 1 ? st_numel(t) / t->shape[0] : 1;
    size_t es = st_dtype_size(t->dtype);
    // The mapping gives no alignment guarantee for a tensor's data, so elements are read with memcpy.
    for (int64_t r = 0; r < rows; r++) {
        const unsigned char *p = (const unsigned char *)t->data + ((row0 + r) * width + col0) * es;
        float *out = dst + r * cols;
        if (t->dtype == ST_F32) memcpy(out, p, (size_t)cols * 4);
        else
            for (int64_t i = 0; i < cols; i++) {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                out[i] = t->dtype == ST_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
            }
    }
}

void tensor_to_f32(const st_tensor *t, float *dst) {
    int64_t n = st_numel(t), rows = t->ndim > 1 ? t->shape[0] : 1;
    tensor_block_to_f32(t, 0, rows, 0, n / (rows ? rows : 1), dst);
}
