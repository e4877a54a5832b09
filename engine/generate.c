// One generation step for a batch of sequences (generate.h): feed, draw, stop rules.
#include "engine/generate.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

void gen_begin(gen_seq *g, sequence *seq, sampler *smp, const int *ids, int n, int max_new) {
    memset(g, 0, sizeof *g);
    g->seq = seq, g->smp = smp, g->feed = ids, g->n_feed = n, g->max_new = max_new;
    g->extra_eos = -1, g->next = -1;
    g->state = max_new == 0 ? GEN_LENGTH : GEN_RUNNING;
}

int gen_is_eos(const model_config *c, int extra, int id) {
    if (extra >= 0 && id == extra) return 1;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

static int same_params(const sampler_params *a, const sampler_params *b) {
    return a->temp == b->temp && a->top_k == b->top_k && a->top_p == b->top_p && a->min_p == b->min_p &&
           a->repeat_penalty == b->repeat_penalty && a->frequency_penalty == b->frequency_penalty &&
           a->presence_penalty == b->presence_penalty;
}

void gen_take(const model *m, gen_seq *g, int id) {
    g->next = id;
    if (id < 0) {
        g->state = GEN_NOT_FINITE;
        return;
    }
    g->n_generated++;
    g->feed = &g->next, g->n_feed = 1;
    const kv_cache *kc = &g->seq->cache;
    if (!g->ignore_eos && gen_is_eos(&m->cfg, g->extra_eos, id)) g->state = GEN_EOS;
    else if (g->max_new >= 0 && g->n_generated >= g->max_new) g->state = GEN_LENGTH;
    else if (kc->n_past + 1 > kc->capacity) g->state = GEN_CONTEXT_FULL;
}

int generate_step(model *m, gen_seq *const *g, int n, forward_stats *stats, rp_err *err) {
    int vocab = m->cfg.vocab_size, n_run = 0, on_host = 0;
    size_t cap = n > 0 ? (size_t)n : 1;
    sequence **seqs = rp_malloc(sizeof *seqs * cap);
    const int **feeds = rp_malloc(sizeof *feeds * cap);
    int *counts = rp_malloc(sizeof(int) * cap), *ids = rp_malloc(sizeof(int) * cap);
    sampler **smp = rp_malloc(sizeof *smp * cap);
    gen_seq **run = rp_malloc(sizeof *run * cap);
    for (int i = 0; i < n; i++) {
        if (g[i]->state != GEN_RUNNING) continue;
        gen_seq *s = g[i];
        // a sequence that needs its logits, or draws by parameters of its own, is drawn on the host
        on_host |= s->n_bias > 0 || s->logits_out != NULL || (n_run && !same_params(&s->smp->p, &run[0]->smp->p));
        run[n_run] = s, seqs[n_run] = s->seq, feeds[n_run] = s->feed, counts[n_run] = s->n_feed, smp[n_run] = s->smp;
        n_run++;
    }
    int rc = 0;
    if (n_run && !on_host) rc = forward_sample(m, seqs, n_run, feeds, counts, smp, ids, stats, err);
    else if (n_run) {
        float *logits = rp_malloc(sizeof(float) * (size_t)n_run * vocab), *biased = NULL;
        rc = forward(m, seqs, n_run, feeds, counts, 0, logits, stats, err);
        for (int i = 0; i < n_run && !rc; i++) {
            gen_seq *s = run[i];
            const float *row = logits + (size_t)i * vocab;
            if (s->logits_out) memcpy(s->logits_out, row, sizeof(float) * (size_t)vocab);
            if (s->n_bias) {
                if (!biased) biased = rp_malloc(sizeof(float) * (size_t)vocab);
                memcpy(biased, row, sizeof(float) * (size_t)vocab);
                for (int b = 0; b < s->n_bias; b++) biased[s->bias_id[b]] += s->bias[b];
                row = biased;
            }
            ids[i] = sampler_sample(s->smp, row);
        }
        free(logits), free(biased);
    }
    int running = 0;
    for (int i = 0; i < n_run && !rc; i++) gen_take(m, run[i], ids[i]);
    for (int i = 0; i < n; i++) running += g[i]->state == GEN_RUNNING;
    free(seqs), free(feeds), free(counts), free(ids), free(smp), free(run);
    return rc ? -1 : running;
}
