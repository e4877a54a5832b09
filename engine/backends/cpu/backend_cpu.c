// The CPU backend: matrices packed once at load into the matmul's panels in their stored dtype (F32, BF16, F16),
// vectors in float32, a KV cache of float32 or BF16 (BF16 for BF16 models unless --kv-dtype f32), batch-invariant
// matmuls and attention over OpenMP threads. The numerical reference.
#include <math.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backends/cpu/backend_cpu.h"
#include "loader/alloc.h"
#include "engine/backends/cpu/matmul.h"
#include "engine/memory_plan.h"
#include "loader/quantization.h"
#include "loader/load_progress.h"
#include "loader/weights.h"

typedef struct {
    float *w[W_N_LAYER_TENSORS];   // float32 copies of the vectors (norms, biases), shapes as layer_tensor_shape
    packed_matrix m[W_N_LAYER_TENSORS];   // the matrices (W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN), packed
} cpu_layer;

typedef struct {
    backend base;
    int n_threads;
    kv_dtype kv_asked;   // the plan's --kv-dtype
    weights_format weights;   // the plan's --weights: FP8 packs the projections quantized
    int kv_bf16;         // the KV cache holds BF16 (else float32): decided at load, from kv_asked and the weights
    double kv_positions; // the plan's KV slots x positions (counted in the memory check; 0: none planned)
    packed_matrix embed;     // (vocab, dim) when the LM head is not tied to it (rows read out of the panels)
    float *final_norm;   // (dim)
    packed_matrix lm_head;   // (vocab, dim); the embedding table too when tied
    cpu_layer *layers;   // (n_layers)
    float *inv_freq;     // (head_dim / 2) RoPE inverse frequencies
    size_t weight_bytes;
    size_t layer_params; // multiply-adds of one row through one layer's matrices
    // activations for one forward step
    int cap_rows;
    float *x;            // (cap_rows, dim) hidden state, the residual stream
    float *xb, *h;       // (cap_rows, dim) gathered rows, normed rows
    float *q, *att;      // (cap_rows, n_heads * head_dim)
    float *k, *v;        // (cap_rows, n_kv_heads * head_dim)
    float *gate, *up;    // (cap_rows, hidden_dim)
    float *rope_cos, *rope_sin;  // (cap_rows, head_dim / 2)
    int cap_scores;
    float *scores;       // (n_threads, cap_scores) attention scores, one row per thread
    int cap_widened;
    float *widened;      // (n_threads, 2, cap_widened, head_dim) a BF16 KV head widened for a block of rows
} cpu_backend;

static float *to_f32(cpu_backend *b, const st_tensor *t) {
    float *p = rp_malloc(sizeof(float) * (size_t)st_numel(t));
    tensor_to_f32(t, p);
    load_progress_add(b->base.progress, (double)t->nbytes, 1);
    b->weight_bytes += sizeof(float) * (size_t)st_numel(t);
    return p;
}

// A matrix packed straight from the mapped checkpoint, in its stored dtype, or quantized to FP8 (fp8: a projection
// under --weights fp8).
static int to_packed(cpu_backend *b, const st_archive *a, const st_tensor *t, packed_matrix *m, int fp8, rp_err *err) {
    if (t->dtype == ST_F8_E4M3) {   // an FP8 checkpoint's projection: its codes, and its scales a row and group
        const quant_config *q = &b->base.cfg->quant;
        const st_tensor *scale = quant_scales_check(q, a, t, err);
        int d = (int)t->shape[0], k = (int)t->shape[1], group_k = quant_group_cols(q, k);
        if (!scale) return -1;
        float *scales = rp_malloc(sizeof(float) * (size_t)d * ((k + group_k - 1) / group_k));
        quant_scales_expand(q, scale, d, k, scales);
        int rc = matrix_pack_fp8_codes(m, t->data, d, k, scales, group_k, err);
        free(scales);
        if (rc) return rp_wrap(err, "%s", t->name);
    } else if (fp8) {
        if (matrix_pack_fp8(m, t->data, t->dtype, (int)t->shape[0], (int)t->shape[1], err)) return rp_wrap(err, "%s", t->name);
    } else if (matrix_pack(m, t->data, t->dtype, (int)t->shape[0], (int)t->shape[1]))
        return rp_fail(err, "out of memory packing %s (%zu bytes)", t->name, (size_t)st_numel(t) * st_dtype_size(t->dtype));
    b->weight_bytes += matrix_bytes(m);
    load_progress_add(b->base.progress, (double)t->nbytes, 1);
    return 0;
}

