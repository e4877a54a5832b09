// Evaluating a sweep: every config on every probe item, sharing work between configs, results into the database.
//
// Per prompt: the base model runs first, in segments that end where configs leave it. A config whose schedule
// begins with the base's first L visits (rys:I,J begins with 0..J-1) takes the base's hidden state after visit L
// and copies its KV slots 0..L-1, so only its remaining visits run for the prompt. Then all configs of the prompt
// decode together, one forward step for all of them, so a layer's weights are read once per step for every
// config that visits it next (engine/README.md, the forward pass). Replies are scored and committed one by one as each config finishes.
#include "tools/sweep/run.h"
#include "engine/speculative.h"
#include "loader/alloc.h"

#include "engine/generate.h"
#include "loader/model_dir.h"
#include "engine/sampler.h"
#include "tools/common/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sweep_prompt_ids(const sweep_run *r, const char *text, int **ids, int *n, rp_err *err) {
    if (r->ct.family == CHAT_NONE) return tokenizer_encode(r->tok, text, strlen(text), 1, ids, n, err);
    chat_message msgs[2];
    int k = 0;
    if (r->system) msgs[k++] = (chat_message){"system", r->system};
    msgs[k++] = (chat_message){"user", text};
    char *rendered = chat_render(&r->ct, msgs, k, 1);
    int rc = tokenizer_encode(r->tok, rendered, strlen(rendered), 0, ids, n, err);
    free(rendered);
    return rc;
}

// Leading visits a schedule shares with base (0, 1, 2, ...).
static int shared_prefix(const schedule *s, int n_layers) {
    int v = 0;
    while (v < s->n_visits && v < n_layers && s->layer[v] == v) v++;
    return v;
}

volatile sig_atomic_t sweep_stop_requested;

// The rate counts only the rows this run made (not those a resumed sweep found done), and the ETA is the rows left
// at that rate.
static void report_progress(sweep_run *r, double t0) {
    if (!r->progress) return;
    double el = rp_now_s() - t0, frac = r->rows_total ? (double)r->rows_done / r->rows_total : 1;
    int n_items = 0;
    for (int p = 0; p < r->n_probes; p++) n_items += sweep_step_items(r, &r->now, p);
    long made = r->rows_done - r->rows_at_start;
    double rows_per_s = el > 0 ? made / el : 0;
    double cfg_per_hour = n_items ? rows_per_s / n_items * 3600 : 0;
    double eta = rows_per_s > 0 ? (r->rows_total - r->rows_done) / rows_per_s : 0;
    if (r->progress == 2) {
        char bar[31];
        int f = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < f ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %5.1f%% %ld/%ld rows, %.0f configs/hour, ETA %.0f s   ", bar, 100 * frac, r->rows_done,
                r->rows_total, cfg_per_hour, eta);
    } else
        fprintf(stderr, "sweep: %ld/%ld rows (%.1f%%), %.0f configs/hour, ETA %.0f s\n", r->rows_done, r->rows_total,
                100 * frac, cfg_per_hour, eta);
}

// One batch of configs on one item: sequences already prefilled, logits given; decode (or score options), commit.
typedef struct {
    int cfg;          // index into the step's configs
    sequence seq;
    int *reply;
    int n_reply, done;
} slot;

// Commits the slot's row: *given when the score is known (options, log-likelihood), else the score of the reply,
// read as the continuation of the prompt's ids (a reply's first space is its own).
static int finish(sweep_run *r, const probe *p, const probe_item *it, slot *s, const double *given, const int *prompt,
                  int n_prompt, rp_err *err) {
    double score = given ? *given : 0;
    char *text = NULL;
    size_t tl;
    if (!given) {
        if (tokenizer_decode_after(r->tok, prompt, n_prompt, s->reply, s->n_reply, 1, &text, &tl, err)) return -1;
        score = probe_score_reply(p, it, text);
    }
    int rc = sweep_db_add_result(r->db, r->now.config_ids[s->cfg], p->name, it->id, score, text, err);
    free(text);
    s->done = 1;
    r->rows_done++;
    if (rc) r->db_failed = 1;
    return rc;
}

