// Writing the physically duplicated checkpoint of a schedule, for engines without layer schedules.
#include "tools/export.h"
#include "loader/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader/config.h"
#include "loader/fp8.h"
#include "loader/json_file.h"
#include "loader/quantization.h"
#include "loader/safetensors.h"
#include "loader/weights.h"

// "model.layers.<n>.<rest>": returns n and points *rest at the suffix; -1 for any other name.
static int layer_of(const char *name, const char **rest) {
    const char *pre = "model.layers.";
    size_t pl = strlen(pre);
    if (strncmp(name, pre, pl) != 0) return -1;
    char *end;
    long n = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '.') return -1;
    *rest = end + 1;
    return (int)n;
}

// An FP8 export's projection, quantized a row at a time as --weights fp8 quantizes at load (fp8_quantize_row): its
// codes (d, k), or its scales (d, 1) float32. Made when the writer reaches the tensor, so only one is in memory.
static int quantize_rows(const st_tensor *t, uint8_t *codes, float *scales, rp_err *err) {
    int d = (int)t->shape[0], k = (int)t->shape[1], rc = 0;
    float *row = rp_malloc(sizeof(float) * (size_t)k);
    uint8_t *scratch = codes ? NULL : rp_malloc((size_t)k);
    for (int j = 0; j < d && !rc; j++) {
        float scale;
        tensor_block_to_f32(t, j, 1, 0, k, row);
        if (fp8_quantize_row(row, k, codes ? codes + (size_t)j * k : scratch, &scale, err)) rc = rp_wrap(err, "row %d", j);
        else if (scales) scales[j] = scale;
    }
    free(row);
    free(scratch);
    return rc;
}
static int fill_codes(const void *t, void *dst, rp_err *err) { return quantize_rows(t, dst, NULL, err); }
static int fill_scales(const void *t, void *dst, rp_err *err) { return quantize_rows(t, NULL, dst, err); }

// Whether `rest` (a name after "model.layers.N.") is one of the layer's projections.
static int is_projection(const model_config *c, const char *rest) {
    int64_t shape[2];
    for (int w = 0; w < W_N_LAYER_TENSORS; w++)
        if (!strcmp(rest, layer_tensor_suffix[w])) return layer_tensor_shape(c, (layer_tensor)w, shape) == 2;
    return 0;
}

static int write_tensors(const st_archive *a, const model_config *c, const schedule *s, int fp8, const char *path,
                         rp_err *err) {
    int cap = a->n_tensors * 2 + 16, n = 0;
    st_out_tensor *out = rp_malloc(sizeof *out * cap);
    char **names = rp_malloc(sizeof *names * cap);
    // non-layer tensors as they are; then each visit's copy of its layer, renamed to the visit's index
    for (int i = 0; i < a->n_tensors; i++) {
        const char *rest = NULL;
        if (layer_of(a->tensors[i].name, &rest) >= 0) continue;
        const st_tensor *t = &a->tensors[i];
        names[n] = rp_strdup(t->name);
        out[n] = (st_out_tensor){.name = names[n], .dtype = t->dtype, .ndim = t->ndim, .data = t->data, .nbytes = t->nbytes};
        memcpy(out[n].shape, t->shape, sizeof t->shape);
        n++;
    }
    for (int v = 0; v < s->n_visits; v++)
        for (int i = 0; i < a->n_tensors; i++) {
            const char *rest = NULL;
            if (layer_of(a->tensors[i].name, &rest) != s->layer[v]) continue;
            const st_tensor *t = &a->tensors[i];
            if (n + 2 > cap) {
                cap *= 2;
                out = rp_realloc(out, sizeof *out * cap);
                names = rp_realloc(names, sizeof *names * cap);
            }
            names[n] = rp_malloc(strlen(rest) + 32);
            sprintf(names[n], "model.layers.%d.%s", v, rest);
            out[n] = (st_out_tensor){.name = names[n], .dtype = t->dtype, .ndim = t->ndim, .data = t->data, .nbytes = t->nbytes};
            memcpy(out[n].shape, t->shape, sizeof t->shape);
            if (fp8 && is_projection(c, rest)) {   // codes now, and the scale beside them (compressed-tensors)
                out[n].dtype = ST_F8_E4M3, out[n].data = NULL, out[n].nbytes = (size_t)st_numel(t);
                out[n].fill = fill_codes, out[n].source = t;
                n++;
                names[n] = rp_malloc(strlen(rest) + 40);
                sprintf(names[n], "model.layers.%d.%.*sweight_scale", v, (int)(strlen(rest) - strlen("weight")), rest);
                out[n] = (st_out_tensor){.name = names[n], .dtype = ST_F32, .ndim = 2, .shape = {t->shape[0], 1},
                                         .nbytes = sizeof(float) * (size_t)t->shape[0], .fill = fill_scales, .source = t};
            }
            n++;
        }
    int rc = st_write_file(path, out, n, err);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(out);
    return rc;
}

