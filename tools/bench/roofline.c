// The physical limits of a forward step: the bytes and FLOPs from the model's shapes, the CPU's limits measured.
#include "tools/bench/roofline.h"
#include "loader/alloc.h"

#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backends/cpu/matmul.h"
#include "engine/tensor_parallel.h"
#include "tools/common/stats.h"
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

// The embedding, final norm and LM head's elements (the head counted once when tied).
static double head_params(const model_config *c) {
    return (double)c->vocab_size * c->dim * (c->tied_embeddings ? 1 : 2) + c->dim;
}

double roofline_decode_bytes(const model_config *c, const schedule *s, int batch, double ctx, roofline_bytes b) {
    double weights = layer_params(c) * s->n_visits * b.layer + ((double)c->vocab_size * c->dim + c->dim) * b.head;
    double kv = 2.0 * c->n_kv_heads * c->head_dim * b.kv * s->n_visits * ctx * batch;
    return weights + kv;
}

roofline_bytes roofline_gpu_bytes(const model_config *c, int fp8) {
    roofline_bytes b = {2, 2, 2};
    if (fp8) b.layer = ((double)tp_rank_weight_bytes_fp8(c, 1, 0) - 2 * head_params(c)) / (layer_params(c) * c->n_layers);
    return b;
}

roofline_bytes roofline_element_bytes(const model *m) {
    const model_config *c = &m->cfg;
    const st_tensor *embed = weights_global(c, &m->weights, G_EMBED);
    roofline_bytes b = {0, embed ? (double)st_dtype_size(embed->dtype) : 2, 0};
    double layers = layer_params(c) * c->n_layers;
    b.layer = layers > 0 ? ((double)m->be->weight_bytes(m->be) - head_params(c) * b.head) / layers : 0;
    b.kv = (double)m->be->kv_bytes_per_token(m->be) / (2.0 * c->n_kv_heads * c->head_dim);
    return b;
}

double roofline_prefill_flops(const model_config *c, const schedule *s, double ctx) {
    double matmuls = 2 * (layer_params(c) * s->n_visits + (double)c->vocab_size * c->dim);
    double attention = 4.0 * c->n_heads * c->head_dim * ctx * s->n_visits;
    return matmuls + attention;
}

double roofline_cpu_bandwidth(int threads) {
    size_t n = (size_t)64 << 20;   // 256 MiB of floats
    float *buf = rp_malloc(n * sizeof(float));
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
    double best = 0, sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = rp_now_s(), sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        {
            // 32 independent lane sums (two or four vector adds a step, no chain between steps' lanes): the loads,
            // not the adds, set the pace
            float lanes[32] = {0};
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t a = n / 32 * t / nt * 32, b = n / 32 * (t + 1) / nt * 32;
            for (size_t i = a; i < b; i += 32)
                for (int k = 0; k < 32; k++) lanes[k] += buf[i + k];
            for (int k = 0; k < 32; k++) sum += lanes[k];
        }
        double bw = n * sizeof(float) / (rp_now_s() - t0);
        sink += sum;
        if (bw > best) best = bw;
    }
    free(buf);
    return sink == -1 ? 0 : best;   // (sink keeps the reads)
}

double roofline_cpu_matmul_peak(int threads) {
    static const int shapes[3][3] = {{64, 4096, 1024}, {128, 2048, 768}, {256, 2048, 2048}};
    double best = 0;
    for (int s = 0; s < 3; s++) {
        int n = shapes[s][0], d = shapes[s][1], k = shapes[s][2];
        float *x = rp_malloc(sizeof(float) * (size_t)n * k), *w = rp_malloc(sizeof(float) * (size_t)d * k),
              *out = rp_malloc(sizeof(float) * (size_t)n * d);
        packed_matrix pw = {0};
        for (size_t i = 0; i < (size_t)n * k; i++) x[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)d * k; i++) w[i] = (float)(i % 5) * 0.1f;
        int ok = x && w && out && !matrix_pack(&pw, w, ST_F32, d, k);
        for (int r = 0; ok && r < 3; r++) {
            double t0 = rp_now_s();
            matmul(out, x, &pw, n, threads);
            double f = 2.0 * n * d * k / (rp_now_s() - t0);
            if (f > best) best = f;
        }
        matrix_free(&pw);
        free(x), free(w), free(out);
    }
    return best;
}
