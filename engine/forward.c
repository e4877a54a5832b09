// The forward pass over a batch of sequences, each with its own schedule and KV cache.
//
// A sequence alone is run as: embed, then for each visit v, layer schedule[v] against KV slot v, then final norm
// and LM head. A batch runs every sequence through all of its visits too, but sequences whose next visit is the
// same layer share one execution of it, so its weights are read once for all of them (engine/README.md): each
// sequence keeps a cursor into its schedule; repeatedly pick the layer that is the next visit of the most
// sequences (ties: lowest layer), run it for exactly those, and advance their cursors.
#include "engine/forward.h"
#include "loader/alloc.h"

#include "engine/sampler.h"

#include <stdlib.h>
#include <string.h>

static int check_schedule(const model *m, const schedule *sched, int capacity, rp_err *err) {
    if (capacity < 1) return rp_fail(err, "context length %d must be at least 1", capacity);
    if (capacity > m->cfg.max_pos)
        return rp_fail(err, "context length %d exceeds the model's %s %d%s", capacity, config_context_name(&m->cfg),
                       m->cfg.max_pos, m->cfg.sliding_window ? " (reprise's attention is full attention, which equals "
                                                               "sliding-window attention only up to the window)" : "");
    for (int v = 0; v < sched->n_visits; v++)
        if (sched->layer[v] < 0 || sched->layer[v] >= m->cfg.n_layers)
            return rp_fail(err, "schedule visit %d runs layer %d, but the model has %d layers", v, sched->layer[v],
                           m->cfg.n_layers);
    return 0;
}

int sequence_init_pooled(sequence *s, model *m, const schedule *sched, kv_pool *pool, rp_err *err) {
    memset(s, 0, sizeof *s);
    if (check_schedule(m, sched, pool->capacity, err)) return -1;
    kv_slot *slots = kv_pool_take(pool, sched->n_visits, err);
    if (!slots) return -1;
    schedule_copy(&s->sched, sched);
    kv_cache_init_borrowed(&s->cache, slots, sched->n_visits);
    return 0;
}

int sequence_init(sequence *s, model *m, const schedule *sched, int capacity, rp_err *err) {
    memset(s, 0, sizeof *s);
    if (check_schedule(m, sched, capacity, err)) return -1;
    schedule_copy(&s->sched, sched);
    if (kv_cache_init(&s->cache, m->be, sched->n_visits, capacity, err)) {
        schedule_free(&s->sched);
        return -1;
    }
    return 0;
}

void sequence_free(sequence *s, model *m) {
    kv_cache_free(&s->cache, m->be);
    schedule_free(&s->sched);
}

// Picks the layer that is the next visit of the most sequences (ties: lowest layer); -1 when all are done.
static int next_layer(sequence **seqs, int n_seqs, const int *cursor, const int *end, int *count_by_layer, int n_layers) {
    memset(count_by_layer, 0, sizeof(int) * n_layers);
    int best = -1;
    for (int i = 0; i < n_seqs; i++)
        if (cursor[i] < end[i]) count_by_layer[seqs[i]->sched.layer[cursor[i]]]++;
    for (int l = 0; l < n_layers; l++)
        if (count_by_layer[l] && (best < 0 || count_by_layer[l] > count_by_layer[best])) best = l;
    return best;
}

static int run(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, const forward_span *span,
               int all_logits, float *logits, sample_row *sr, forward_stats *stats, rp_err *err);

int forward(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, int all_logits,
            float *logits, forward_stats *stats, rp_err *err) {
    return run(m, seqs, n_seqs, tokens, n_tokens, NULL, all_logits, logits, NULL, stats, err);
}

int forward_span_run(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens,
                     const forward_span *span, int all_logits, float *logits, forward_stats *stats, rp_err *err) {
    return run(m, seqs, n_seqs, tokens, n_tokens, span, all_logits, logits, NULL, stats, err);
}

int forward_sample(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, sample_row *req,
                   forward_stats *stats, rp_err *err) {
    return run(m, seqs, n_seqs, tokens, n_tokens, NULL, 0, NULL, req, stats, err);
}

// One sequence's share of a window of rows.
typedef struct {
    sequence *seq;
    const int *tokens;   // its tokens in this window
    int n;               // how many
    int offset;          // its tokens of this call run in earlier windows: positions start past them
    int prompt;          // the call feeds it several tokens
    int from, end;       // the visits to run
    int out;             // index of its output (logits row or sampled id) when its last row is here, else -1
    int index;           // the sequence's index in the call
} window_seq;

// A window's layer executions, planned before any runs: each execution serves every sequence whose next visit it
// is, each with its own KV slot, its rows gathered in part order with their parts and positions.
typedef struct {
    layer_exec *execs;
    int n_execs;
    visit_part *parts;      // (staged) every execution's parts, one after another
    int *row_part, *row_pos;   // (staged rows) every execution's rows, one after another
} step_layers;

