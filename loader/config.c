// The model description: config.json (and generation_config.json) for Llama, Qwen2, Mistral and Qwen3.
#include "loader/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"
#include "loader/quantization.h"

const char *arch_name(arch_kind a) {
    static const char *names[] = {"llama", "qwen2", "mistral", "qwen3"};
    return names[a];
}

// Typed field readers: a missing optional field keeps *out; a present field of the wrong type or out of
// range is an error naming it.
static int get_int(const cJSON *o, const char *key, int required, int lo, int hi, int *out, const char *file,
                   rp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return required ? rp_fail(err, "%s: missing \"%s\"", file, key) : 0;
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble)
        return rp_fail(err, "%s: \"%s\" must be an integer", file, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return rp_fail(err, "%s: \"%s\" = %g is out of range [%d, %d]", file, key, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *key, double lo, double hi, double *out, const char *file, rp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return rp_fail(err, "%s: \"%s\" must be a number", file, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return rp_fail(err, "%s: \"%s\" = %g is out of range [%g, %g]", file, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int *out, const char *file, rp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return rp_fail(err, "%s: \"%s\" must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

// eos_token_id may be one integer or a list of them.
static int get_eos(const cJSON *o, model_config *c, const char *file, rp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    if (!v || cJSON_IsNull(v)) return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (n > MAX_EOS_IDS) return rp_fail(err, "%s: \"eos_token_id\" lists %d ids (at most %d)", file, n, MAX_EOS_IDS);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble || e->valuedouble < 0 ||
            e->valuedouble >= c->vocab_size)
            return rp_fail(err, "%s: \"eos_token_id\" must be token ids below vocab_size %d", file, c->vocab_size);
        c->eos_ids[i] = (int)e->valuedouble;
    }
    c->n_eos = n;
    return 0;
}

static int parse_rope_scaling(const cJSON *root, model_config *c, const char *file, rp_err *err) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return rp_fail(err, "%s: \"rope_scaling\" must be an object or null", file);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type)) return rp_fail(err, "%s: \"rope_scaling\" has no \"rope_type\"", file);
    if (strcmp(type->valuestring, "default") == 0) return 0;
    if (strcmp(type->valuestring, "llama3") != 0)
        return rp_fail(err, "%s: rope_scaling type '%s' is not supported (supported: llama3)", file, type->valuestring);
    c->rope_llama3 = 1;
    c->rope_factor = c->rope_low_freq_factor = c->rope_high_freq_factor = -1;
    c->rope_original_max_pos = -1;
    if (get_num(rs, "factor", 1e-6, 1e6, &c->rope_factor, file, err) ||
        get_num(rs, "low_freq_factor", 1e-6, 1e6, &c->rope_low_freq_factor, file, err) ||
        get_num(rs, "high_freq_factor", 1e-6, 1e6, &c->rope_high_freq_factor, file, err) ||
        get_int(rs, "original_max_position_embeddings", 1, 1, 1 << 24, &c->rope_original_max_pos, file, err))
        return rp_wrap(err, "rope_scaling");
    if (c->rope_factor < 0 || c->rope_low_freq_factor < 0 || c->rope_high_freq_factor < 0)
        return rp_fail(err, "%s: rope_scaling llama3 needs factor, low_freq_factor and high_freq_factor", file);
    if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
        return rp_fail(err, "%s: rope_scaling high_freq_factor must exceed low_freq_factor", file);
    return 0;
}

