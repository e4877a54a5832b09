// One generation step for a batch of sequences (generate.h): feed, draw, stop rules.
#include "engine/generate.h"
#include "engine/speculative.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

void gen_begin(gen_seq *g, sequence *seq, sampler *smp, const int *ids, int n, int max_new) {
    memset(g, 0, sizeof *g);
    g->seq = seq, g->smp = smp, g->feed = ids, g->n_feed = n, g->max_new = max_new;
    g->extra_eos = -1, g->next = -1, g->logprobs = -1;
    g->state = GEN_RUNNING;
}

int gen_is_eos(const model_config *c, int extra, int id) {
    if (extra >= 0 && id == extra) return 1;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

void gen_take(const model *m, gen_seq *g, int id) {
    g->next = id;
    if (id < 0) {
        g->state = GEN_NOT_FINITE;
        return;
    }
    g->n_generated++;
    if (g->n_drawn < GEN_MAX_DRAWN) g->drawn[g->n_drawn++] = id;
    g->feed = &g->next, g->n_feed = 1;
    const kv_cache *kc = &g->seq->cache;
    int ctx = g->ctx > 0 ? g->ctx : kc->capacity;
    if (!g->ignore_eos && gen_is_eos(&m->cfg, g->extra_eos, id)) g->state = GEN_EOS;
    else if (g->max_new >= 0 && g->n_generated >= g->max_new) g->state = GEN_LENGTH;
    else if (kc->n_past + 1 > ctx) g->state = GEN_CONTEXT_FULL;
}

static int step_rows(const gen_seq *s) { return s->n_step > 0 && s->n_step < s->n_feed ? s->n_step : s->n_feed; }

// Whether g's draft rides along this ordinary step (fed its lag and the same rows, so that its KV keeps the
// target's positions); a draft out of step with the target is stale from then on.
static int draft_rides(gen_seq *g) {
    spec_draft *d = g->draft;
    if (!d || d->stale) return 0;
    if (d->seq.cache.n_past + d->n_lag != g->seq->cache.n_past) return d->stale = 1, 0;
    return 1;
}

// One forward pass over group[0..n): feeds each its step's rows; ids[i] is the id drawn for a sequence whose feed
// completed (-1: none drawn, or non-finite logits). all_rows: every row's logits go to rows_out, and the draws are
// made from them on the host; else the backend draws (on the device where it can), each row by its own request.
// The sequences' drafts that ride along come after them in the pass (their rows' logits unused).
static int run_group(model *m, gen_seq **group, int n, int all_rows, int *ids, forward_stats *stats, rp_err *err) {
    int vocab = m->cfg.vocab_size, total = 0, n_edits = 0, n_all = n;
    size_t cap = 2 * (size_t)n;
    sequence **seqs = rp_malloc(sizeof *seqs * cap);
    const int **feeds = rp_malloc(sizeof *feeds * cap);
    int *counts = rp_malloc(sizeof(int) * cap);
    sample_row *req = rp_calloc(cap, sizeof *req);
    static const sampler_params greedy = {.temp = 0, .top_p = 1};
    for (int i = 0; i < n; i++) {
        gen_seq *s = group[i];
        seqs[i] = s->seq, feeds[i] = s->feed, counts[i] = step_rows(s), total += counts[i];
        if (counts[i] == s->n_feed && s->max_new != 0) n_edits += sampler_edits_max(s->smp, s->n_bias);
    }
    int **lagged = rp_calloc(cap, sizeof *lagged);   // a riding draft's lag and the rows, when it lags
    for (int i = 0; i < n; i++)
        if (draft_rides(group[i])) {
            spec_draft *d = group[i]->draft;
            seqs[n_all] = &d->seq, feeds[n_all] = feeds[i], counts[n_all] = counts[i];
            if (d->n_lag) {
                lagged[i] = rp_malloc(sizeof(int) * (size_t)(d->n_lag + counts[i]));
                memcpy(lagged[i], d->lag, sizeof(int) * (size_t)d->n_lag);
                memcpy(lagged[i] + d->n_lag, feeds[i], sizeof(int) * (size_t)counts[i]);
                feeds[n_all] = lagged[i], counts[n_all] += d->n_lag;
            }
            total += counts[n_all];
            req[n_all++] = (sample_row){.p = &greedy, .n_top = -1, .id = -1};
        }
    logit_edit *edits = rp_malloc(sizeof *edits * (size_t)(n_edits ? n_edits : 1));
    n_edits = 0;
    for (int i = 0; i < n; i++) {
        gen_seq *s = group[i];
        req[i] = (sample_row){.p = &greedy, .n_top = -1, .id = -1};
        if (counts[i] < s->n_feed || s->max_new == 0) continue;   // nothing to draw (yet): a greedy row, ignored
        req[i].p = &s->smp->p, req[i].uniform = sampler_uniform(s->smp);
        req[i].edits = edits + n_edits, req[i].n_edits = sampler_edits(s->smp, s->bias_id, s->bias, s->n_bias, edits + n_edits);
        n_edits += req[i].n_edits;
        if (s->logprobs >= 0) req[i].n_top = s->logprobs, req[i].lp = &s->lp;
    }
    int rc;
    if (!all_rows) rc = forward_sample(m, seqs, n_all, feeds, counts, req, stats, err);
    else {
        float *logits = rp_malloc(sizeof(float) * (size_t)total * vocab);
        rc = forward(m, seqs, n_all, feeds, counts, 1, logits, stats, err);
        for (int i = 0, row0 = 0; i < n && !rc; row0 += counts[i], i++) {
            memcpy(group[i]->rows_out, logits + (size_t)row0 * vocab, sizeof(float) * (size_t)counts[i] * vocab);
            sample_rows_host(logits + (size_t)(row0 + counts[i] - 1) * vocab, vocab, &req[i], 1, NULL, NULL);
        }
        free(logits);
    }
    for (int i = 0; i < n; i++) {
        gen_seq *s = group[i];
        if (rc) {
            s->state = GEN_FAILED;
            continue;
        }
        int fed = counts[i];
        ids[i] = -1;
        if (fed < s->n_feed) s->feed += fed, s->n_feed -= fed;
        else if (s->max_new == 0) s->n_feed = 0, s->state = GEN_LENGTH;
        else {
            ids[i] = req[i].id;
            sampler_record(s->smp, ids[i]);
            gen_take(m, s, ids[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        if (!rc && lagged[i]) group[i]->draft->n_lag = 0;
        free(lagged[i]);
    }
    free(seqs), free(feeds), free(counts), free(req), free(edits), free(lagged);
    return rc;
}

int generate_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err) {
    size_t cap = n > 0 ? (size_t)n : 1;
    gen_seq **last = rp_malloc(sizeof *last * cap), **every = rp_malloc(sizeof *every * cap), **spec = rp_malloc(sizeof *spec * cap);
    int *ids = rp_malloc(sizeof(int) * cap), n_last = 0, n_every = 0, n_spec = 0, rc = 0;
    for (int i = 0; i < n; i++)
        if (g[i]->state == GEN_RUNNING && g[i]->n_feed > 0) {
            g[i]->n_drawn = 0;
            if (g[i]->rows_out) every[n_every++] = g[i];
            else if (spec_tokens_now(g[i]) > 0) spec[n_spec++] = g[i];
            else last[n_last++] = g[i];
        }
    rp_err second, third;
    if (n_last) rc = run_group(m, last, n_last, 0, ids, stats, err);
    if (n_every && run_group(m, every, n_every, 1, ids, stats, rc ? &second : err)) rc = -1;
    if (n_spec && spec_step(m, spec, n_spec, stats, rc ? &third : err)) rc = -1;
    int running = 0;
    for (int i = 0; i < n; i++) running += g[i]->state == GEN_RUNNING;
    free(last), free(every), free(spec), free(ids);
    return rc ? -1 : running;
}