static void plan_layers(const model *m, const window_seq *ws, int n, const int *row0, step_layers *out) {
    int n_layers = m->cfg.n_layers;
    size_t ns = (size_t)n, parts_max = 0, rows_max = 0;
    for (int i = 0; i < n; i++) {
        parts_max += (size_t)(ws[i].end - ws[i].from);
        rows_max += (size_t)ws[i].n * (size_t)(ws[i].end - ws[i].from);
    }
    int *cursor = rp_malloc(sizeof(int) * ns), *end = rp_malloc(sizeof(int) * ns);
    int *count_by_layer = rp_malloc(sizeof(int) * (size_t)n_layers);
    sequence **seqs = rp_malloc(sizeof *seqs * ns);
    for (int i = 0; i < n; i++) cursor[i] = ws[i].from, end[i] = ws[i].end, seqs[i] = ws[i].seq;
    out->execs = rp_malloc(sizeof *out->execs * (parts_max ? parts_max : 1));
    out->parts = rp_malloc(sizeof *out->parts * (parts_max ? parts_max : 1));
    out->row_part = rp_malloc(sizeof(int) * 2 * (rows_max ? rows_max : 1)), out->row_pos = out->row_part + rows_max;
    out->n_execs = 0;
    size_t at_part = 0, at_row = 0;
    for (int layer; (layer = next_layer(seqs, n, cursor, end, count_by_layer, n_layers)) >= 0;) {
        layer_exec *e = &out->execs[out->n_execs++];
        visit_part *parts = out->parts + at_part;
        *e = (layer_exec){.layer = layer, .parts = parts, .row_part = out->row_part + at_row, .row_pos = out->row_pos + at_row};
        for (int i = 0; i < n; i++) {
            sequence *s = seqs[i];
            if (cursor[i] >= end[i] || s->sched.layer[cursor[i]] != layer) continue;
            kv_slot *kv = &s->cache.slots[cursor[i]++];
            visit_part *p = &parts[e->n_parts];
            *p = (visit_part){.row0 = row0[i], .n_rows = ws[i].n, .pos0 = s->cache.n_past + ws[i].offset, .kv = kv,
                              .prompt = ws[i].prompt};
            for (int r = 0; r < p->n_rows; r++) {
                out->row_part[at_row + (size_t)e->n_rows + r] = e->n_parts;
                out->row_pos[at_row + (size_t)e->n_rows + r] = p->pos0 + r;
            }
            e->n_rows += p->n_rows;
            if (p->pos0 + p->n_rows > e->max_end) e->max_end = p->pos0 + p->n_rows;
            e->any_prompt |= p->prompt;
            e->n_parts++;
        }
        at_part += (size_t)e->n_parts, at_row += (size_t)e->n_rows;
    }
    free(cursor), free(end), free(count_by_layer), free(seqs);
}

// Runs rows of consecutive sequences as one step: embed (or take hidden_in), every visit, then logits or sampling
// for the sequences that end here (every row when all_logits). Positions do not advance here.
static void run_window(model *m, const window_seq *ws, int n, const float *hidden_in, const long *stash_in, float *hidden_out,
                       long stash_out, int all_logits, float *logits, sample_row *sr, int whole_call, forward_stats *stats) {
    backend *be = m->be;
    const model_config *c = &m->cfg;
    int *row0 = rp_malloc(sizeof(int) * (size_t)n), total = 0, n_out = 0, first_out = -1;
    for (int i = 0; i < n; i++) {
        row0[i] = total, total += ws[i].n;
        if (ws[i].out >= 0 && first_out < 0) first_out = ws[i].out;
        n_out += ws[i].out >= 0;
    }
    int *rows = rp_malloc(sizeof(int) * (size_t)(all_logits ? total : n));   // the rows the step ends with
    if (all_logits)
        for (int r = n_out = 0; r < total; r++) rows[n_out++] = r;
    else
        for (int i = 0, k = 0; i < n; i++)
            if (ws[i].out >= 0) rows[k++] = row0[i] + ws[i].n - 1;
    int to_hidden = hidden_out || stash_out >= 0;
    if (to_hidden) n_out = 0;
    step_layers sl;
    plan_layers(m, ws, n, row0, &sl);
    step_plan step = {.n_rows = total, .execs = sl.execs, .n_execs = sl.n_execs, .from_hidden = hidden_in || stash_in,
                      .to_hidden = to_hidden, .all_logits = all_logits, .n_out = n_out,
                      .sample = sr && n_out ? sr + first_out : NULL, .whole_call = whole_call};

    be->reserve(be, total);
    if (be->step_begin) be->step_begin(be, &step);
    for (int i = 0; i < n; i++) {
        if (ws[i].from > 0 && stash_in && stash_in[ws[i].index] >= 0)
            be->unstash_rows(be, stash_in[ws[i].index] + ws[i].offset, row0[i], ws[i].n);
        else if (ws[i].from > 0) be->write_rows(be, row0[i], ws[i].n, hidden_in + (size_t)row0[i] * c->dim);
        else be->embed(be, ws[i].tokens, ws[i].n, row0[i]);
    }
    for (int x = 0; x < sl.n_execs; x++) {   // each layer execution reads its weights once for all its parts
        be->layer(be, &sl.execs[x]);
        if (stats) {
            stats->layer_execs++;
            stats->visits += sl.execs[x].n_parts;
        }
    }

    if (stash_out >= 0) be->stash_rows(be, stash_out, 0, total);   // a partial span: the hidden state kept there...
    else if (hidden_out) be->read_rows(be, 0, total, hidden_out);   // ...or brought back
    else if (n_out && !sr) be->logits(be, rows, n_out, all_logits ? logits : logits + (size_t)first_out * c->vocab_size);
    else if (n_out && be->sample) be->sample(be, rows, n_out, sr + first_out);
    else if (n_out) {   // sample host logits by the same rules
        float *lg = rp_malloc(sizeof(float) * (size_t)n_out * c->vocab_size);
        be->logits(be, rows, n_out, lg);
        sample_rows_host(lg, c->vocab_size, sr + first_out, n_out, NULL, NULL);
        free(lg);
    }
    free(rows), free(row0), free(sl.execs), free(sl.parts), free(sl.row_part);
}