static int cpu_plan(backend *base, memory_plan *p, rp_err *err) {
    (void)err;
    ((cpu_backend *)base)->kv_asked = p->shape.kv_dtype;
    ((cpu_backend *)base)->weights = p->shape.weights;
    ((cpu_backend *)base)->kv_positions = (double)p->shape.kv_slots * p->shape.ctx;
    return 0;
}

double cpu_tensor_bytes(const model_config *c, const st_tensor *t, weights_format w) {
    if (t->ndim != 2) return 4.0 * (double)st_numel(t);
    int fp8 = strstr(t->name, "layers.") && (w == WEIGHTS_FP8 || t->dtype == ST_F8_E4M3);
    int k = (int)t->shape[1], group_k = t->dtype == ST_F8_E4M3 ? quant_group_cols(&c->quant, k) : k;
    return (double)matrix_packed_bytes(fp8 ? ST_F8_E4M3 : t->dtype, (int)t->shape[0], k) +
           (fp8 ? 4.0 * (double)t->shape[0] * ((k + group_k - 1) / group_k) : 0.0);
}

// A number from a one-line file ("max": no limit, -1).
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    char line[64] = "";
    if (!f) return -1;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    char *end;
    double v = strtod(line, &end);
    return end == line ? -1 : v;
}

double host_memory_available(char *why, size_t cap) {
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &avail) == 1) {
            avail *= 1024;
            break;
        }
    if (f) fclose(f);
    snprintf(why, cap, "MemAvailable in /proc/meminfo");
    // cgroup v2: this process's group, its limit less what it holds (a container's memory limit)
    double limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
    if (limit > 0 && used >= 0 && (avail < 0 || limit - used < avail)) {
        avail = limit > used ? limit - used : 0;
        snprintf(why, cap, "the cgroup's memory.max less its memory.current");
    }
    return avail < 0 ? 0 : avail;
}

static size_t cpu_kv_bytes_per_token(const backend *base);

// Refuses a model whose packed weights (and the plan's KV) exceed the memory this machine has free, before a weight
// is read: swapping 140 GB of weights would take hours and then be slow. REPRISE_SKIP_MEMORY_CHECK=1 skips it.
static int check_host_memory(cpu_backend *b, const st_archive *a, rp_err *err) {
    const char *skip = getenv("REPRISE_SKIP_MEMORY_CHECK");
    if (skip && *skip && strcmp(skip, "0")) return 0;
    const model_config *c = b->base.cfg;
    double weights = 0;
    int n_unused = weights_unused(c, a, NULL, 0);
    const st_tensor **unused = rp_malloc(sizeof *unused * (size_t)(n_unused + 1));
    weights_unused(c, a, unused, n_unused);
    for (int i = 0; i < a->n_tensors; i++) {
        const st_tensor *t = &a->tensors[i];
        int read = 1;
        char base[256];
        for (int u = 0; u < n_unused && read; u++) read = unused[u] != t;
        if (read && !quant_companion_of(&c->quant, t->name, base, sizeof base)) weights += cpu_tensor_bytes(c, t, b->weights);
    }
    free(unused);
    double kv = b->kv_positions * (double)cpu_kv_bytes_per_token(&b->base);   // a slot is one visit's, kv_bf16 set
    char why[96];
    double avail = host_memory_available(why, sizeof why), gib = 1024.0 * 1024 * 1024;
    if (avail <= 0 || weights + kv <= avail) return 0;
    char need[96];
    if (kv > 0) snprintf(need, sizeof need, "%.2f GiB (weights %.2f GiB, KV cache %.2f GiB)", (weights + kv) / gib, weights / gib, kv / gib);
    else snprintf(need, sizeof need, "%.2f GiB for its weights", weights / gib);
    return rp_fail(err, "the CPU backend needs %s and this machine has %.2f GiB free (%s): a smaller model, --weights fp8 "
                        "(a byte a weight), a GPU, or REPRISE_SKIP_MEMORY_CHECK=1 to try anyway", need, avail / gib, why);
}

