// Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p, from a seeded RNG.
// The filters apply in HF transformers' order: temperature, top-k, top-p, min-p; then one draw.
#include "engine/sampler.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sampler_init(sampler *s, const sampler_params *p, int vocab) {
    s->p = *p;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->vocab = vocab;
    s->work = rp_malloc(sizeof *s->work * vocab);
    memset(&s->seen, 0, sizeof s->seen);
    s->penalized = sampler_has_penalties(p) ? rp_malloc(sizeof(float) * (size_t)vocab) : NULL;
}

void sampler_free(sampler *s) {
    free(s->work), free(s->penalized);
    sampler_history_free(&s->seen);
}

int sampler_has_penalties(const sampler_params *p) {
    return (p->repeat_penalty > 0 && p->repeat_penalty != 1) || p->frequency_penalty != 0 || p->presence_penalty != 0;
}

// The slot of id in h (its own, or the empty one where it goes); h->cap is a power of two, never full.
static int history_slot(const token_history *h, int id) {
    unsigned mask = (unsigned)h->cap - 1, at = ((unsigned)id * 2654435761u) & mask;
    while (h->id[at] >= 0 && h->id[at] != id) at = (at + 1) & mask;
    return (int)at;
}

static void history_add(token_history *h, int id, int generated) {
    if (2 * (h->n + 1) > h->cap) {   // grow at half full: a 32k-token prompt's ids in a few doublings
        token_history old = *h;
        h->cap = old.cap ? 2 * old.cap : 64;
        h->id = rp_malloc(sizeof(int) * (size_t)h->cap), h->count = rp_calloc((size_t)h->cap, sizeof(int));
        h->in_prompt = rp_calloc((size_t)h->cap, 1);
        memset(h->id, 0xff, sizeof(int) * (size_t)h->cap);
        h->n = 0;
        for (int i = 0; i < old.cap; i++)
            if (old.id[i] >= 0) {
                int at = history_slot(h, old.id[i]);
                h->id[at] = old.id[i], h->count[at] = old.count[i], h->in_prompt[at] = old.in_prompt[i], h->n++;
            }
        free(old.id), free(old.count), free(old.in_prompt);
    }
    int at = history_slot(h, id);
    if (h->id[at] < 0) h->id[at] = id, h->n++;
    if (generated) h->count[at]++;
    else h->in_prompt[at] = 1;
}

void sampler_set_prompt(sampler *s, const int *ids, int n) {
    if (!sampler_has_penalties(&s->p)) return;
    if (s->seen.cap) {
        memset(s->seen.id, 0xff, sizeof(int) * (size_t)s->seen.cap);
        memset(s->seen.count, 0, sizeof(int) * (size_t)s->seen.cap);
        memset(s->seen.in_prompt, 0, (size_t)s->seen.cap);
        s->seen.n = 0;
    }
    for (int i = 0; i < n; i++) history_add(&s->seen, ids[i], 0);
}

static int edit_by_id(const void *a, const void *b) {
    const logit_edit *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int sampler_edits_max(const sampler *s, int n_bias) { return n_bias + (sampler_has_penalties(&s->p) ? s->seen.n : 0); }

// vLLM's order: repetition on every token seen (prompt or generated), then frequency and presence on the generated;
// a logit_bias before them all.
int sampler_edits(const sampler *s, const int *bias_id, const float *bias, int n_bias, logit_edit *out) {
    int n = 0;
    if (sampler_has_penalties(&s->p)) {
        const sampler_params *p = &s->p;
        const token_history *h = &s->seen;
        float rep = p->repeat_penalty > 0 ? p->repeat_penalty : 1;
        for (int i = 0; i < h->cap; i++)
            if (h->id[i] >= 0)
                out[n++] = (logit_edit){h->id[i], 0, rep, h->count[i] ? p->frequency_penalty * (float)h->count[i] + p->presence_penalty : 0};
    }
    qsort(out, (size_t)n, sizeof *out, edit_by_id);
    int n_seen = n;
    for (int b = 0; b < n_bias; b++) {   // into the seen token's edit, or a new one
        int lo = 0, hi = n_seen;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (out[mid].id < bias_id[b]) lo = mid + 1;
            else hi = mid;
        }
        logit_edit *e = NULL;
        if (lo < n_seen && out[lo].id == bias_id[b]) e = &out[lo];
        for (int j = n_seen; j < n && !e; j++)
            if (out[j].id == bias_id[b]) e = &out[j];
        if (!e) e = &out[n++], *e = (logit_edit){bias_id[b], 0, 1, 0};
        e->add += bias[b];
    }
    if (n > n_seen) qsort(out, (size_t)n, sizeof *out, edit_by_id);
    return n;
}

