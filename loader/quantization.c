// FP8 checkpoints (quantization.h): quantization_config as the two published layouts declare it, and the scales.
#include "loader/quantization.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loader/weights.h"

static const char *string_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

// A block size: [rows, cols] of positive integers (compressed-tensors also writes "RxC").
static int parse_block(const cJSON *v, int *rows, int *cols) {
    if (cJSON_IsString(v)) return sscanf(v->valuestring, "%dx%d", rows, cols) == 2 && *rows > 0 && *cols > 0 ? 0 : -1;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return -1;
    const cJSON *r = cJSON_GetArrayItem(v, 0), *c = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(c) || r->valuedouble != floor(r->valuedouble) ||
        c->valuedouble != floor(c->valuedouble) || r->valuedouble < 1 || c->valuedouble < 1 || r->valuedouble > 1 << 20 ||
        c->valuedouble > 1 << 20)
        return -1;
    *rows = (int)r->valuedouble, *cols = (int)c->valuedouble;
    return 0;
}

// One config group's weights scheme: 8-bit floats, symmetric, static, a strategy this reads.
static int parse_weights_scheme(const cJSON *w, const char *group, int *rows, int *cols, const char *file, rp_err *err) {
    if (!cJSON_IsObject(w))
        return rp_fail(err, "%s: quantization_config.config_groups.%s has no \"weights\" scheme (reprise reads "
                       "checkpoints whose projections' weights are FP8)", file, group);
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(w, "num_bits");
    const char *type = string_of(w, "type"), *strategy = string_of(w, "strategy");
    if (!cJSON_IsNumber(bits) || bits->valuedouble != 8 || !type || strcmp(type, "float"))
        return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: %g-bit %s weights are not read "
                       "(reprise reads 8-bit float weights, E4M3)", file, group, cJSON_IsNumber(bits) ? bits->valuedouble : 0,
                       type ? type : "(no type)");
    const cJSON *sym = cJSON_GetObjectItemCaseSensitive(w, "symmetric"), *dyn = cJSON_GetObjectItemCaseSensitive(w, "dynamic");
    if (cJSON_IsFalse(sym))
        return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: asymmetric weights (a zero point) are "
                       "not read", file, group);
    if (!is_null(dyn) && !cJSON_IsFalse(dyn))
        return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: dynamic weight scales are not read "
                       "(a checkpoint stores its weights' scales)", file, group);
    if (!strategy) return rp_fail(err, "%s: quantization_config.config_groups.%s.weights has no \"strategy\"", file, group);
    if (!strcmp(strategy, "tensor")) *rows = 0, *cols = 0;
    else if (!strcmp(strategy, "channel")) *rows = 1, *cols = 0;
    else if (!strcmp(strategy, "group")) {
        const cJSON *gs = cJSON_GetObjectItemCaseSensitive(w, "group_size");
        if (!cJSON_IsNumber(gs) || gs->valuedouble != floor(gs->valuedouble) || gs->valuedouble < 1 || gs->valuedouble > 1 << 20)
            return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: strategy group needs a positive "
                           "integer \"group_size\"", file, group);
        *rows = 1, *cols = (int)gs->valuedouble;
    } else if (!strcmp(strategy, "block")) {
        if (parse_block(cJSON_GetObjectItemCaseSensitive(w, "block_structure"), rows, cols))
            return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: strategy block needs "
                           "\"block_structure\" [rows, cols] of positive integers", file, group);
    } else
        return rp_fail(err, "%s: quantization_config.config_groups.%s.weights: strategy '%s' is not read (reprise reads "
                       "tensor, channel, group and block)", file, group, strategy);
    return 0;
}