static int cpu_load_weights(backend *base, const st_archive *a, rp_err *err) {
    cpu_backend *b = (cpu_backend *)base;
    const model_config *c = base->cfg;
    if (weights_check(c, a, err)) return -1;
    b->kv_bf16 = kv_dtype_for_cpu(b->kv_asked, weights_layer(a, 0, W_Q)->dtype) == KV_DTYPE_BF16;
    if (check_host_memory(b, a, err)) return -1;
    if (!c->tied_embeddings && to_packed(b, a, weights_global(c, a, G_EMBED), &b->embed, 0, err)) return -1;
    b->final_norm = to_f32(b, weights_global(c, a, G_FINAL_NORM));
    if (to_packed(b, a, weights_global(c, a, c->tied_embeddings ? G_EMBED : G_LM_HEAD), &b->lm_head, 0, err)) return -1;
    b->layers = rp_calloc((size_t)c->n_layers, sizeof *b->layers);
    int64_t shape[2];
    for (int l = 0; l < c->n_layers; l++)
        for (int w = 0; w < W_N_LAYER_TENSORS; w++) {
            int rank = layer_tensor_shape(c, (layer_tensor)w, shape);   // 0: absent; 1: a vector; 2: a matrix
            if (!rank) continue;
            const st_tensor *t = weights_layer(a, l, (layer_tensor)w);
            if (rank == 1) b->layers[l].w[w] = to_f32(b, t);
            else if (to_packed(b, a, t, &b->layers[l].m[w], b->weights == WEIGHTS_FP8, err)) return -1;
            else if (l == 0) b->layer_params += (size_t)shape[0] * shape[1];
        }
    return 0;
}

static void grow(float **p, size_t n) { *p = rp_realloc(*p, sizeof(float) * (n ? n : 1)); }

static void cpu_reserve(backend *base, int n_rows) {
    cpu_backend *b = (cpu_backend *)base;
    if (n_rows <= b->cap_rows) return;
    const model_config *c = base->cfg;
    size_t r = (size_t)n_rows, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    grow(&b->x, r * c->dim);
    grow(&b->xb, r * c->dim);
    grow(&b->h, r * c->dim);
    grow(&b->q, r * qd);
    grow(&b->att, r * qd);
    grow(&b->k, r * kvd);
    grow(&b->v, r * kvd);
    grow(&b->gate, r * c->hidden_dim);
    grow(&b->up, r * c->hidden_dim);
    grow(&b->rope_cos, r * c->head_dim / 2);
    grow(&b->rope_sin, r * c->head_dim / 2);
    b->cap_rows = n_rows;
}

static void cpu_embed(backend *base, const int *tokens, int n, int row0) {
    cpu_backend *b = (cpu_backend *)base;
    int dim = base->cfg->dim;
    for (int i = 0; i < n; i++) {
        float *row = b->x + (size_t)(row0 + i) * dim;
        matrix_row(b->embed.panels ? &b->embed : &b->lm_head, tokens[i], row);
    }
}

// out = x / sqrt(mean(x^2) + eps) * w, for each of n rows of length d.
static void rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float inv = 1.0f / sqrtf((float)(ss / d) + eps);
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = w[j] * (xi[j] * inv);
    }
}

static void add_bias(float *x, const float *bias, int n, int d) {
    if (!bias) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] += bias[j];
}

// Rotates each head of x by the row's angles: HF's rotate_half pairing (i, i + head_dim/2).
static void rope(float *x, int n_heads, int hd, const float *cosr, const float *sinr) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *p = x + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float x0 = p[i], x1 = p[i + half];
            p[i] = x0 * cosr[i] - x1 * sinr[i];
            p[i + half] = x1 * cosr[i] + x0 * sinr[i];
        }
    }
}

// Attention arithmetic runs on 8-float vectors (GCC's vector extension: one AVX2 register, or two SSE ones on the
// baseline CPU, the same operations lane by lane). A sum is taken in 8 lanes, lane j adding elements j, j + 8, ...,
// joined by a fixed tree: eight independent chains instead of one that waits on each add; the order is fixed, so a
// row's result never depends on the rows beside it. No FMA is enabled here, so no multiply-add is contracted.
// (-Wpsabi warns that passing such vectors between functions differs with and without AVX: these are static and
// inlined, so no call passes one. GCC reports it at the end of the file, so it stays off to the end.)
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));
#define VCHUNK 64   // output columns whose sums a pass over the values holds in registers (eight AVX2 vectors)