// A (config, item) that cannot be scored: recorded with its reason and counted, so the sweep goes on. Only a
// database write that fails is an error (then r->db_failed is set and the sweep stops).
static int fail_row(sweep_run *r, const probe *p, const probe_item *it, int cfg, const char *reason, rp_err *err) {
    r->rows_done++;
    r->rows_failed++;
    if (r->progress && r->rows_failed <= 5)
        fprintf(stderr, "%ssweep: %s item %s, config %s: failed: %s%s\n", r->progress == 2 ? "\n" : "", p->name, it->id,
                r->now.configs->c[cfg].label, reason, r->rows_failed == 5 ? " (further failures: summary.json)" : "");
    int rc = sweep_db_add_failure(r->db, r->now.config_ids[cfg], p->name, it->id, reason, err);
    if (rc) r->db_failed = 1;
    return rc;
}

static int fail_slot(sweep_run *r, const probe *p, const probe_item *it, slot *s, const char *reason, rp_err *err) {
    s->done = 1;
    return fail_row(r, p, it, s->cfg, reason, err);
}

// ll[i] = log P(text | prompt) for every config's slot at once: the text's first token from the prompt's logits, the
// later ones fed after the prompt (the cache rewound to the prompt first, so a call can follow another).
static int text_loglik(sweep_run *r, const probe *p, const probe_item *it, slot *slots, int n, const float *prompt_logits,
                       int n_prompt, const char *text, const char *what, double *ll, rp_err *err) {
    int vocab = r->m->cfg.vocab_size, rc = 0, *ids, n_ids;
    if (tokenizer_encode(r->tok, text, strlen(text), 0, &ids, &n_ids, err)) return -1;
    if (n_ids == 0) {
        free(ids);
        return rp_fail(err, "%s item %s: %s is empty after tokenization", p->name, it->id, what);
    }
    for (int i = 0; i < n; i++) ll[i] = log_prob_of(prompt_logits + (size_t)i * vocab, vocab, ids[0]);
    if (n_ids > 1) {
        int m = n_ids - 1;
        float *lg = rp_malloc(sizeof(float) * (size_t)n * m * vocab);
        sequence **seqs = rp_malloc(sizeof *seqs * n);
        const int **feeds = rp_malloc(sizeof *feeds * n);
        int *counts = rp_malloc(sizeof(int) * n);
        for (int i = 0; i < n; i++) seqs[i] = &slots[i].seq, feeds[i] = ids, counts[i] = m, slots[i].seq.cache.n_past = n_prompt;
        rc = forward(r->m, seqs, n, feeds, counts, 1, lg, &r->stats, err);
        for (int i = 0; i < n && !rc; i++)
            for (int t = 1; t < n_ids; t++) ll[i] += log_prob_of(lg + ((size_t)i * m + (t - 1)) * vocab, vocab, ids[t]);
        free(lg), free(seqs), free(feeds), free(counts);
    }
    free(ids);
    return rc;
}

// Multiple choice: the log-likelihood of each option after the prompt, every config at once; the best option scores
// 1 when it is the answer.
static int score_options(sweep_run *r, const probe *p, const probe_item *it, slot *slots, int n, const float *prompt_logits,
                         int n_prompt, rp_err *err) {
    int rc = 0;
    double *best = rp_malloc(sizeof(double) * n), *ll = rp_malloc(sizeof(double) * n);
    int *pick = rp_calloc((size_t)n, sizeof(int));
    for (int o = 0; o < it->n_options && !rc; o++) {
        char what[32];
        snprintf(what, sizeof what, "option %d", o);
        rc = text_loglik(r, p, it, slots, n, prompt_logits, n_prompt, it->options[o], what, ll, err);
        for (int i = 0; i < n && !rc; i++)
            if (o == 0 || ll[i] > best[i]) best[i] = ll[i], pick[i] = o;
    }
    int answer = atoi(it->answer);
    for (int i = 0; i < n && !rc; i++) {
        double score = pick[i] == answer ? 1.0 : 0.0;
        rc = !isfinite(best[i]) ? fail_slot(r, p, it, &slots[i], "non-finite logits (NaN or infinity) scoring the options", err)
                                : finish(r, p, it, &slots[i], &score, NULL, 0, err);
    }
    free(best), free(ll), free(pick);
    return rc;
}

