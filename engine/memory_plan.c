// The device memory of a run, computed from the model's config and the run's shape before any weight is read.
#include "engine/memory_plan.h"

#include <stdio.h>
#include <string.h>

#include "engine/tensor_parallel.h"
#include "kernels/sample_params.h"
#include "kernels/shapes.h"
#include "loader/weights.h"

int kv_dtype_parse(const char *text, kv_dtype *out) {
    for (int t = KV_DTYPE_AUTO; t <= KV_DTYPE_BF16; t++)
        if (!strcmp(text, kv_dtype_name((kv_dtype)t))) return *out = (kv_dtype)t, 0;
    return -1;
}

const char *weights_format_name(weights_format w) { return w == WEIGHTS_FP8 ? "fp8" : "stored"; }

int weights_format_parse(const char *text, weights_format *out) {
    for (int w = WEIGHTS_AS_STORED; w <= WEIGHTS_FP8; w++)
        if (!strcmp(text, weights_format_name((weights_format)w))) return *out = (weights_format)w, 0;
    return -1;
}

int weights_fp8(const model_config *c, weights_format w) { return w == WEIGHTS_FP8 || c->quant.method != QUANT_NONE; }

kv_dtype kv_dtype_for_cpu(kv_dtype asked, st_dtype weights) {
    if (asked != KV_DTYPE_AUTO) return asked;
    return weights == ST_BF16 || weights == ST_F8_E4M3 ? KV_DTYPE_BF16 : KV_DTYPE_F32;   // an FP8 model is a BF16 one
}

const char *kv_dtype_name(kv_dtype t) { return t == KV_DTYPE_F32 ? "f32" : t == KV_DTYPE_BF16 ? "bf16" : "auto"; }

size_t memory_plan_kv_bytes_per_position(const model_config *c, int tp) {
    return 2 * 2 * (size_t)(c->n_kv_heads / (tp > 0 ? tp : 1)) * c->head_dim;
}

int memory_plan_graph_rows(const memory_plan *p) {
    int rows = p->shape.seqs > PLAN_GRAPH_ROWS ? p->shape.seqs : PLAN_GRAPH_ROWS;
    if (rows > p->shape.logit_rows) rows = p->shape.logit_rows;
    return rows < PLAN_GRAPH_ROWS_MAX ? rows : PLAN_GRAPH_ROWS_MAX;
}

int memory_plan_sample_slices(const model_config *c, const memory_plan *p) {
    tp_shard sh;
    tp_shard_of(c, p->shape.tp, 0, &sh);
    return sample_slices(sh.n_vocab, p->shape.tp);
}

size_t memory_plan_kv_page_bytes(const model_config *c, int tp) { return KV_PAGE * memory_plan_kv_bytes_per_position(c, tp); }

size_t memory_plan_kv_slot_bytes(const model_config *c, int tp, int capacity) {
    return (size_t)kv_pages_for(capacity) * (memory_plan_kv_page_bytes(c, tp) + PLAN_KV_TABLE_ENTRIES * sizeof(void *));
}

// The GEMM's workspace (gemm_mma.cu): the most any weight one GPU multiplies by needs.
static void gemm_workspace(const model_config *c, const tp_shard *sh, size_t *floats, size_t *counters) {
    tp_gemm g[TP_GEMMS];
    tp_gemms_of(c, sh, g);
    *floats = *counters = 0;
    for (int i = 0; i < TP_GEMMS; i++) {
        size_t f = gemm_workspace_floats(g[i].n, g[i].k), n = gemm_workspace_counters(g[i].n);
        if (f > *floats) *floats = f;
        if (n > *counters) *counters = n;
    }
}

static void defaults(const model_config *c, const plan_shape *in, plan_shape *s) {
    *s = *in;
    if (s->ctx <= 0) s->ctx = c->max_pos < 4096 ? c->max_pos : 4096;
    if (s->seqs <= 0) s->seqs = 1;
    if (s->ubatch <= 0) s->ubatch = PLAN_DEFAULT_UBATCH;
    if ((long)s->ubatch > (long)s->seqs * s->ctx) s->ubatch = s->seqs * s->ctx;   // no step has more rows
    if (s->ubatch < s->seqs) s->ubatch = s->seqs;   // every sequence of a step has a row
    if (s->logit_rows < s->seqs) s->logit_rows = s->seqs;
    if (s->logit_rows < PLAN_GRAPH_ROWS) s->logit_rows = PLAN_GRAPH_ROWS;   // a captured step's rows in one go
    if (s->kv_slots < 0) s->kv_slots = 0;
    if (s->stash_rows < 0) s->stash_rows = 0;
    if (s->max_visits <= 0) s->max_visits = 2 * c->n_layers;
    if (s->tp <= 0) s->tp = 1;
}