static inline float kv_at(const void *row, int bf16, int i) {   // element i of a KV row, widened exactly
    return bf16 ? bf16_to_f32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

static inline __attribute__((always_inline)) v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) v8f kv_load8(const void *row, int bf16, int i) {   // elements i..i+7 of a KV row, widened exactly
    if (!bf16) return load8((const float *)row + i);
    v8h h;
    memcpy(&h, (const uint16_t *)row + i, sizeof h);
    v8u u = __builtin_convertvector(h, v8u) << 16;
    v8f f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline __attribute__((always_inline)) float join_lanes(v8f a) { return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])); }

// q . k over n elements (k float32 or BF16).
static inline __attribute__((always_inline)) float dot_lanes(const float *q, const void *k, int n, int bf16) {
    v8f acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(q + i) * kv_load8(k, bf16, i);
    for (int j = 0; i < n; i++, j++) acc[j] += q[i] * kv_at(k, bf16, i);
    return join_lanes(acc);
}

// dot_lanes of q with four keys (stride bytes apart) at once, into out[0..4): four independent chains where one
// would wait on each add; each key's dot product is the same operations as dot_lanes'.
static inline __attribute__((always_inline)) void dot4_lanes(const float *q, const void *k, size_t stride, int n, int bf16,
                                                             float *out) {
    const unsigned char *k0 = k;
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f qv = load8(q + i);
        a0 += qv * kv_load8(k0, bf16, i), a1 += qv * kv_load8(k0 + stride, bf16, i);
        a2 += qv * kv_load8(k0 + 2 * stride, bf16, i), a3 += qv * kv_load8(k0 + 3 * stride, bf16, i);
    }
    for (int j = 0; i < n; i++, j++) {
        a0[j] += q[i] * kv_at(k0, bf16, i), a1[j] += q[i] * kv_at(k0 + stride, bf16, i);
        a2[j] += q[i] * kv_at(k0 + 2 * stride, bf16, i), a3[j] += q[i] * kv_at(k0 + 3 * stride, bf16, i);
    }
    out[0] = join_lanes(a0), out[1] = join_lanes(a1), out[2] = join_lanes(a2), out[3] = join_lanes(a3);
}

static inline float sum_lanes(const float *x, int n) {
    v8f acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(x + i);
    for (int j = 0; i < n; i++, j++) acc[j] += x[i];
    return join_lanes(acc);
}