// --score loglik: the log-probability of the reference answer after the prompt, one forward and no decoding (a
// screening score with no sampling noise: higher is better).
static int score_answer(sweep_run *r, const probe *p, const probe_item *it, slot *slots, int n, const float *prompt_logits,
                        int n_prompt, rp_err *err) {
    double *ll = rp_malloc(sizeof(double) * n);
    int rc = text_loglik(r, p, it, slots, n, prompt_logits, n_prompt, it->answer, "the answer", ll, err);
    for (int i = 0; i < n && !rc; i++)
        rc = !isfinite(ll[i]) ? fail_slot(r, p, it, &slots[i], "non-finite logits (NaN or infinity) scoring the answer", err)
                              : finish(r, p, it, &slots[i], &ll[i], NULL, 0, err);
    free(ll);
    return rc;
}

// Greedy decoding of all slots together until each stops: one generation step feeds every running slot its token,
// and the next ids come back chosen where the backend samples (on the GPU for the CUDA backend).
static int decode(sweep_run *r, const probe *p, const probe_item *it, slot *slots, int n, const int *prompt, int n_prompt,
                  const float *logits, int eot, rp_err *err) {
    int vocab = r->m->cfg.vocab_size, rc = 0;
    sampler greedy;
    sampler_params gp = {.temp = 0};
    sampler_init(&greedy, &gp, vocab);
    gen_seq *gs = rp_malloc(sizeof *gs * n), **g = rp_malloc(sizeof *g * n);
    unsigned char *drew = rp_calloc((size_t)n, 1);   // the slots that drew an id (or failed to) since last looked at
    for (int i = 0; i < n; i++) {   // the first id from the prefill's logits
        gen_begin(&gs[i], &slots[i].seq, &greedy, NULL, 0, probe_item_max_new(p, it));
        gs[i].extra_eos = eot;
        if (!slots[i].done) gen_take(r->m, &gs[i], sampler_sample(&greedy, logits + (size_t)i * vocab)), drew[i] = 1;
        g[i] = &gs[i];
    }
    for (int running = 1; running && !rc;) {
        for (int i = 0; i < n && !rc; i++) {   // what each slot drew: a reply token, its end, or a failure
            slot *s = &slots[i];
            if (!drew[i]) continue;
            drew[i] = 0;
            if (gs[i].state == GEN_NOT_FINITE) {
                char why[96];
                snprintf(why, sizeof why, "non-finite logits (NaN or infinity) after %d reply tokens", s->n_reply);
                rc = fail_slot(r, p, it, s, why, err);
            } else if (gs[i].state == GEN_EOS) rc = finish(r, p, it, s, NULL, prompt, n_prompt, err);
            else {
                s->reply[s->n_reply++] = gs[i].next;
                if (gs[i].state != GEN_RUNNING) rc = finish(r, p, it, s, NULL, prompt, n_prompt, err);
            }
        }
        running = 0;
        for (int i = 0; i < n && !rc; i++) {
            if (slots[i].done && gs[i].state == GEN_RUNNING) gs[i].state = GEN_STOPPED;
            if (gs[i].state == GEN_RUNNING) drew[i] = 1, running++;
        }
        if (running && !rc && generate_step(r->m, g, n, &r->stats, err) < 0) rc = -1;
    }
    free(drew);
    free(gs), free(g);
    sampler_free(&greedy);
    return rc;
}