static int parse_config(const cJSON *root, model_config *c, const char *file, rp_err *err) {
    if (!cJSON_IsObject(root)) return rp_fail(err, "%s: not a JSON object", file);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) return rp_fail(err, "%s: missing or non-string \"model_type\"", file);
    const char *t = mt->valuestring;
    if (strcmp(t, "llama") == 0) c->arch = ARCH_LLAMA;
    else if (strcmp(t, "qwen2") == 0) c->arch = ARCH_QWEN2;
    else if (strcmp(t, "mistral") == 0) c->arch = ARCH_MISTRAL;
    else if (strcmp(t, "qwen3") == 0) c->arch = ARCH_QWEN3;
    else return rp_fail(err, "%s: model_type '%s' is not supported (supported: llama, qwen2, mistral, qwen3)", file, t);
    snprintf(c->model_type, sizeof c->model_type, "%s", t);

    const int big = 1 << 24;
    c->n_kv_heads = -1;
    c->head_dim = -1;
    c->max_pos = 2048;
    c->bos_id = -1;
    c->norm_eps = 1e-6f;
    c->rope_theta = 10000.0;
    if (get_int(root, "hidden_size", 1, 1, big, &c->dim, file, err) ||
        get_int(root, "intermediate_size", 1, 1, big, &c->hidden_dim, file, err) ||
        get_int(root, "num_hidden_layers", 1, 1, 100000, &c->n_layers, file, err) ||
        get_int(root, "num_attention_heads", 1, 1, 65536, &c->n_heads, file, err) ||
        get_int(root, "num_key_value_heads", 0, 1, 65536, &c->n_kv_heads, file, err) ||
        get_int(root, "head_dim", 0, 2, 65536, &c->head_dim, file, err) ||
        get_int(root, "vocab_size", 1, 1, big, &c->vocab_size, file, err) ||
        get_int(root, "max_position_embeddings", 0, 1, 1 << 30, &c->max_pos, file, err) ||
        get_int(root, "bos_token_id", 0, 0, c->vocab_size - 1, &c->bos_id, file, err))
        return -1;
    double eps = c->norm_eps;
    if (get_num(root, "rms_norm_eps", 0, 1, &eps, file, err) ||
        get_num(root, "rope_theta", 1e-6, 1e12, &c->rope_theta, file, err))
        return -1;
    c->norm_eps = (float)eps;
    if (c->n_kv_heads < 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim < 0) {
        if (c->dim % c->n_heads) return rp_fail(err, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                                                file, c->dim, c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (c->head_dim % 2) return rp_fail(err, "%s: head_dim %d must be even for RoPE", file, c->head_dim);
    if (c->n_heads % c->n_kv_heads)
        return rp_fail(err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", file, c->n_heads,
                       c->n_kv_heads);

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return rp_fail(err, "%s: hidden_act must be \"silu\"", file);
    int attn_bias = 0, mlp_bias = 0;
    if (get_bool(root, "attention_bias", &attn_bias, file, err) || get_bool(root, "mlp_bias", &mlp_bias, file, err) ||
        get_bool(root, "tie_word_embeddings", &c->tied_embeddings, file, err))
        return -1;
    if (mlp_bias) return rp_fail(err, "%s: mlp_bias true is not supported", file);
    if (c->arch == ARCH_QWEN2) c->qkv_bias = 1;
    else if (attn_bias) return rp_fail(err, "%s: attention_bias true is not supported for %s", file, t);
    c->qk_norm = c->arch == ARCH_QWEN3;
    if (parse_rope_scaling(root, c, file, err) || get_eos(root, c, file, err) ||
        quant_config_parse(root, &c->quant, file, err))
        return -1;
    // sliding-window attention: Mistral v0.1 sets sliding_window; Qwen2/Qwen3 set it with use_sliding_window false
    int window = 0, use_window = 1;
    if (get_int(root, "sliding_window", 0, 1, 1 << 30, &window, file, err) ||
        get_bool(root, "use_sliding_window", &use_window, file, err))
        return -1;
    c->declared_max_pos = c->max_pos;
    if (use_window && window > 0 && window < c->max_pos) c->sliding_window = window, c->max_pos = window;
    return 0;
}

const char *config_context_name(const model_config *c) { return c->sliding_window ? "sliding_window" : "max_position_embeddings"; }

int config_load(model_config *c, const char *dir, rp_err *err) {
    memset(c, 0, sizeof *c);
    char *path = path_join(dir, "config.json");
    cJSON *root = json_parse_file(path, err);
    int rc = root ? parse_config(root, c, path, err) : -1;
    cJSON_Delete(root);
    free(path);
    if (rc) return rc;

    path = path_join(dir, "generation_config.json");
    if (file_exists(path)) {
        root = json_parse_file(path, err);
        rc = root ? 0 : -1;
        if (root && !cJSON_IsObject(root)) rc = rp_fail(err, "%s: not a JSON object", path);
        if (!rc) rc = get_eos(root, c, path, err) || get_int(root, "bos_token_id", 0, 0, c->vocab_size - 1, &c->bos_id,
                                                              path, err);
        cJSON_Delete(root);
    }
    free(path);
    return rc ? -1 : 0;
}

void config_rope_inv_freq(const model_config *c, double *inv_freq) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
        if (c->rope_llama3) {
            // Meta's llama3 scaling: long wavelengths are slowed by `factor`, short ones kept, the band between
            // interpolated smoothly.
            double old = c->rope_original_max_pos;
            double low_wavelen = old / c->rope_low_freq_factor, high_wavelen = old / c->rope_high_freq_factor;
            double wavelen = 2 * M_PI / f;
            if (wavelen > low_wavelen) f = f / c->rope_factor;
            else if (wavelen >= high_wavelen) {
                double smooth = (old / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