// e^x for x <= 0 (a score minus the row's largest), lane by lane in operations a vector unit has (libm's expf is a
// call per element): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so that n ln2 is exact), e^r by its Taylor
// series to r^7 (relative error under 2e-7), 2^n put into the exponent bits. Below -87.3, where e^x leaves the
// normal floats, it gives e^-87.3: nothing beside the row's largest term, 1.
static inline __attribute__((always_inline)) v8f exp_nonpositive(v8f x) {
    const v8f lo = {-87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f};
    v8i below = x < lo;   // all ones where x < lo (a vector ?: is C++ only)
    x = (v8f)(((v8i)x & ~below) | ((v8i)lo & below));
    v8i n = __builtin_convertvector(x * 1.44269504f - 0.5f, v8i);   // truncation of x/ln2 - 0.5: nearest, for x <= 0
    v8f nf = __builtin_convertvector(n, v8f);
    v8f r = x - nf * 0.693145752f - nf * 1.42860677e-6f;
    v8f p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    v8i bits = (n + 127) << 23;
    v8f scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// Causal attention of one query head qh (hd) over n positions of its KV head: Kh and Vh point at position 0's
// hd elements, the next position kvd elements on. Writes oh (hd). bf16 is a constant in each caller below, so each
// element type gets its own loops.
static inline __attribute__((always_inline)) void attend_typed(const float *qh, const void *Kh_, const void *Vh_, int kvd,
                                                              int n, int hd, float *scores, float *oh, int bf16) {
    size_t es = bf16 ? 2 : 4;
    const unsigned char *Kh = Kh_, *Vh = Vh_;
    float scale = 1.0f / sqrtf((float)hd), mx = -INFINITY;
    int t = 0;
    for (; t + 4 <= n; t += 4) dot4_lanes(qh, Kh + (size_t)t * kvd * es, (size_t)kvd * es, hd, bf16, scores + t);
    for (; t < n; t++) scores[t] = dot_lanes(qh, Kh + (size_t)t * kvd * es, hd, bf16);
    for (t = 0; t < n; t++) {
        scores[t] *= scale;
        if (scores[t] > mx) mx = scores[t];
    }
    // e^(s - max), 8 at a time (the last few through a padded vector: the same operations on each lane)
    for (int t = 0; t < n; t += 8) {
        v8f v = {0};
        int m = n - t < 8 ? n - t : 8;
        memcpy(&v, scores + t, sizeof(float) * m);
        v = exp_nonpositive(v - mx);
        memcpy(scores + t, &v, sizeof(float) * m);
    }
    float inv_sum = 1.0f / sum_lanes(scores, n);
    // out = (sum over t of e_t v_t) / sum: VCHUNK columns at a time, their sums held in registers over t
    int i0 = 0;
    for (; i0 + VCHUNK <= hd; i0 += VCHUNK) {
        v8f acc[VCHUNK / 8] = {{0}};
        for (int t = 0; t < n; t++) {
            const void *vt = Vh + ((size_t)t * kvd + i0) * es;
            for (int c8 = 0; c8 < VCHUNK / 8; c8++) acc[c8] += scores[t] * kv_load8(vt, bf16, 8 * c8);
        }
        for (int c8 = 0; c8 < VCHUNK / 8; c8++) {
            v8f o = acc[c8] * inv_sum;
            memcpy(oh + i0 + 8 * c8, &o, sizeof o);
        }
    }
    for (; i0 < hd; i0 += 8) {   // the columns past the last whole chunk, 8 (or fewer) at a time
        int w = hd - i0 < 8 ? hd - i0 : 8;
        float acc[8] = {0};
        for (int t = 0; t < n; t++) {
            const void *vt = Vh + ((size_t)t * kvd + i0) * es;
            for (int j = 0; j < w; j++) acc[j] += scores[t] * kv_at(vt, bf16, j);
        }
        for (int j = 0; j < w; j++) oh[i0 + j] = acc[j] * inv_sum;
    }
}

// Built twice, for AVX2 and the baseline CPU, picked at load: neither has FMA, so the two run the same operations
// in the same order and give the same bits.
__attribute__((target_clones("avx2", "default"))) static void attend(const float *qh, const void *Kh, const void *Vh,
                                                                     int kvd, int n, int hd, float *scores, float *oh,
                                                                     int bf16) {
    if (bf16) attend_typed(qh, Kh, Vh, kvd, n, hd, scores, oh, 1);
    else attend_typed(qh, Kh, Vh, kvd, n, hd, scores, oh, 0);
}

// Positions [0, n) of one KV head of a BF16 cache (rows kvd elements apart) widened into dst (n, hd).
static void widen_kv_head(float *dst, const uint16_t *src, int kvd, int n, int hd) {
    for (int t = 0; t < n; t++)
        for (int i = 0; i < hd; i++) dst[(size_t)t * hd + i] = bf16_to_f32(src[(size_t)t * kvd + i]);
}

// Rows of keys or values (n, kvd) into a KV slot from position pos0, rounded to BF16 when the cache holds BF16.
static void kv_store(void *cache, int bf16, int pos0, const float *rows, int n, int kvd) {
    size_t at = (size_t)pos0 * kvd, count = (size_t)n * kvd;
    if (!bf16) {
        memcpy((float *)cache + at, rows, sizeof(float) * count);
        return;
    }
    uint16_t *dst = (uint16_t *)cache + at;
    for (size_t i = 0; i < count; i++) dst[i] = f32_to_bf16(rows[i]);
}

// Rows [*r0, *r1) of n, thread t's share of nt.
static void share(int n, int t, int nt, int *r0, int *r1) {
    *r0 = (int)((long)n * t / nt), *r1 = (int)((long)n * (t + 1) / nt);
}

// A layer execution's rows (as the engine gathered them) and their attention blocks.
typedef struct {
    const layer_exec *e;
    int n_blocks;
    const int *block_start;   // (n_blocks + 1) attention blocks: rows [block_start[i], block_start[i + 1]), one part's
} layer_rows;

#define ATT_BLOCK 16        // rows of one part whose attention a task runs together (sharing a widened KV head)
#define WIDEN_MAX_POS 8192  // a BF16 KV head is widened for a block up to this many positions (2 x 4 MiB at hd 128)

// The layer's steps, run by every thread of one parallel region (or by one thread alone): each step splits its
// work over the threads (rows, panels of a weight matrix, (row, head) pairs), a barrier between steps. One
// region per layer: its threads wake once, where a region per matmul woke them seven times. The split never
// changes a bit: every element is computed by the same operations whichever thread takes it.
static void layer_steps(cpu_backend *b, const model_config *c, const layer_rows *lr) {
    const layer_exec *e = lr->e;
    float *const *w = b->layers[e->layer].w;
    const packed_matrix *m = b->layers[e->layer].m;
    int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, half = hd / 2, R = e->n_rows;
    int t = omp_get_thread_num(), nt = omp_get_num_threads(), r0, r1, h0, h1;
    share(R, t, nt, &r0, &r1);

    // attention block: norm, QKV (+bias), q/k norm, RoPE, KV append
    rmsnorm(b->h + (size_t)r0 * dim, b->xb + (size_t)r0 * dim, w[W_ATTN_NORM], r1 - r0, dim, c->norm_eps);
#pragma omp barrier
    matmul_part(b->q, b->h, &m[W_Q], R, t, nt);
    matmul_part(b->k, b->h, &m[W_K], R, t, nt);
    matmul_part(b->v, b->h, &m[W_V], R, t, nt);
#pragma omp barrier
    add_bias(b->q + (size_t)r0 * qd, w[W_Q_BIAS], r1 - r0, qd);
    add_bias(b->k + (size_t)r0 * kvd, w[W_K_BIAS], r1 - r0, kvd);
    add_bias(b->v + (size_t)r0 * kvd, w[W_V_BIAS], r1 - r0, kvd);
    if (c->qk_norm) {
        rmsnorm(b->q + (size_t)r0 * qd, b->q + (size_t)r0 * qd, w[W_Q_NORM], (r1 - r0) * c->n_heads, hd, c->norm_eps);
        rmsnorm(b->k + (size_t)r0 * kvd, b->k + (size_t)r0 * kvd, w[W_K_NORM], (r1 - r0) * c->n_kv_heads, hd, c->norm_eps);
    }
    for (int r = r0; r < r1; r++) {
        const visit_part *p = &e->parts[e->row_part[r]];
        rope(b->q + (size_t)r * qd, c->n_heads, hd, b->rope_cos + (size_t)r * half, b->rope_sin + (size_t)r * half);
        rope(b->k + (size_t)r * kvd, c->n_kv_heads, hd, b->rope_cos + (size_t)r * half, b->rope_sin + (size_t)r * half);
        kv_store(p->kv->k, b->kv_bf16, e->row_pos[r], b->k + (size_t)r * kvd, 1, kvd);
        kv_store(p->kv->v, b->kv_bf16, e->row_pos[r], b->v + (size_t)r * kvd, 1, kvd);
    }
#pragma omp barrier

    // attention over each part's own KV slot: a task is a block of up to ATT_BLOCK consecutive rows of one part
    // and one head, handed out as threads come free. A BF16 cache's head is widened once per block into the
    // thread's scratch (exactly: the same bits as reading it in place), so a prompt's rows do not each widen it.
    int group = c->n_heads / c->n_kv_heads;
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < lr->n_blocks * c->n_heads; task++) {
        int blk = task / c->n_heads, head = task % c->n_heads, kvh = head / group;
        int ra = lr->block_start[blk], rb = lr->block_start[blk + 1], n_last = e->row_pos[rb - 1] + 1;
        const kv_slot *kv = e->parts[e->row_part[ra]].kv;
        size_t es = b->kv_bf16 ? 2 : 4;
        const void *Kh = (const unsigned char *)kv->k + (size_t)kvh * hd * es, *Vh = (const unsigned char *)kv->v + (size_t)kvh * hd * es;
        int stride = kvd, bf16 = b->kv_bf16;
        if (bf16 && rb - ra > 1 && n_last <= b->cap_widened) {
            float *wk = b->widened + (size_t)t * 2 * b->cap_widened * hd, *wv = wk + (size_t)b->cap_widened * hd;
            widen_kv_head(wk, Kh, kvd, n_last, hd);
            widen_kv_head(wv, Vh, kvd, n_last, hd);
            Kh = wk, Vh = wv, stride = hd, bf16 = 0;
        }
        float *scores = b->scores + (size_t)t * b->cap_scores;
        for (int r = ra; r < rb; r++)
            attend(b->q + (size_t)r * qd + (size_t)head * hd, Kh, Vh, stride, e->row_pos[r] + 1, hd, scores,
                   b->att + (size_t)r * qd + (size_t)head * hd, bf16);
    }   // (the loop ends in a barrier)
    matmul_part(b->h, b->att, &m[W_O], R, t, nt);
#pragma omp barrier
    for (size_t i = (size_t)r0 * dim; i < (size_t)r1 * dim; i++) b->xb[i] += b->h[i];

    // MLP block: norm, SwiGLU, residual (each thread's rows, so no barrier between the add and the norm)
    rmsnorm(b->h + (size_t)r0 * dim, b->xb + (size_t)r0 * dim, w[W_FFN_NORM], r1 - r0, dim, c->norm_eps);
#pragma omp barrier
    matmul_part(b->gate, b->h, &m[W_GATE], R, t, nt);
    matmul_part(b->up, b->h, &m[W_UP], R, t, nt);
#pragma omp barrier
    share(R * c->hidden_dim, t, nt, &h0, &h1);
    for (size_t i = (size_t)h0; i < (size_t)h1; i++) {
        float g = b->gate[i];
        b->gate[i] = g / (1.0f + expf(-g)) * b->up[i];
    }
#pragma omp barrier
    matmul_part(b->h, b->gate, &m[W_DOWN], R, t, nt);
#pragma omp barrier
    for (size_t i = (size_t)r0 * dim; i < (size_t)r1 * dim; i++) b->xb[i] += b->h[i];
}