static int compare_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// Runs the slots' prompts: each from visit from[i] (with the base's hidden state there - snap_of[i] on the host, or
// the backend's stash from row stash_of[i] - and its KV slots before it) or from the start; returns their
// last-token logits.
static int prefill(sweep_run *r, slot *slots, int n, const int *ids, int P, const int *from, float *const *snap_of,
                   const long *stash_of, float *logits, rp_err *err) {
    int dim = r->m->cfg.dim;
    sequence **seqs = rp_malloc(sizeof *seqs * n);
    const int **feeds = rp_malloc(sizeof *feeds * n);
    int *counts = rp_malloc(sizeof(int) * n);
    float *hidden = stash_of ? NULL : rp_malloc(sizeof(float) * (size_t)n * P * dim);
    for (int i = 0; i < n; i++) {
        seqs[i] = &slots[i].seq, feeds[i] = ids, counts[i] = P;
        if (from[i] > 0 && !stash_of) memcpy(hidden + (size_t)i * P * dim, snap_of[i], sizeof(float) * (size_t)P * dim);
    }
    forward_span span = {.from_visit = from, .hidden_in = hidden, .to_visit = -1, .stash_in = stash_of, .stash_out = -1};
    int rc = forward_span_run(r->m, seqs, n, feeds, counts, &span, 0, logits, &r->stats, err);
    free(seqs), free(feeds), free(counts), free(hidden);
    return rc;
}

// Every config of the batch that has no row yet fails with the reason (a model error mid-batch).
static int fail_unfinished(sweep_run *r, const probe *p, const probe_item *it, slot *slots, int n, const char *reason, rp_err *err) {
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (!slots[i].done) rc = fail_slot(r, p, it, &slots[i], reason, err);
    return rc;
}

// --score acceptance: each pending config drafts (engine/speculative.h) for r->target while the target decodes the
// item's greedy reply (the configs of a batch together, each with its own target sequence); the row's score is the
// speed-up per token in visits, (accepted + steps) x target visits / (proposed x draft visits + steps x target
// visits) over the speculative steps - the tokens a step gives over what its K draft passes and one verifying pass
// cost, against a visit a layer for a plain step - 1 when no step was speculative. The prompt (fed to both) is not
// counted. With plain_s > 0 (--timed: one config a batch), the score is measured instead: plain_s, the target's
// decoding alone, over this decoding's seconds (prompt included in both). Its text: the draft's counts.
// pending NULL (n = 1): the target alone, its seconds into *plain_out (nothing committed).
static int accept_batch(sweep_run *r, const probe *p, const probe_item *it, const int *pending, int n, const int *ids, int P,
                        int eot, double plain_s, double *plain_out, rp_err *err) {
    const config_list *cl = r->now.configs;
    int ctx = P + probe_item_max_new(p, it), rc = 0, made = 0, failed = 0;
    sequence *seqs = rp_calloc((size_t)n, sizeof *seqs);
    spec_draft *drafts = rp_calloc((size_t)n, sizeof *drafts);
    gen_seq *gs = rp_calloc((size_t)n, sizeof *gs), **g = rp_malloc(sizeof *g * (size_t)n);
    sampler greedy;
    sampler_params gp = {.temp = 0};
    sampler_init(&greedy, &gp, r->m->cfg.vocab_size);
    rp_err merr;
    for (; made < n && !failed; made++) {
        failed = sequence_init(&seqs[made], r->m, &r->target, ctx, &merr);
        if (!failed && pending &&
            (failed = spec_draft_init(&drafts[made], r->m, &cl->c[pending[made]].sched, ctx, r->draft_tokens, 0, &merr)))
            sequence_free(&seqs[made], r->m);
        if (failed) break;
        gen_begin(&gs[made], &seqs[made], &greedy, ids, P, probe_item_max_new(p, it));
        gs[made].extra_eos = eot, gs[made].draft = pending ? &drafts[made] : NULL;
        g[made] = &gs[made];
    }
    double t0 = rp_now_s();
    while (!failed) {
        int running = generate_step(r->m, g, n, &r->stats, &merr);
        if (running < 0) failed = 1;
        if (running <= 0) break;
    }
    double seconds = rp_now_s() - t0;
    if (!pending) {   // the target alone (--timed's yardstick)
        *plain_out = failed ? 0 : seconds;
        if (failed) *err = merr;
        n = 0, rc = failed ? -1 : 0;
    }
    for (int i = 0; i < n && !rc; i++) {
        if (failed) {
            rc = fail_row(r, p, it, pending[i], merr.msg, err);
            continue;
        }
        const spec_draft *d = &drafts[i];
        double T = r->target.n_visits, D = cl->c[pending[i]].sched.n_visits;
        double score = plain_s > 0 ? plain_s / seconds
                       : d->steps ? (d->accepted + d->steps) * T / (d->proposed * D + d->steps * T) : 1.0;
        char text[160];
        snprintf(text, sizeof text, "%ld of %ld proposals accepted in %ld speculative steps, %d tokens", d->accepted,
                 d->proposed, d->steps, gs[i].n_generated);
        r->rows_done++;
        if ((rc = sweep_db_add_result(r->db, r->now.config_ids[pending[i]], p->name, it->id, score, text, err))) r->db_failed = 1;
    }
    for (int i = 0; i < made; i++) {
        if (pending) spec_draft_free(&drafts[i], r->m);
        sequence_free(&seqs[i], r->m);
    }
    sampler_free(&greedy);
    free(seqs), free(drafts), free(gs), free(g);
    return rc;
}