float rng_uniform(uint64_t *state) {
    uint64_t x = *state ? *state : 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (float)((x * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;   // [0, 1)
}

int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double log_prob_of(const float *logits, int vocab, int id) {
    float mx = logits[argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(sum);
}

static int by_prob_desc(const void *a, const void *b) {
    const struct prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

float sampler_uniform(sampler *s) { return s->p.temp > 0 ? rng_uniform(&s->rng) : 0.0f; }

void sampler_record(sampler *s, int id) {
    if (id >= 0 && sampler_has_penalties(&s->p)) history_add(&s->seen, id, 1);
}

int sampler_sample(sampler *s, const float *logits) {
    logit_edit *edits = rp_malloc(sizeof *edits * (size_t)(sampler_edits_max(s, 0) + 1));
    sample_row r = {.p = &s->p, .uniform = sampler_uniform(s), .edits = edits, .n_edits = sampler_edits(s, NULL, NULL, 0, edits),
                    .n_top = -1};
    sample_rows_host(logits, s->vocab, &r, 1, s->work, s->penalized);
    free(edits);
    sampler_record(s, r.id);
    return r.id;
}

void token_logprob_finish(token_logprob *t, int id, float logit, float mx, double sum, const float *top_v,
                          const int *top_id, int n_top) {
    double lse = mx + log(sum);
    t->id = id;
    t->logprob = (float)((double)logit - mx - log(sum));
    t->n_top = n_top;
    for (int j = 0; j < n_top; j++) t->top_id[j] = top_id[j], t->top_logprob[j] = (float)(top_v[j] - lse);
}

void token_logprob_of_row(const float *row, int vocab, int id, int n_top, token_logprob *t) {
    float mx = -INFINITY, top_v[SAMPLE_MAX_LOGPROBS];
    int top_id[SAMPLE_MAX_LOGPROBS], n = 0;
    for (int i = 0; i < vocab; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)row[i] - mx);
    if (n_top > SAMPLE_MAX_LOGPROBS) n_top = SAMPLE_MAX_LOGPROBS;
    for (int i = 0; i < vocab && n_top > 0; i++) {   // insertion into the short sorted list (ties: lowest id first)
        if (n == n_top && !(row[i] > top_v[n_top - 1])) continue;
        int j = n < n_top ? n++ : n_top - 1;
        while (j > 0 && row[i] > top_v[j - 1]) {
            top_v[j] = top_v[j - 1], top_id[j] = top_id[j - 1];
            j--;
        }
        top_v[j] = row[i], top_id[j] = i;
    }
    token_logprob_finish(t, id, id >= 0 ? row[id] : NAN, mx, sum, top_v, top_id, n);
}

void sample_rows_host(const float *logits, int vocab, sample_row *rows, int n, struct prob_id *work, float *edited) {
    struct prob_id *own_work = work ? NULL : rp_malloc(sizeof *work * (size_t)vocab);
    float *own_edited = NULL;
    if (!work) work = own_work;
    for (int i = 0; i < n; i++) {
        sample_row *r = &rows[i];
        const float *row = logits + (size_t)i * vocab;
        const float *draw_from = row;
        if (r->n_edits) {
            if (!edited) edited = own_edited = rp_malloc(sizeof(float) * (size_t)vocab);
            memcpy(edited, row, sizeof(float) * (size_t)vocab);
            for (int e = 0; e < r->n_edits; e++) edited[r->edits[e].id] = logit_edit_apply(&r->edits[e], edited[r->edits[e].id]);
            draw_from = edited;
        }
        r->id = sampler_pick(r->p, draw_from, vocab, r->uniform, work);
        if (r->n_top >= 0 && r->lp) token_logprob_of_row(row, vocab, r->id, r->n_top, r->lp);
    }
    free(own_edited), free(own_work);
}

// The filtered distribution of a finite row at temperature > 0: work sorted by probability (softmax at the
// temperature over the whole row), its first `keep` entries kept by top-k, top-p and min-p; returns keep.
static int filter(const sampler_params *sp, const float *logits, int n, struct prob_id *work) {
    float mx = logits[argmax(logits, n)], sum = 0;
    for (int i = 0; i < n; i++) {
        work[i].id = i;
        work[i].p = expf((logits[i] - mx) / sp->temp);
        sum += work[i].p;
    }
    for (int i = 0; i < n; i++) work[i].p /= sum;
    qsort(work, n, sizeof *work, by_prob_desc);
    int keep = n;
    if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
    if (sp->top_p < 1) {   // HF: over the top-k survivors, renormalised (top-k off: the whole vocabulary, sum 1)
        float kept = 0, cum = 0;
        for (int i = 0; i < keep; i++) kept += work[i].p;
        for (int i = 0; i < keep; i++) {
            cum += work[i].p / kept;
            if (cum >= sp->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (sp->min_p > 0) {
        float floor_p = sp->min_p * work[0].p;
        int k = 1;
        while (k < keep && work[k].p >= floor_p) k++;
        keep = k;
    }
    return keep;
}

static int all_finite(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int sampler_pick(const sampler_params *sp, const float *logits, int n, float u, struct prob_id *work) {
    if (!all_finite(logits, n)) return -1;   // no distribution to draw from: an error for this sequence
    if (sp->temp <= 0) return argmax(logits, n);
    int keep = filter(sp, logits, n, work);
    float total = 0;
    for (int i = 0; i < keep; i++) total += work[i].p;
    float r = u * total, cum = 0;
    for (int i = 0; i < keep; i++) {
        cum += work[i].p;
        if (r < cum) return work[i].id;
    }
    return work[keep - 1].id;
}

int sampler_distribution(const sampler_params *sp, const float *logits, int n, struct prob_id *work, float *probs) {
    if (!all_finite(logits, n)) return -1;
    memset(probs, 0, sizeof(float) * (size_t)n);
    if (sp->temp <= 0) {
        probs[argmax(logits, n)] = 1.0f;
        return 0;
    }
    int keep = filter(sp, logits, n, work);
    double total = 0;
    for (int i = 0; i < keep; i++) total += work[i].p;
    for (int i = 0; i < keep; i++) probs[work[i].id] = (float)(work[i].p / total);
    return 0;
}

void sampler_history_copy(token_history *to, const token_history *from) {
    if (to->cap != from->cap) {
        free(to->id), free(to->count), free(to->in_prompt);
        to->cap = from->cap;
        to->id = from->cap ? rp_malloc(sizeof(int) * (size_t)from->cap) : NULL;
        to->count = from->cap ? rp_malloc(sizeof(int) * (size_t)from->cap) : NULL;
        to->in_prompt = from->cap ? rp_malloc((size_t)from->cap) : NULL;
    }
    to->n = from->n;
    if (!from->cap) return;
    memcpy(to->id, from->id, sizeof(int) * (size_t)from->cap);
    memcpy(to->count, from->count, sizeof(int) * (size_t)from->cap);
    memcpy(to->in_prompt, from->in_prompt, (size_t)from->cap);
}

void sampler_history_free(token_history *h) {
    free(h->id), free(h->count), free(h->in_prompt);
    memset(h, 0, sizeof *h);
}