static void cpu_layer_run(backend *base, const layer_exec *e) {
    cpu_backend *b = (cpu_backend *)base;
    const model_config *c = base->cfg;
    int dim = c->dim, half = c->head_dim / 2, R = e->n_rows, max_pos = e->max_end;

    // Gather the parts' rows into one block, so each weight matrix is read once for all of them.
    int *block_start = rp_malloc(sizeof(int) * (size_t)(R + e->n_parts + 1)), n_blocks = 0;
    size_t attention = 0;   // multiply-adds: each row's query against positions 0..pos, for scores and for values
    for (int p = 0, r = 0; p < e->n_parts; r += e->parts[p].n_rows, p++) {
        memcpy(b->xb + (size_t)r * dim, b->x + (size_t)e->parts[p].row0 * dim, sizeof(float) * dim * e->parts[p].n_rows);
        for (int i = 0; i < e->parts[p].n_rows; i += ATT_BLOCK) block_start[n_blocks++] = r + i;
    }
    block_start[n_blocks] = R;
    for (int r = 0; r < R; r++) {
        float pos = (float)e->row_pos[r];
        for (int j = 0; j < half; j++) {
            // float32 angle, as HF computes it
            float ang = pos * b->inv_freq[j];
            b->rope_cos[(size_t)r * half + j] = cosf(ang);
            b->rope_sin[(size_t)r * half + j] = sinf(ang);
        }
        attention += (size_t)2 * c->n_heads * c->head_dim * (e->row_pos[r] + 1);
    }
    if (max_pos > b->cap_scores) {
        b->cap_scores = max_pos;
        grow(&b->scores, (size_t)b->n_threads * max_pos);
    }
    // a prompt (a block of several rows) on a BF16 cache: room to widen one KV head per thread
    int widen_to = max_pos < WIDEN_MAX_POS ? max_pos : WIDEN_MAX_POS;
    if (b->kv_bf16 && R > e->n_parts && widen_to > b->cap_widened) {
        b->cap_widened = widen_to;
        grow(&b->widened, (size_t)b->n_threads * 2 * widen_to * c->head_dim);
    }
    layer_rows lr = {e, n_blocks, block_start};
    // a layer too small to repay waking the threads runs on this one
    size_t work = (size_t)R * b->layer_params + attention;
#pragma omp parallel num_threads(b->n_threads) if (work > PARALLEL_MIN_WORK)
    layer_steps(b, c, &lr);
    free(block_start);

    // scatter back
    for (int p = 0, r = 0; p < e->n_parts; r += e->parts[p].n_rows, p++)
        memcpy(b->x + (size_t)e->parts[p].row0 * dim, b->xb + (size_t)r * dim, sizeof(float) * dim * e->parts[p].n_rows);
}