// Evaluates the item's pending configs. Returns -1 only when the database fails; a problem of the item or of a
// config (a prompt that does not fit, non-finite logits) is recorded as a failed row and the sweep goes on.
static int run_item(sweep_run *r, const probe *p, const probe_item *it, const sweep_prompt *sp, double t0, rp_err *err) {
    const config_list *cl = r->now.configs;
    int *pending = rp_malloc(sizeof(int) * cl->n), n_pending = 0, rc = 0;
    for (int c = 0; c < cl->n; c++)
        if (!sweep_db_has_result(r->db, r->now.config_ids[c], p->name, it->id)) pending[n_pending++] = c;
    if (sp->error) {   // the prompt cannot run: every pending config fails with its reason
        for (int t = 0; t < n_pending && !rc; t++) rc = fail_row(r, p, it, pending[t], sp->error, err);
        free(pending);
        report_progress(r, t0);
        return rc;
    }
    if (!n_pending) {
        free(pending);
        return 0;
    }
    const int *ids = sp->ids;
    int P = sp->n, N = r->m->cfg.n_layers, dim = r->m->cfg.dim, vocab = r->m->cfg.vocab_size;
    int eot;   // a reply ends at the chat template's end of turn when it is one token (no stop strings here)
    const char *eot_text;
    model_dir_end_of_turn(&r->ct, r->tok, &eot, &eot_text);
    rp_err merr;   // a model error: fails the rows it concerns, not the sweep
    if (p->acceptance) {   // drafts for the target: nothing of the base's is shared
        double plain = 0;   // --timed: the target's decoding alone, measured first (a failure fails the item's rows)
        int step = r->timed ? 1 : r->batch;
        if (r->timed && accept_batch(r, p, it, NULL, 1, ids, P, eot, 0, &plain, &merr))
            for (int t = 0; t < n_pending && !rc; t++) rc = fail_row(r, p, it, pending[t], merr.msg, err);
        for (int t = 0; t < n_pending && !rc && (!r->timed || plain > 0); t += step) {
            rc = accept_batch(r, p, it, pending + t, n_pending - t < step ? n_pending - t : step, ids, P, eot, plain, NULL, err);
            report_progress(r, t0);
        }
        free(pending);
        return rc;
    }

    // the base's hidden state at every visit where a config leaves it (none when naive: nothing is shared)
    int *from = rp_calloc((size_t)n_pending, sizeof(int)), *cuts = rp_malloc(sizeof(int) * (n_pending + 1)), n_cuts = 0;
    for (int t = 0; t < n_pending && !r->naive; t++) {
        from[t] = shared_prefix(&cl->c[pending[t]].sched, N);
        if (from[t] > 0) cuts[n_cuts++] = from[t];
    }
    qsort(cuts, n_cuts, sizeof(int), compare_int);
    int w = 0;
    for (int k = 0; k < n_cuts; k++)
        if (!w || cuts[w - 1] != cuts[k]) cuts[w++] = cuts[k];
    n_cuts = w;
    float **snap = rp_calloc((size_t)n_cuts + 1, sizeof *snap);
    slot base = {0};
    schedule base_sched;
    schedule_base(&base_sched, N);
    float *logits = rp_malloc(sizeof(float) * (size_t)(r->batch + 1) * vocab);
    r->pool.used = 0;   // the pool's slots serve this item: the base's, then each batch's
    int base_failed = 0, have_base = 0;
    // the snapshots stay on the device where the backend keeps a stash the plan sized for them (else the host)
    int on_device = n_cuts && r->m->be->stash_rows && r->m->plan.shape.stash_rows >= (long)n_cuts * P;
    r->snapshots_on_device += on_device;
    if (n_cuts) {
        base_failed = sequence_init_pooled(&base.seq, r->m, &base_sched, &r->pool, &merr);
        have_base = !base_failed;
        sequence *b1[1] = {&base.seq};
        const int *feed = ids;
        for (int k = 0; k < n_cuts && !base_failed; k++) {
            if (!on_device) snap[k] = rp_malloc(sizeof(float) * (size_t)P * dim);
            int start = k ? cuts[k - 1] : 0;
            long in_at = (long)(k - 1) * P;   // cut k - 1's rows in the stash
            forward_span span = {.from_visit = &start, .hidden_in = k && !on_device ? snap[k - 1] : NULL, .to_visit = cuts[k],
                                 .hidden_out = on_device ? NULL : snap[k], .stash_in = k && on_device ? &in_at : NULL,
                                 .stash_out = on_device ? (long)k * P : -1};
            base_failed = forward_span_run(r->m, b1, 1, &feed, &P, &span, 0, NULL, &r->stats, &merr);
        }
    }
    if (base_failed)   // without the base's prefix no config of this item can run
        for (int t = 0; t < n_pending && !rc; t++) rc = fail_row(r, p, it, pending[t], merr.msg, err);

    // configs in batches: KV slots before `from` copied from the base, the rest of the prompt run, then decoding
    int step = r->naive ? 1 : r->batch, mark = r->pool.used;
    for (int t0i = 0; t0i < n_pending && !rc && !base_failed; t0i += step) {
        int n = n_pending - t0i < step ? n_pending - t0i : step;
        slot *slots = rp_calloc((size_t)n, sizeof *slots);
        float **snap_of = rp_malloc(sizeof *snap_of * n);
        long *stash_of = rp_malloc(sizeof *stash_of * n);
        int *fr = rp_malloc(sizeof(int) * n), made = 0, failed = 0;
        r->pool.used = mark;
        for (int i = 0; i < n; i++) slots[i].cfg = pending[t0i + i];
        for (int i = 0; i < n && !failed; i++, made++) {
            int c = pending[t0i + i];
            slots[i].reply = rp_malloc(sizeof(int) * (size_t)(probe_item_max_new(p, it) + 1));
            fr[i] = from[t0i + i];
            if ((failed = sequence_init_pooled(&slots[i].seq, r->m, &cl->c[c].sched, &r->pool, &merr))) break;
            snap_of[i] = NULL, stash_of[i] = -1;
            for (int k = 0; k < n_cuts; k++)
                if (cuts[k] == fr[i]) snap_of[i] = snap[k], stash_of[i] = (long)k * P;
            for (int v = 0; v < fr[i]; v++) r->m->be->kv_copy(r->m->be, &slots[i].seq.cache.slots[v], &base.seq.cache.slots[v], P);
        }
        if (!failed) failed = prefill(r, slots, n, ids, P, fr, snap_of, on_device ? stash_of : NULL, logits, &merr);
        if (!failed)
            failed = p->kind == PROBE_MC ? score_options(r, p, it, slots, n, logits, P, &merr)
                     : p->loglik         ? score_answer(r, p, it, slots, n, logits, P, &merr)
                                         : decode(r, p, it, slots, n, ids, P, logits, eot, &merr);
        if (r->db_failed) rc = -1, *err = merr;
        else if (failed) rc = fail_unfinished(r, p, it, slots, n, merr.msg, err);
        for (int i = 0; i < made; i++) sequence_free(&slots[i].seq, r->m), free(slots[i].reply);
        if (made < n) free(slots[made].reply);
        free(slots), free(snap_of), free(stash_of), free(fr);
        report_progress(r, t0);
    }
    if (have_base) sequence_free(&base.seq, r->m);
    for (int k = 0; k < n_cuts; k++) free(snap[k]);
    free(snap), free(cuts), free(from), free(pending), free(logits);
    schedule_free(&base_sched);
    return rc;
}