static int parse_compressed_tensors(const cJSON *qc, quant_config *q, const char *file, rp_err *err) {
    const char *format = string_of(qc, "format");
    if (!format || strcmp(format, "float-quantized"))
        return rp_fail(err, "%s: quantization_config: compressed-tensors format '%s' is not read (reprise reads "
                       "float-quantized: FP8 E4M3 weights with their scales)", file, format ? format : "(none)");
    if (!is_null(cJSON_GetObjectItemCaseSensitive(qc, "sparsity_config")))
        return rp_fail(err, "%s: quantization_config.sparsity_config: sparse (compressed) weights are not read", file);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    if (!cJSON_IsObject(groups) || !groups->child)
        return rp_fail(err, "%s: quantization_config has no \"config_groups\" (the weights' scheme)", file);
    const char *first = NULL;
    for (const cJSON *g = groups->child; g; g = g->next) {
        const char *gf = cJSON_IsObject(g) ? string_of(g, "format") : NULL;
        if (gf && strcmp(gf, "float-quantized"))
            return rp_fail(err, "%s: quantization_config.config_groups.%s: format '%s' is not read (reprise reads "
                           "float-quantized)", file, g->string, gf);
        int rows, cols;
        if (parse_weights_scheme(cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, "weights") : NULL, g->string,
                                 &rows, &cols, file, err))
            return -1;
        if (first && (rows != q->block_rows || cols != q->block_cols))
            return rp_fail(err, "%s: quantization_config.config_groups %s and %s scale weights differently (reprise "
                           "reads one scheme for every FP8 projection)", file, first, g->string);
        first = g->string, q->block_rows = rows, q->block_cols = cols;
    }
    q->method = QUANT_COMPRESSED_TENSORS;
    snprintf(q->scale_name, sizeof q->scale_name, "weight_scale");
    return 0;
}

static int parse_fp8(const cJSON *qc, quant_config *q, const char *file, rp_err *err) {
    const char *fmt = string_of(qc, "fmt");
    if (fmt && strcmp(fmt, "e4m3"))
        return rp_fail(err, "%s: quantization_config.fmt '%s' is not read (reprise reads e4m3)", file, fmt);
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(qc, "weight_block_size");
    q->method = QUANT_FP8;
    if (is_null(block)) {   // one scale a tensor, named weight_scale
        q->block_rows = q->block_cols = 0;
        snprintf(q->scale_name, sizeof q->scale_name, "weight_scale");
    } else {
        if (parse_block(block, &q->block_rows, &q->block_cols))
            return rp_fail(err, "%s: quantization_config.weight_block_size must be [rows, cols] of positive integers", file);
        snprintf(q->scale_name, sizeof q->scale_name, "weight_scale_inv");
    }
    return 0;
}

int quant_config_parse(const cJSON *root, quant_config *q, const char *file, rp_err *err) {
    memset(q, 0, sizeof *q);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (is_null(qc)) return 0;
    if (!cJSON_IsObject(qc)) return rp_fail(err, "%s: \"quantization_config\" must be an object", file);
    const char *method = string_of(qc, "quant_method");
    if (!method) return rp_fail(err, "%s: quantization_config has no \"quant_method\"", file);
    if (!strcmp(method, "compressed-tensors")) return parse_compressed_tensors(qc, q, file, err);
    if (!strcmp(method, "fp8")) return parse_fp8(qc, q, file, err);
    return rp_fail(err, "%s: quantization_config.quant_method '%s' is not read (reprise reads FP8 E4M3 checkpoints: "
                   "compressed-tensors float-quantized, or fp8)", file, method);
}

void quant_describe(const quant_config *q, char *out, size_t cap) {
    const char *method = q->method == QUANT_FP8 ? "fp8" : "compressed-tensors";
    if (q->method == QUANT_NONE) snprintf(out, cap, "none");
    else if (!q->block_rows && !q->block_cols) snprintf(out, cap, "%s, a scale per tensor", method);
    else if (q->block_rows == 1 && !q->block_cols) snprintf(out, cap, "%s, a scale per output channel", method);
    else if (q->block_rows == 1) snprintf(out, cap, "%s, a scale per group of %d inputs", method, q->block_cols);
    else snprintf(out, cap, "%s, a scale per %dx%d block", method, q->block_rows, q->block_cols);
}