static void cpu_read_rows(backend *base, int row0, int n, float *out) {
    cpu_backend *b = (cpu_backend *)base;
    memcpy(out, b->x + (size_t)row0 * base->cfg->dim, sizeof(float) * (size_t)n * base->cfg->dim);
}

static void cpu_write_rows(backend *base, int row0, int n, const float *in) {
    cpu_backend *b = (cpu_backend *)base;
    memcpy(b->x + (size_t)row0 * base->cfg->dim, in, sizeof(float) * (size_t)n * base->cfg->dim);
}

static size_t kv_elem_bytes(const cpu_backend *b) { return b->kv_bf16 ? 2 : sizeof(float); }

static void cpu_kv_copy(backend *base, kv_slot *dst, const kv_slot *src, int n) {
    size_t bytes = kv_elem_bytes((cpu_backend *)base) * (size_t)n * base->cfg->n_kv_heads * base->cfg->head_dim;
    memcpy(dst->k, src->k, bytes);
    memcpy(dst->v, src->v, bytes);
}

static void cpu_logits(backend *base, const int *rows, int n, float *out) {
    cpu_backend *b = (cpu_backend *)base;
    const model_config *c = base->cfg;
    cpu_reserve(base, n);
    for (int i = 0; i < n; i++) memcpy(b->xb + (size_t)i * c->dim, b->x + (size_t)rows[i] * c->dim, sizeof(float) * c->dim);
    rmsnorm(b->h, b->xb, b->final_norm, n, c->dim, c->norm_eps);
    matmul(out, b->h, &b->lm_head, n, b->n_threads);
}