void memory_plan_compute(const model_config *c, const plan_shape *shape, memory_plan *p) {
    memset(p, 0, sizeof *p);
    plan_shape s;
    defaults(c, shape, &s);
    p->shape = s;
    size_t r = (size_t)s.ubatch, L = (size_t)s.logit_rows, f = sizeof(float), tp = (size_t)s.tp;
    tp_shard sh;
    tp_shard_of(c, s.tp, 0, &sh);   // rank 0's share is the largest
    size_t qd = (size_t)sh.n_heads * c->head_dim, kvd = (size_t)sh.n_kv_heads * c->head_dim, hid = (size_t)sh.n_hidden;
    size_t vocab = (size_t)sh.n_vocab, widest = (size_t)c->dim;
    if (qd > widest) widest = qd;
    size_t splits = ((size_t)s.ctx + PLAN_ATTENTION_CHUNK - 1) / PLAN_ATTENTION_CHUNK;
    size_t *b = p->buffer;
    b[BUF_X] = b[BUF_XB] = b[BUF_TMP] = r * c->dim * f;
    b[BUF_Q] = r * qd * f;
    b[BUF_K] = b[BUF_V] = r * kvd * f;
    b[BUF_ACT_BF16] = r * widest * 2;
    b[BUF_MLP_BF16] = r * hid * 2;
    b[BUF_X_BF16] = r * c->dim * 2;
    b[BUF_ROW_SSQ] = r * (size_t)row_ssq_blocks(c->dim) * f;
    b[BUF_TOKENS] = r * sizeof(int);
    b[BUF_META] = r * (size_t)s.max_visits * PLAN_META_ROW_BYTES;
    b[BUF_REDUCE] = tp > 2 ? tp * r * c->dim * f : tp > 1 ? r * c->dim * f : 0;   // > 2: every rank's copy
    b[BUF_LOGITS] = L * vocab * f;
    b[BUF_IDS] = L * 2 * sizeof(int);
    b[BUF_SAMPLE_PARAMS] = L * sizeof(sample_row_params);
    b[BUF_CANDIDATES] = (1 + tp) * (size_t)sample_slices((int)vocab, s.tp) * L * SAMPLE_CANDIDATE_ROW_BYTES(SAMPLE_MAX_K);
    b[BUF_LOGPROBS] = (size_t)sample_slices((int)vocab, s.tp) * L * sizeof(sample_logprob_record);
    size_t decode_rows = (size_t)s.seqs > PLAN_GRAPH_ROWS ? (size_t)s.seqs : PLAN_GRAPH_ROWS;
    b[BUF_PARTIAL] = decode_rows * sh.n_heads * splits * (c->head_dim + 2) * f;
    b[BUF_ATT_COUNT] = attention_counters((int)decode_rows, sh.n_heads) * sizeof(unsigned);
    size_t gemm_floats, gemm_counters;
    gemm_workspace(c, &sh, &gemm_floats, &gemm_counters);
    b[BUF_GEMM_PARTIAL] = gemm_floats * f;
    b[BUF_GEMM_COUNT] = gemm_counters * sizeof(unsigned);
    b[BUF_ROPE] = (size_t)(c->head_dim / 2) * f;
    b[BUF_STASH] = (size_t)s.stash_rows * c->dim * f;
    for (int i = BUF_X; i <= BUF_REDUCE; i++) p->activations += b[i];
    for (int i = BUF_LOGITS; i <= BUF_LOGPROBS; i++) p->logits += b[i];
    for (int i = BUF_PARTIAL; i <= BUF_ROPE; i++) p->scratch += b[i];
    p->fp8 = weights_fp8(c, s.weights);
    p->fp8_group_cols = p->fp8 && c->quant.method != QUANT_NONE ? c->quant.block_cols : 0;
    p->weights = tp_max_rank_weight_bytes(c, s.tp, p->fp8);
    p->kv_pages = (size_t)s.kv_slots * (size_t)kv_pages_for(s.ctx);
    p->kv = (size_t)s.kv_slots * memory_plan_kv_slot_bytes(c, s.tp, s.ctx);
    p->stash = b[BUF_STASH];
    p->device = p->weights + p->kv + p->activations + p->logits + p->scratch + p->stash;
    // tokens, logits, draws and ids of a step, and each layer execution's rows (position, K and V slot pointers)
    p->pinned_host = r * sizeof(int) + L * vocab * f + L * (f + sizeof(int)) +
                     r * (size_t)s.max_visits * PLAN_META_ROW_BYTES;
}