static int by_visits_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

void sweep_prepare(sweep_run *r, const model_config *cfg, plan_shape *shape) {
    int ctx_max = 1, N = cfg->n_layers, prompt_max = 0;
    r->prompts = rp_calloc((size_t)r->n_probes, sizeof *r->prompts);
    for (int p = 0; p < r->n_probes; p++) {
        const probe *pr = &r->probes[p];
        r->prompts[p] = rp_calloc((size_t)(pr->n_items ? pr->n_items : 1), sizeof **r->prompts);
        for (int i = 0; i < pr->n_items; i++) {
            const probe_item *it = &pr->items[i];
            sweep_prompt *sp = &r->prompts[p][i];
            rp_err e;
            // the reply's room: tokens to decode, or an option's or the answer's text (a token is at least a byte)
            int longest = pr->loglik ? (int)strlen(it->answer) + 1 : probe_item_max_new(pr, it);
            for (int o = 0; o < it->n_options; o++)
                if ((int)strlen(it->options[o]) + 1 > longest) longest = (int)strlen(it->options[o]) + 1;
            if (sweep_prompt_ids(r, it->prompt, &sp->ids, &sp->n, &e)) rp_wrap(&e, "the prompt cannot be tokenized");
            else if (sp->n == 0) rp_fail(&e, "the prompt is empty");
            else if (sp->n + longest > cfg->max_pos)
                rp_fail(&e, "the prompt (%d tokens) and its reply (%d) do not fit the context of %d", sp->n, longest, cfg->max_pos);
            else {
                if (sp->n + longest > ctx_max) ctx_max = sp->n + longest;
                if (sp->n > prompt_max) prompt_max = sp->n;
                continue;
            }
            sp->error = rp_strdup(e.msg);
        }
    }
    if (r->target.n_visits) {   // --score acceptance: a target and a draft a config of the batch, their own KV
        int most = 0;
        for (int c = 0; c < r->configs->n; c++)
            if (r->configs->c[c].sched.n_visits > most) most = r->configs->c[c].sched.n_visits;
        if (r->plan_visits > most) most = r->plan_visits;
        int step = r->naive ? 1 : r->batch, top = most > r->target.n_visits ? most : r->target.n_visits;
        *shape = (plan_shape){.ubatch = r->ubatch, .seqs = 2 * step, .logit_rows = step * (SPEC_MAX_TOKENS + 1),
                              .kv_slots = (long)step * (r->target.n_visits + most), .ctx = ctx_max, .max_visits = top};
        r->pool_slots = 0, r->pool_ctx = ctx_max;
        return;
    }
    // the pool: the base's slots and those of the batch with the most visits
    int n = r->configs->n, step = r->naive ? 1 : r->batch, max_visits = N;
    int *visits = rp_malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int c = 0; c < n; c++) {
        visits[c] = r->configs->c[c].sched.n_visits;
        if (visits[c] > max_visits) max_visits = visits[c];
    }
    qsort(visits, n, sizeof(int), by_visits_desc);
    long slots = r->naive ? 0 : N;
    for (int c = 0; c < n && c < step; c++) slots += visits[c];
    free(visits);
    if (r->plan_visits > 0) {   // a search: any batch of configs of up to plan_visits visits
        if (r->plan_visits > max_visits) max_visits = r->plan_visits;
        slots = (r->naive ? 0 : N) + (long)step * max_visits;
    }
    // the base's snapshots: one a distinct visit where configs leave the base (a search's: any of N)
    long cuts = 0;
    if (!r->naive && r->plan_visits > 0) cuts = N;
    else if (!r->naive) {
        unsigned char *seen = rp_calloc((size_t)N + 1, 1);
        for (int c = 0; c < n; c++) {
            int f = shared_prefix(&r->configs->c[c].sched, N);
            if (f > 0 && !seen[f]) seen[f] = 1, cuts++;
        }
        free(seen);
    }
    *shape = (plan_shape){.ubatch = r->ubatch, .seqs = step, .logit_rows = 0, .kv_slots = slots, .ctx = ctx_max,
                          .max_visits = max_visits, .stash_rows = cuts * prompt_max};
    r->pool_slots = slots, r->pool_ctx = ctx_max;
}