static size_t cpu_kv_bytes_per_token(const backend *base) {
    return 2 * kv_elem_bytes((const cpu_backend *)base) * (size_t)base->cfg->n_kv_heads * base->cfg->head_dim;
}

static int cpu_kv_alloc(backend *base, kv_slot *kv, int capacity, rp_err *err) {
    size_t n = (size_t)capacity * base->cfg->n_kv_heads * base->cfg->head_dim;
    // calloc: pages are only touched as positions fill, so a large context costs nothing until used
    kv->k = calloc(n, kv_elem_bytes((cpu_backend *)base));
    kv->v = calloc(n, kv_elem_bytes((cpu_backend *)base));
    kv->capacity = capacity;
    if (!kv->k || !kv->v) {
        free(kv->k);
        free(kv->v);
        kv->k = kv->v = NULL;
        return rp_fail(err, "out of memory allocating a KV slot of %d positions", capacity);
    }
    return 0;
}

static void cpu_kv_free(backend *base, kv_slot *kv) {
    (void)base;
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

static size_t cpu_weight_bytes(const backend *base) { return ((const cpu_backend *)base)->weight_bytes; }

static void cpu_destroy(backend *base) {
    cpu_backend *b = (cpu_backend *)base;
    if (b->layers)
        for (int l = 0; l < base->cfg->n_layers; l++)
            for (int w = 0; w < W_N_LAYER_TENSORS; w++) free(b->layers[l].w[w]), matrix_free(&b->layers[l].m[w]);
    matrix_free(&b->lm_head);
    matrix_free(&b->embed);
    free(b->final_norm);
    free(b->layers);
    free(b->inv_freq);
    float *bufs[] = {b->x, b->xb, b->h, b->q, b->att, b->k, b->v, b->gate, b->up, b->rope_cos, b->rope_sin, b->scores, b->widened};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(b);
}

backend *backend_cpu_create(const model_config *cfg, int n_threads, rp_err *err) {
    (void)err;
    cpu_backend *b = rp_calloc(1, sizeof *b);
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    b->n_threads = n_threads;
    b->base = (backend){
        .name = "cpu", .cfg = cfg, .plan = cpu_plan, .load_weights = cpu_load_weights, .reserve = cpu_reserve, .embed = cpu_embed,
        .layer = cpu_layer_run, .read_rows = cpu_read_rows,
        .write_rows = cpu_write_rows, .kv_copy = cpu_kv_copy, .logits = cpu_logits, .kv_alloc = cpu_kv_alloc, .kv_free = cpu_kv_free,
        .kv_bytes_per_token = cpu_kv_bytes_per_token, .weight_bytes = cpu_weight_bytes, .destroy = cpu_destroy,
    };
    int half = cfg->head_dim / 2;
    double inv[half];
    config_rope_inv_freq(cfg, inv);
    b->inv_freq = rp_malloc(sizeof(float) * half);
    for (int i = 0; i < half; i++) b->inv_freq[i] = (float)inv[i];
    return &b->base;
}