// Checks the call, then runs its rows in windows of at most the plan's ubatch rows: a long prompt, or many
// sequences' prompts, go in chunks, each seeing the KV its earlier chunks wrote. Rows keep their order, so a
// window is a contiguous range of the call's rows and the sequences that end in it are consecutive.
static int run(model *m, sequence **seqs, int n_seqs, const int *const *tokens, const int *n_tokens, const forward_span *span,
               int all_logits, float *logits, sample_row *sr, forward_stats *stats, rp_err *err) {
    const model_config *c = &m->cfg;
    if (n_seqs < 1) return rp_fail(err, "forward: no sequences");
    int total = 0;
    for (int i = 0; i < n_seqs; i++) {
        kv_cache *kc = &seqs[i]->cache;
        if (n_tokens[i] < 1) return rp_fail(err, "sequence %d: nothing to feed", i);
        if (kc->n_past + n_tokens[i] > kc->capacity)
            return rp_fail(err, "context full: sequence %d holds %d tokens and %d more exceed the context length %d",
                           i, kc->n_past, n_tokens[i], kc->capacity);
        for (int t = 0; t < n_tokens[i]; t++)
            if (tokens[i][t] < 0 || tokens[i][t] >= c->vocab_size)
                return rp_fail(err, "token id %d is outside the vocabulary [0, %d)", tokens[i][t], c->vocab_size);
        total += n_tokens[i];
    }
    int partial = span && span->to_visit >= 0, ub = m->plan.shape.ubatch > 0 ? m->plan.shape.ubatch : total;
    window_seq *ws = rp_malloc(sizeof *ws * (size_t)n_seqs);
    for (int w0 = 0, first = 0, first_row = 0; w0 < total; w0 += ub) {   // seq `first` starts at row first_row
        int w1 = total - w0 < ub ? total : w0 + ub, n = 0;
        while (first_row + n_tokens[first] <= w0) first_row += n_tokens[first++];
        for (int i = first, r = first_row; i < n_seqs && r < w1; r += n_tokens[i], i++) {
            int lo = r > w0 ? r : w0, hi = r + n_tokens[i] < w1 ? r + n_tokens[i] : w1, n_visits = seqs[i]->sched.n_visits;
            ws[n++] = (window_seq){.seq = seqs[i], .tokens = tokens[i] + (lo - r), .n = hi - lo, .offset = lo - r,
                                   .from = span && span->from_visit ? span->from_visit[i] : 0,
                                   .end = partial && span->to_visit < n_visits ? span->to_visit : n_visits,
                                   .out = hi == r + n_tokens[i] ? i : -1, .prompt = n_tokens[i] > 1, .index = i};
        }
        long stash_out = partial && span->stash_out >= 0 && !span->hidden_out ? span->stash_out + w0 : -1;
        run_window(m, ws, n, span && span->hidden_in ? span->hidden_in + (size_t)w0 * c->dim : NULL, span ? span->stash_in : NULL,
                   partial && span->hidden_out ? span->hidden_out + (size_t)w0 * c->dim : NULL, stash_out, all_logits,
                   all_logits ? logits + (size_t)w0 * c->vocab_size : logits, sr, total <= ub, stats);
    }
    free(ws);
    if (!partial)
        for (int i = 0; i < n_seqs; i++) seqs[i]->cache.n_past += n_tokens[i];
    return 0;
}
