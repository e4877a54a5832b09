// The physical limits of a forward step, from the model's shapes alone.
#include "engine/roofline.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "loader/weights.h"

static const gpu_peaks gpus[] = {{"h100", 3.35e12, 989e12}, {"h200", 4.8e12, 989e12}, {"a100", 2.0e12, 312e12}};

const gpu_peaks *roofline_gpu(const char *name) {
    for (size_t i = 0; i < sizeof gpus / sizeof *gpus; i++)
        if (name && !strcmp(name, gpus[i].name)) return &gpus[i];
    return NULL;
}

static double layer_params(const model_config *c) {
    double p = 0;
    int64_t s[2];
    for (int w = 0; w < W_N_LAYER_TENSORS; w++) {
        int nd = layer_tensor_shape(c, (layer_tensor)w, s);
        if (nd) p += (double)s[0] * (nd == 2 ? s[1] : 1);
    }
    return p;
}

double roofline_decode_bytes(const model_config *c, const schedule *s, int batch, double ctx, double weight_bytes,
                             double kv_bytes) {
    double weights = (layer_params(c) * s->n_visits + (double)c->vocab_size * c->dim + c->dim) * weight_bytes;
    double kv = 2.0 * c->n_kv_heads * c->head_dim * kv_bytes * s->n_visits * ctx * batch;
    return weights + kv;
}

double roofline_prefill_flops(const model_config *c, const schedule *s, double ctx) {
    double matmuls = 2 * (layer_params(c) * s->n_visits + (double)c->vocab_size * c->dim);
    double attention = 4.0 * c->n_heads * c->head_dim * ctx * s->n_visits;
    return matmuls + attention;
}