static void add_line(char *buf, size_t cap, size_t *at, const char *label, size_t bytes, const char *note) {
    if (*at >= cap) return;
    int gib = bytes >= (1u << 30);
    int n = snprintf(buf + *at, cap - *at, "  %-13s %10.3f %s  %s\n", label, bytes / (gib ? 1073741824.0 : 1048576.0),
                     gib ? "GiB" : "MiB", note);
    if (n > 0) *at += (size_t)n;
}

void memory_plan_format(const memory_plan *p, size_t free_bytes, char *buf, size_t cap) {
    const plan_shape *s = &p->shape;
    char note[160];
    size_t at = 0;
    buf[0] = 0;
    char format[96] = "BF16";
    if (p->fp8 && p->fp8_group_cols)
        snprintf(format, sizeof format, "FP8 projections (a scale a row and %d inputs), the rest BF16", p->fp8_group_cols);
    else if (p->fp8) snprintf(format, sizeof format, "FP8 projections (a scale a row), the rest BF16");
    if (s->tp > 1) snprintf(note, sizeof note, "%s, each unique layer once, this GPU's share of %d", format, s->tp);
    else snprintf(note, sizeof note, "%s, each unique layer once", format);
    add_line(buf, cap, &at, "weights", p->weights, note);
    snprintf(note, sizeof note, "%ld slots x %d positions (%zu pages of %d)", s->kv_slots, s->ctx, p->kv_pages, KV_PAGE);
    add_line(buf, cap, &at, "kv cache", p->kv, note);
    snprintf(note, sizeof note, "%d rows per step (--ubatch)", s->ubatch);
    add_line(buf, cap, &at, "activations", p->activations, note);
    snprintf(note, sizeof note, "%d rows x vocabulary, and sampling", s->logit_rows);
    add_line(buf, cap, &at, "logits", p->logits, note);
    snprintf(note, sizeof note, "attention partials for %d decode rows, GEMM partials, RoPE table", s->seqs > PLAN_GRAPH_ROWS ? s->seqs : PLAN_GRAPH_ROWS);
    add_line(buf, cap, &at, "scratch", p->scratch, note);
    if (p->stash) {
        snprintf(note, sizeof note, "%ld rows of hidden state kept between spans (a sweep's snapshots)", s->stash_rows);
        add_line(buf, cap, &at, "stash", p->stash, note);
    }
    if (free_bytes) snprintf(note, sizeof note, "of %.3f GiB free on the device (%.3f GiB kept as headroom)",
                             free_bytes / 1073741824.0, PLAN_HEADROOM / 1073741824.0);
    else snprintf(note, sizeof note, "on the device, plus %.3f GiB headroom", PLAN_HEADROOM / 1073741824.0);
    add_line(buf, cap, &at, "total", p->device, note);
    add_line(buf, cap, &at, "pinned host", p->pinned_host, "staging in host memory");
}

static int fits(const model_config *c, const plan_shape *s, size_t device_bytes) {
    memory_plan p;
    memory_plan_compute(c, s, &p);
    return p.device + PLAN_HEADROOM <= device_bytes;
}

void memory_plan_fit_kv(const model_config *c, memory_plan *p, size_t device_bytes) {
    plan_shape s = p->shape;
    long want = s.kv_slots;
    s.kv_slots = 0;
    memory_plan_compute(c, &s, p);
    size_t per_slot = memory_plan_kv_slot_bytes(c, s.tp, s.ctx);
    long fit = 0;
    if (per_slot && device_bytes > p->device + PLAN_HEADROOM)
        fit = (long)((double)(device_bytes - p->device - PLAN_HEADROOM) * 0.95 / (double)per_slot);
    s.kv_slots = fit < want ? fit : want;
    memory_plan_compute(c, &s, p);
}

int memory_plan_max_ctx(const model_config *c, const plan_shape *shape, long kv_slots_per_seq, size_t device_bytes) {
    plan_shape s = *shape;
    int seqs = s.seqs > 0 ? s.seqs : 1, lo = 0, hi = c->max_pos;
    while (lo < hi) {   // the plan grows with ctx, so the largest that fits is found by bisection
        int mid = lo + (hi - lo + 1) / 2;
        s.ctx = mid, s.kv_slots = kv_slots_per_seq * seqs;
        if (fits(c, &s, device_bytes)) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int memory_plan_max_seqs(const model_config *c, const plan_shape *shape, long kv_slots_per_seq, size_t device_bytes) {
    plan_shape s = *shape;
    int lo = 0, hi = 1 << 20;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        s.seqs = mid, s.kv_slots = kv_slots_per_seq * mid;
        if (s.ubatch > 0 && s.ubatch < mid) s.ubatch = mid;
        if (fits(c, &s, device_bytes)) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}
