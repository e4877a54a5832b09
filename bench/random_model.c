// A Llama-architecture model with random BF16 weights, written in HF format for benchmarks.
#include "bench/random_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader/config.h"
#include "loader/json_file.h"
#include "loader/safetensors.h"
#include "loader/weights.h"

static uint64_t rng = 88172645463325252ull;
static uint16_t random_bf16(float scale) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    float f = ((float)(rng >> 40) / 16777216.0f * 2 - 1) * scale;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

int random_model_write(const char *dir, random_model_shape m, int with_weights) {
    if (mkdir(dir, 0755) && errno != EEXIST) return fprintf(stderr, "%s: cannot create: %s\n", dir, strerror(errno)), -1;
    char *p = path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write: %s\n", p, strerror(errno));
        free(p);
        return -1;
    }
    fprintf(f, "{\"model_type\":\"llama\",\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
               "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,\"max_position_embeddings\":%d,"
               "\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"tie_word_embeddings\":true,\"hidden_act\":\"silu\"}",
            m.dim, m.hidden, m.layers, m.heads, m.kv_heads, m.vocab, m.max_pos);
    fclose(f);
    free(p);
    model_config c;
    rp_err err;
    if (config_load(&c, dir, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    if (!with_weights) return 0;
    int n = 0, cap = 2 + c.n_layers * W_N_LAYER_TENSORS;
    st_out_tensor *t = calloc((size_t)cap, sizeof *t);
    char **names = calloc((size_t)cap, sizeof *names);
    for (int g = 0; g < G_N_GLOBAL_TENSORS; g++) {
        t[n].ndim = global_tensor_shape(&c, (global_tensor)g, t[n].shape);
        if (!t[n].ndim) continue;
        names[n] = strdup(global_tensor_name[g]);
        n++;
    }
    for (int l = 0; l < c.n_layers; l++)
        for (int w = 0; w < W_N_LAYER_TENSORS; w++) {
            t[n].ndim = layer_tensor_shape(&c, (layer_tensor)w, t[n].shape);
            if (!t[n].ndim) continue;
            names[n] = malloc(128);
            snprintf(names[n], 128, "model.layers.%d.%s", l, layer_tensor_suffix[w]);
            n++;
        }
    for (int i = 0; i < n; i++) {
        int64_t numel = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1);
        uint16_t *d = malloc(sizeof(uint16_t) * numel);
        int is_norm = t[i].ndim == 1;
        float scale = is_norm ? 0.0f : sqrtf(3.0f / (float)t[i].shape[1]);   // uniform, variance 1/fan_in
        for (int64_t j = 0; j < numel; j++) d[j] = is_norm ? 0x3f80 /* 1.0 */ : random_bf16(scale);
        t[i] = (st_out_tensor){.name = names[i], .dtype = ST_BF16, .ndim = t[i].ndim, .shape = {t[i].shape[0], t[i].shape[1]},
                               .data = d, .nbytes = sizeof(uint16_t) * numel};
    }
    p = path_join(dir, "model.safetensors");
    int rc = st_write_file(p, t, n, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(p);
    for (int i = 0; i < n; i++) free((void *)t[i].data), free(names[i]);
    free(t);
    free(names);
    return rc;
}


void random_model_remove(const char *dir) {
    const char *files[] = {"model.safetensors", "config.json"};
    for (int i = 0; i < 2; i++) {
        char *p = path_join(dir, files[i]);
        remove(p);
        free(p);
    }
    remove(dir);
}