// The quantization_config of an FP8 export: compressed-tensors float-quantized, a scale per output channel, weights
// only (the activations stay in 16 bits: W8A16).
static cJSON *fp8_quantization_config(void) {
    cJSON *q = cJSON_CreateObject(), *groups = cJSON_AddObjectToObject(q, "config_groups");
    cJSON *g = cJSON_AddObjectToObject(groups, "group_0"), *targets = cJSON_AddArrayToObject(g, "targets");
    cJSON_AddItemToArray(targets, cJSON_CreateString("Linear"));
    cJSON *w = cJSON_AddObjectToObject(g, "weights");
    cJSON_AddNumberToObject(w, "num_bits", 8);
    cJSON_AddStringToObject(w, "type", "float");
    cJSON_AddBoolToObject(w, "symmetric", 1);
    cJSON_AddBoolToObject(w, "dynamic", 0);
    cJSON_AddStringToObject(w, "strategy", "channel");
    cJSON_AddNullToObject(g, "input_activations");
    cJSON_AddStringToObject(q, "format", "float-quantized");
    cJSON *ignore = cJSON_AddArrayToObject(q, "ignore");
    cJSON_AddItemToArray(ignore, cJSON_CreateString("lm_head"));
    cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
    cJSON_AddStringToObject(q, "quantization_status", "compressed");
    return q;
}

// config.json with num_hidden_layers replaced; layer_types (one entry per layer) follows the schedule; an FP8
// export's quantization_config.
static int write_config(const char *src_dir, const schedule *s, int fp8, const char *out_dir, rp_err *err) {
    char *src = path_join(src_dir, "config.json"), *dst = path_join(out_dir, "config.json");
    cJSON *root = json_parse_file(src, err);
    int rc = root ? 0 : -1;
    if (root) {
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(root, "num_hidden_layers");
        int n_layers = cJSON_IsNumber(nl) ? nl->valueint : -1;
        for (cJSON *e = root->child; e; e = e->next) {
            if (strcmp(e->string, "layer_types") != 0 || !cJSON_IsArray(e) || cJSON_GetArraySize(e) != n_layers)
                continue;
            cJSON *re = cJSON_CreateArray();
            for (int v = 0; v < s->n_visits; v++)
                cJSON_AddItemToArray(re, cJSON_Duplicate(cJSON_GetArrayItem(e, s->layer[v]), 1));
            cJSON_ReplaceItemViaPointer(root, e, re);
            e = re;
        }
        cJSON_ReplaceItemInObjectCaseSensitive(root, "num_hidden_layers", cJSON_CreateNumber(s->n_visits));
        if (fp8) cJSON_AddItemToObject(root, "quantization_config", fp8_quantization_config());
        char *text = cJSON_Print(root);
        FILE *f = fopen(dst, "w");
        if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) rc = rp_fail(err, "%s: cannot write: %s", dst, strerror(errno));
        if (f && fclose(f)) rc = rp_fail(err, "%s: cannot write: %s", dst, strerror(errno));
        free(text);
        cJSON_Delete(root);
    }
    free(src);
    free(dst);
    return rc;
}

static int copy_file(const char *src, const char *dst, rp_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return rp_fail(err, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return rp_fail(err, "%s: cannot create: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out)) ok = 0;
    return ok ? 0 : rp_fail(err, "%s: copy failed", dst);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int export_schedule(const char *src_dir, const schedule *s, weights_format weights, const char *out_dir, rp_err *err) {
    model_config cfg;
    if (config_load(&cfg, src_dir, err)) return -1;
    int fp8 = weights == WEIGHTS_FP8;
    char layout[96];
    quant_describe(&cfg.quant, layout, sizeof layout);
    if (fp8 && cfg.quant.method != QUANT_NONE)
        return rp_fail(err, "--weights fp8: %s is FP8 already (%s); export it without --weights to keep it so", src_dir, layout);
    for (int v = 0; v < s->n_visits; v++)
        if (s->layer[v] >= cfg.n_layers) return rp_fail(err, "schedule visit %d: layer %d out of range", v, s->layer[v]);
    if (mkdir(out_dir, 0755) && errno != EEXIST) return rp_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    char rs[PATH_MAX], ro[PATH_MAX];
    if (realpath(src_dir, rs) && realpath(out_dir, ro) && strcmp(rs, ro) == 0)
        return rp_fail(err, "-o %s: the output directory must differ from the model directory", out_dir);
    st_archive a;
    if (st_open_dir(&a, src_dir, err)) return -1;
    char *st_path = path_join(out_dir, "model.safetensors");
    int rc = weights_check(&cfg, &a, err) ? -1 : write_tensors(&a, &cfg, s, fp8, st_path, err);
    free(st_path);
    st_close(&a);
    if (rc || write_config(src_dir, s, fp8, out_dir, err)) return -1;

    DIR *d = opendir(src_dir);
    if (!d) return rp_fail(err, "%s: cannot list: %s", src_dir, strerror(errno));
    for (struct dirent *e; !rc && (e = readdir(d));) {
        const char *n = e->d_name;
        if (n[0] == '.' || strcmp(n, "config.json") == 0 || ends_with(n, ".safetensors") ||
            strcmp(n, "model.safetensors.index.json") == 0)
            continue;
        char *src = path_join(src_dir, n), *dst = path_join(out_dir, n);
        if (file_exists(src)) rc = copy_file(src, dst, err);
        free(src);
        free(dst);
    }
    closedir(d);
    return rc;
}