void quant_scale_name(const quant_config *q, const char *weight_name, char *out, size_t cap) {
    size_t n = strlen(weight_name), w = strlen("weight");
    if (n >= w && !strcmp(weight_name + n - w, "weight")) n -= w;
    snprintf(out, cap, "%.*s%s", (int)n, weight_name, q->scale_name);
}

int quant_group_cols(const quant_config *q, int k) { return q->block_cols && q->block_cols < k ? q->block_cols : k; }

int quant_row_groups(const quant_config *q, int64_t col0, int64_t cols) {
    int64_t bc = q->method != QUANT_NONE ? q->block_cols : 0;
    return bc ? (int)((col0 % bc + cols + bc - 1) / bc) : 1;
}

// The scale grid's rows and columns for a (d, k) weight.
static void grid(const quant_config *q, int64_t d, int64_t k, int64_t *rows, int64_t *cols) {
    *rows = q->block_rows ? (d + q->block_rows - 1) / q->block_rows : 1;
    *cols = q->block_cols ? (k + q->block_cols - 1) / q->block_cols : 1;
}

const st_tensor *quant_scales_check(const quant_config *q, const st_archive *a, const st_tensor *w, rp_err *err) {
    char name[256];
    quant_scale_name(q, w->name, name, sizeof name);
    const st_tensor *s = st_find(a, name);
    char layout[96];
    quant_describe(q, layout, sizeof layout);
    if (!s) return rp_fail(err, "tensor '%s' is FP8 but its scale '%s' is missing (%s)", w->name, name, layout), NULL;
    int64_t rows, cols;
    grid(q, w->shape[0], w->shape[1], &rows, &cols);
    int ok = (s->ndim == 2 && s->shape[0] == rows && s->shape[1] == cols) || (s->ndim == 1 && cols == 1 && s->shape[0] == rows) ||
             (s->ndim == 0 && rows == 1 && cols == 1);
    if (!ok) {
        char got[96] = "";
        for (int i = 0; i < s->ndim; i++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)s->shape[i]);
        return rp_fail(err, "scale '%s' has shape [%s]; %s and the weight's [%lld, %lld] imply [%lld, %lld]", name, got,
                       layout, (long long)w->shape[0], (long long)w->shape[1], (long long)rows, (long long)cols), NULL;
    }
    if (s->dtype != ST_F32 && s->dtype != ST_BF16 && s->dtype != ST_F16)
        return rp_fail(err, "scale '%s' has dtype %s (supported: F32, BF16, F16)", name, st_dtype_name(s->dtype)), NULL;
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++) {
        float v;
        tensor_block_to_f32(s, i / cols, 1, i % cols, 1, &v);
        if (!(v > 0.0f) || !isfinite(v))
            return rp_fail(err, "scale '%s': element [%lld, %lld] is %g (a scale must be finite and positive)", name,
                           (long long)(i / cols), (long long)(i % cols), (double)v), NULL;
    }
    return s;
}

void quant_scales_expand(const quant_config *q, const st_tensor *scale, int d, int k, float *out) {
    int64_t rows, cols;
    grid(q, d, k, &rows, &cols);
    int groups = (k + quant_group_cols(q, k) - 1) / quant_group_cols(q, k);
    for (int j = 0; j < d; j++) {
        int64_t r = q->block_rows ? j / q->block_rows : 0;
        tensor_block_to_f32(scale, r, 1, 0, cols, out + (size_t)j * groups);   // cols == groups: one grid row
    }
}

int quant_companion_of(const quant_config *q, const char *name, char *base, size_t cap) {
    if (q->method == QUANT_NONE) return 0;
    const char *tails[2] = {q->scale_name, "input_scale"};
    size_t n = strlen(name);
    for (int i = 0; i < 2; i++) {
        size_t t = strlen(tails[i]);
        if (n > t && !strcmp(name + n - t, tails[i]) && name[n - t - 1] == '.') {
            snprintf(base, cap, "%.*sweight", (int)(n - t), name);
            return 1;
        }
    }
    return 0;
}