int sweep_name_unrunnable(const sweep_run *r) {
    int n = 0;
    for (int p = 0; r->prompts && p < r->n_probes; p++)
        for (int i = 0; i < r->probes[p].n_items; i++) {
            const char *why = r->prompts[p][i].error;
            if (!why) continue;
            if (n++ < 20) fprintf(stderr, "reprise sweep: probe %s item %s cannot run: %s\n", r->probes[p].name, r->probes[p].items[i].id, why);
        }
    if (n > 20) fprintf(stderr, "reprise sweep: ... and %d more items that cannot run\n", n - 20);
    if (n) fprintf(stderr, "reprise sweep: %d item(s) cannot run: every config records them as failed rows with the reason "
                           "(in summary.json); the others are evaluated\n", n);
    return n;
}

void sweep_prompts_free(sweep_run *r) {
    for (int p = 0; r->prompts && p < r->n_probes; p++) {
        for (int i = 0; i < r->probes[p].n_items; i++) free(r->prompts[p][i].ids), free(r->prompts[p][i].error);
        free(r->prompts[p]);
    }
    free(r->prompts);
    r->prompts = NULL;
}

int sweep_db_add_config(sweep_db *d, const sweep_config *c, int *id, rp_err *err) {
    char *text = schedule_text(&c->sched);   // whole: a schedule of thousands of visits is never cut
    int rc = sweep_db_config(d, c->label, text, c->i, c->j, c->k, c->sched.n_visits, id, err);
    free(text);
    return rc;
}

