// Self-speculative decoding (speculative.h): a draft schedule proposes, the target schedule verifies in one pass.
#include "engine/speculative.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(GEN_MAX_DRAWN == SPEC_MAX_TOKENS + 1, "a step draws the draft's proposals and one more");

int spec_draft_init(spec_draft *d, model *m, const schedule *sched, int capacity, int k, uint64_t seed, rp_err *err) {
    memset(d, 0, sizeof *d);
    if (k < 0 || k > SPEC_MAX_TOKENS)
        return rp_fail(err, "--draft-tokens %d: a draft proposes 1 to %d ids a step (0: adapted)", k, SPEC_MAX_TOKENS);
    if (sequence_init(&d->seq, m, sched, capacity, err)) return rp_wrap(err, "the draft");
    d->fixed_k = k, d->k = k ? k : SPEC_START_TOKENS;
    d->rng = seed ^ 0xd1b54a32d192ed03ull;
    size_t vocab = (size_t)m->cfg.vocab_size;
    d->q = rp_malloc(sizeof(float) * SPEC_MAX_TOKENS * vocab);
    d->p = rp_malloc(sizeof(float) * vocab);
    return 0;
}

void spec_draft_free(spec_draft *d, model *m) {
    if (!d->q) return;
    sequence_free(&d->seq, m);
    free(d->q), free(d->p);
    sampler_history_free(&d->saved);
    memset(d, 0, sizeof *d);
}

void spec_draft_rewind(spec_draft *d, int n_past) {
    kv_cache *c = &d->seq.cache;
    if (n_past == 0) d->stale = 0, d->n_lag = 0, c->n_past = 0;   // a fresh start
    else if (d->stale) return;
    else if (n_past <= c->n_past) c->n_past = n_past, d->n_lag = 0;
    else if (n_past <= c->n_past + d->n_lag) d->n_lag = n_past - c->n_past;   // the first of its lag
    else d->stale = 1;   // the target holds positions the draft never saw
}

int spec_tokens_now(const gen_seq *g) {
    const spec_draft *d = g->draft;
    if (!d || d->stale || g->state != GEN_RUNNING || g->n_feed != 1 || g->n_generated == 0 || g->feed[0] != g->next ||
        g->max_new == 0 || g->rows_out || g->logprobs >= 0)   // (log-probabilities: ordinary steps)
        return 0;
    const kv_cache *t = &g->seq->cache, *dc = &d->seq.cache;
    if (dc->n_past + d->n_lag != t->n_past) return 0;   // not in step with the target
    int k = d->k;
    if (g->max_new > 0 && g->max_new - g->n_generated - 1 < k) k = g->max_new - g->n_generated - 1;
    int ctx = g->ctx > 0 ? g->ctx : t->capacity;   // the verifying pass feeds K + 1 rows, the draft's K + n_lag
    if (ctx > t->capacity) ctx = t->capacity;
    if (ctx - t->n_past - 1 < k) k = ctx - t->n_past - 1;
    if (dc->capacity - dc->n_past - d->n_lag < k) k = dc->capacity - dc->n_past - d->n_lag;
    return k > 0 ? k : 0;
}

// Draws from a distribution (vocab probabilities summing to about 1) with uniform u: the first id whose running sum
// passes u times the total.
static int draw_from(const float *probs, int vocab, float u) {
    double total = 0, cum = 0;
    int last = -1;
    for (int i = 0; i < vocab; i++)
        if (probs[i] > 0) total += probs[i], last = i;
    if (last < 0) return -1;
    double r = (double)u * total;
    for (int i = 0; i < vocab; i++)
        if (probs[i] > 0 && r < (cum += probs[i])) return i;
    return last;
}

int spec_accept_or_replace(const float *p, const float *q, int vocab, int d, float u, float u2, int *accepted) {
    *accepted = (double)u * q[d] < p[d];   // u < p(d) / q(d), without dividing by a q of 0
    if (*accepted) return d;
    double total = 0;
    for (int i = 0; i < vocab; i++) total += p[i] > q[i] ? p[i] - q[i] : 0;
    if (total <= 0) return argmax(p, vocab);   // p = q: never rejected but for rounding
    double r = (double)u2 * total, cum = 0;
    int last = argmax(p, vocab);
    for (int i = 0; i < vocab; i++)
        if (p[i] > q[i]) {
            cum += p[i] - q[i], last = i;
            if (r < cum) return i;
        }
    return last;
}