int sweep_step_items(const sweep_run *r, const sweep_step *st, int p) {
    int n = r->probes[p].n_items;
    return st->items > 0 && st->items < n ? st->items : n;
}

int sweep_run_all(sweep_run *r, const sweep_step *step, rp_err *err) {
    r->now = step ? *step : (sweep_step){r->configs, r->config_ids, 0};
    r->rows_total = 0;
    r->rows_done = 0;
    for (int p = 0; p < r->n_probes; p++)
        for (int i = 0; i < sweep_step_items(r, &r->now, p); i++)
            for (int c = 0; c < r->now.configs->n; c++) {
                r->rows_total++;
                r->rows_done += sweep_db_has_result(r->db, r->now.config_ids[c], r->probes[p].name, r->probes[p].items[i].id);
            }
    double t0 = rp_now_s();
    long already = r->rows_done;
    r->rows_at_start = already;
    r->rows_failed = 0;
    plan_shape shape;
    int prepared_here = !r->prompts;   // a caller that loaded the model itself: prepare now
    if (prepared_here) sweep_prepare(r, &r->m->cfg, &shape);
    int rc = kv_pool_init(&r->pool, r->m->be, (int)r->pool_slots, r->pool_ctx, err);
    for (int p = 0; p < r->n_probes && !rc && !r->timed_out && !r->interrupted; p++)
        for (int i = 0; i < sweep_step_items(r, &r->now, p) && !rc; i++) {
            if (r->deadline > 0 && rp_now_s() >= r->deadline) {
                r->timed_out = 1;
                break;
            }
            if (sweep_stop_requested) {
                r->interrupted = 1;
                break;
            }
            rc = run_item(r, &r->probes[p], &r->probes[p].items[i], &r->prompts[p][i], t0, err);
        }
    kv_pool_free(&r->pool, r->m->be);
    if (prepared_here) sweep_prompts_free(r);
    if (r->progress == 2) fprintf(stderr, "\n");
    if (r->progress)
        fprintf(stderr, "sweep: %ld new rows (%ld were already done) in %.1f s; %ld layer executions for %ld visits%s\n",
                r->rows_done - already, already, rp_now_s() - t0, r->stats.layer_execs, r->stats.visits,
                r->snapshots_on_device ? "; the base's hidden states kept on the device" : "");
    if (r->progress && r->rows_failed)
        fprintf(stderr, "sweep: %ld of the new rows failed and have no score (reasons in summary.json; "
                        "--retry-failed runs them again)\n", r->rows_failed);
    return rc;
}