// Row `row` with g's edits (logit_bias; penalties from its sampler's history as it now stands) into out.
static void edited_row(const gen_seq *g, const float *row, int vocab, float *out, logit_edit *edits) {
    memcpy(out, row, sizeof(float) * (size_t)vocab);
    int n = sampler_edits(g->smp, g->bias_id, g->bias, g->n_bias, edits);
    for (int e = 0; e < n; e++) out[edits[e].id] = logit_edit_apply(&edits[e], out[edits[e].id]);
}

static int edits_room(const gen_seq *g, int extra) { return sampler_edits_max(g->smp, g->n_bias) + extra + 1; }

int spec_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err) {
    int vocab = m->cfg.vocab_size, rc = 0, most = 0;
    size_t cap = (size_t)n, vsz = sizeof(float) * (size_t)vocab;
    int *k = rp_malloc(sizeof(int) * cap), *props = rp_calloc(cap * SPEC_MAX_TOKENS, sizeof(int)), *n_props = rp_calloc(cap, sizeof(int));
    sequence **seqs = rp_malloc(sizeof *seqs * cap);
    const int **feeds = rp_malloc(sizeof *feeds * cap);
    int *counts = rp_malloc(sizeof(int) * cap), *who = rp_malloc(sizeof(int) * cap);
    int (*first)[3] = rp_malloc(sizeof *first * cap);   // the first draft pass's rows: the lag, then the pending id
    float *logits = rp_malloc(vsz * (cap * (SPEC_MAX_TOKENS + 1))), *edited = rp_malloc(vsz);
    struct prob_id *work = rp_malloc(sizeof *work * (size_t)vocab);
    int room = 1;
    for (int i = 0; i < n; i++) {
        k[i] = spec_tokens_now(g[i]), most = k[i] > most ? k[i] : most;
        room = edits_room(g[i], SPEC_MAX_TOKENS) > room ? edits_room(g[i], SPEC_MAX_TOKENS) : room;
        spec_draft *d = g[i]->draft;
        if (sampler_has_penalties(&g[i]->smp->p)) sampler_history_copy(&d->saved, &g[i]->smp->seen);
    }
    logit_edit *edits = rp_malloc(sizeof *edits * (size_t)room);

    // The drafts' passes: pass j feeds each draft still proposing its last proposal (pass 0: its lag and the
    // target's pending id) and draws its next proposal from the last row, greedily or from its distribution q.
    for (int j = 0; j < most && !rc; j++) {
        int n_run = 0;
        for (int i = 0; i < n; i++) {
            spec_draft *d = g[i]->draft;
            if (n_props[i] < j || j >= k[i]) continue;   // done proposing (its k, or a row that was not finite)
            if (j == 0) {
                memcpy(first[i], d->lag, sizeof(int) * (size_t)d->n_lag);
                first[i][d->n_lag] = g[i]->next;
                feeds[n_run] = first[i], counts[n_run] = d->n_lag + 1;
            } else feeds[n_run] = &props[i * SPEC_MAX_TOKENS + j - 1], counts[n_run] = 1;
            seqs[n_run] = &d->seq, who[n_run++] = i;
        }
        if (!n_run) break;
        if ((rc = forward(m, seqs, n_run, feeds, counts, 0, logits, stats, err))) break;
        for (int r = 0; r < n_run; r++) {
            int i = who[r];
            gen_seq *s = g[i];
            spec_draft *d = s->draft;
            if (j == 0) d->n_lag = 0;
            edited_row(s, logits + (size_t)r * vocab, vocab, edited, edits);
            float *q = d->q + (size_t)j * vocab;
            if (sampler_distribution(&s->smp->p, edited, vocab, work, q)) continue;   // not finite: no more proposals
            int id = s->smp->p.temp > 0 ? draw_from(q, vocab, rng_uniform(&d->rng)) : argmax(q, vocab);
            if (id < 0) continue;
            props[i * SPEC_MAX_TOKENS + j] = id, n_props[i] = j + 1;
            sampler_record(s->smp, id);   // the next rows' penalties see it (undone below)
        }
    }

    // The targets' verifying pass: the pending id and the proposals, every row's logits.
    int *rows = rp_malloc(sizeof(int) * cap * (SPEC_MAX_TOKENS + 1)), total = 0;
    for (int i = 0; i < n && !rc; i++) {
        rows[total] = g[i]->next;
        memcpy(&rows[total + 1], &props[i * SPEC_MAX_TOKENS], sizeof(int) * (size_t)n_props[i]);
        seqs[i] = g[i]->seq, feeds[i] = &rows[total], counts[i] = n_props[i] + 1, total += counts[i];
    }
    if (!rc) rc = forward(m, seqs, n, feeds, counts, 1, logits, stats, err);

    for (int i = 0, row0 = 0; i < n; row0 += rc ? 0 : counts[i], i++) {
        gen_seq *s = g[i];
        spec_draft *d = s->draft;
        if (sampler_has_penalties(&s->smp->p)) sampler_history_copy(&s->smp->seen, &d->saved);
        if (rc) {
            s->state = GEN_FAILED;
            continue;
        }
        // The rule, row by row: row r holds the target's logits after the pending id and proposals 1..r.
        int ids[GEN_MAX_DRAWN], n_ids = 0, np = n_props[i];
        const int *prop = &props[i * SPEC_MAX_TOKENS];
        for (int r = 0; r <= np; r++) {
            edited_row(s, logits + (size_t)(row0 + r) * vocab, vocab, edited, edits);
            int id;
            if (s->smp->p.temp <= 0) {
                id = sampler_pick(&s->smp->p, edited, vocab, 0, work);
                ids[n_ids++] = id;
                if (r == np || id != prop[r]) break;
            } else {
                if (sampler_distribution(&s->smp->p, edited, vocab, work, d->p)) {
                    ids[n_ids++] = -1;   // not finite: gen_take says so
                    break;
                }
                if (r == np) {
                    ids[n_ids++] = draw_from(d->p, vocab, sampler_uniform(s->smp));
                    break;
                }
                int kept;
                float u = sampler_uniform(s->smp), u2 = sampler_uniform(s->smp);
                id = spec_accept_or_replace(d->p, d->q + (size_t)r * vocab, vocab, prop[r], u, u2, &kept);
                ids[n_ids++] = id;
                if (!kept) break;
            }
            sampler_record(s->smp, id);   // (the accepted proposal, for the next row's penalties; undone below)
        }
        if (sampler_has_penalties(&s->smp->p)) sampler_history_copy(&s->smp->seen, &d->saved);
        // The ids drawn, in order, through the stop rules; the target's KV holds the pending id and each id fed
        // after it, the draft's what it was fed of them.
        kv_cache *t = &s->seq->cache;
        int p0 = t->n_past - counts[i], used = 0;
        for (int r = 0; r < n_ids && s->state == GEN_RUNNING; r++) {
            t->n_past = p0 + 1 + r;
            sampler_record(s->smp, ids[r]);
            gen_take(m, s, ids[r]);
            used++;
        }
        int accepted = n_ids - 1 < np ? n_ids - 1 : np;   // proposals kept (the last id is the target's own)
        d->steps++, d->proposed += np, d->accepted += accepted;
        if (!d->fixed_k) d->k = accepted == np ? (d->k + 2 < SPEC_MAX_TOKENS ? d->k + 2 : SPEC_MAX_TOKENS) : (d->k > 1 ? d->k - 1 : 1);
        // the draft was fed the pending id and proposals 1..np-1: it holds positions up to p0 + np
        kv_cache *dc = &d->seq.cache;
        int committed = t->n_past;   // p0 + used: the pending id and the ids before the last drawn
        if (dc->n_past >= committed) dc->n_past = committed, d->n_lag = 0;
        else {   // all np accepted and the target's own drawn: the draft lacks the last proposal
            d->n_lag = committed - dc->n_past;
            if (d->n_lag > 2) d->stale = 1, d->n_lag = 0;
            else
                for (int l = 0; l < d->n_lag; l++) d->lag[l] = ids[dc->n_past - p0 - 1 + l];
        }
    }
    free(k), free(props), free(n_props), free(seqs), free(feeds), free(counts), free(who), free(first), free(logits);
    free(edited), free(work), free(edits), free(rows);
    return rc;
}
