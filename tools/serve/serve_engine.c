// The server's engine: continuous batching over one model, on one thread.
//
// Each loop: the queue joins the waiting line; cancelled requests leave; waiting requests are admitted in order
// while the KV budget (visit-positions: a position of an 87-visit schedule costs 87) and --parallel allow; a step is
// planned (one row for every decoding request first, then prompt chunks up to --batch-tokens rows); every request's
// KV grows to hold its rows, preempting the latest admitted requests when the budget runs out (their KV is freed and
// they recompute their tokens when readmitted); the step runs as one forward over all of them (their schedules may
// differ), then each request that completed its feed samples with its own seeded sampler.
#include "tools/serve/serve_engine.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/memory_plan.h"
#include "tools/common/stats.h"

#define SERVE_KV_GROW 64   // positions a request's KV holds beyond its tokens when admitted; it doubles as it grows

struct serve_engine {
    model *m;
    const tokenizer *tok;
    serve_limits lim;
    serve_metrics *met;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, changed;
    gen_request *incoming, *incoming_tail;   // submitted, not yet seen by the engine
    gen_request *waiting;                    // the engine's line: preempted requests go back to its front
    int n_queued;                            // incoming + waiting
    gen_request **running;                   // (max_seqs) in admission order
    int n_running;
    int n_seqs;                              // the running requests' sequences: one each, two with a draft (the
                                             // plan's --parallel sequences hold both)
    long kv_used, order;
    int draining, stopping;
    int echo_rows;                           // most rows of prompt logprobs in one step
    float *echo_logits;                      // (echo_rows, vocab): every row of the prompts whose logprobs are asked
};

gen_request *gen_request_new(void) {
    gen_request *r = rp_calloc(1, sizeof *r);
    r->refs = 1;
    r->logprobs = -1;
    r->extra_eos = -1;
    return r;
}

static void request_free(gen_request *r) {
    free(r->prompt);
    schedule_free(&r->sched);
    schedule_free(&r->draft_sched);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->bias_id), free(r->bias);
    free(r->out), free(r->prompt_out), free(r->ids);
    if (r->text.text) text_out_free(&r->text);
    if (r->smp.work) sampler_free(&r->smp);
    free(r);
}

static void unref(gen_request *r) {   // under the lock
    if (--r->refs == 0) request_free(r);
}

void serve_engine_lock(serve_engine *e) { pthread_mutex_lock(&e->mu); }
void serve_engine_unlock(serve_engine *e) { pthread_mutex_unlock(&e->mu); }

void serve_engine_wait(serve_engine *e, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&e->changed, &e->mu, &ts);
}

void gen_request_release(serve_engine *e, gen_request *r) {
    if (!r) return;
    pthread_mutex_lock(&e->mu);
    if (r->finish == FINISH_NONE) r->cancelled = 1;
    unref(r);
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
}

int serve_engine_submit(serve_engine *e, gen_request **reqs, int n, rp_err *err) {
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (n > e->lim.queue) rc = rp_fail(err, "the request asks for %d completions (prompts x n), more than the server's "
                                            "queue holds (--queue %d)", n, e->lim.queue), rc = -2;
    else if (e->draining) rc = rp_fail(err, "the server is shutting down");
    else if (e->n_queued + n > e->lim.queue)
        rc = rp_fail(err, "the server is busy: %d requests are waiting (--queue %d); retry later", e->n_queued, e->lim.queue);
    for (int i = 0; i < n && !rc; i++) {
        gen_request *r = reqs[i];
        r->refs++;
        r->limit = r->n_prompt + r->max_tokens;
        r->ids = rp_malloc(sizeof(int) * (size_t)(r->limit + 1));
        memcpy(r->ids, r->prompt, sizeof(int) * (size_t)r->n_prompt);
        r->n_ids = r->n_prompt;
        if (r->prompt_logprobs) r->prompt_out = rp_calloc((size_t)r->n_prompt, sizeof *r->prompt_out);
        text_out_init(&r->text, e->tok, r->prompt, r->n_prompt, (const char *const *)r->stops, r->n_stops);
        r->t_submit = rp_now_s();
        r->next = NULL;
        if (e->incoming_tail) e->incoming_tail->next = r;
        else e->incoming = r;
        e->incoming_tail = r;
        e->n_queued++;
    }
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

// --- finishing, preempting ---------------------------------------------------------------------------------------

static long kv_cost(const gen_request *r) { return (long)r->seq.cache.capacity * (r->sched.n_visits + r->draft_sched.n_visits); }

static int seqs_of(const gen_request *r) { return r->draft_sched.n_visits ? 2 : 1; }

static void drop_seq(serve_engine *e, gen_request *r) {
    if (!r->has_seq) return;
    e->kv_used -= kv_cost(r);
    e->n_seqs -= seqs_of(r);
    sequence_free(&r->seq, e->m);
    spec_draft_free(&r->draft, e->m);
    r->has_seq = 0;
    r->n_fed = 0;
}

static void remove_running(serve_engine *e, gen_request *r) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == r) {
            memmove(e->running + i, e->running + i + 1, sizeof *e->running * (size_t)(e->n_running - i - 1));
            e->n_running--;
            return;
        }
}

// Ends a running request (under the lock): its KV goes back to the budget, and the engine lets go of it.
static void finish(serve_engine *e, gen_request *r, finish_reason why, const char *error) {
    rp_err err;
    if (why != FINISH_ERROR && why != FINISH_ABORT && text_out_finish(&r->text, &err)) why = FINISH_ERROR, error = err.msg;
    if (why == FINISH_ERROR) snprintf(r->error, sizeof r->error, "%s", error);
    r->finish = why;
    drop_seq(e, r);
    remove_running(e, r);
    serve_metrics_observe(e->met, &e->met->e2e, rp_now_s() - r->t_submit);
    serve_metrics_add(e->met, why == FINISH_STOP     ? &e->met->finished_stop
                              : why == FINISH_LENGTH ? &e->met->finished_length
                              : why == FINISH_ABORT  ? &e->met->finished_abort
                                                     : &e->met->requests_error, 1);
    unref(r);
}

static void preempt(serve_engine *e, gen_request *r) {
    drop_seq(e, r);
    remove_running(e, r);
    r->in_step = 0;
    r->next = e->waiting;
    e->waiting = r;
    e->n_queued++;
    serve_metrics_add(e->met, &e->met->preemptions, 1);
}

// Makes r's KV hold its rows of this step, growing it (doubling, up to what it may ever need), preempting the
// latest admitted requests while the budget is short. r itself is preempted when it is the latest.
static void make_room(serve_engine *e, gen_request *r) {
    int cap = r->seq.cache.capacity, need = r->n_fed + r->in_step;
    if (need <= cap) return;
    int grown = 2 * cap < r->limit ? 2 * cap : r->limit;
    if (grown < need) grown = need;
    long delta = (long)(grown - cap) * (r->sched.n_visits + r->draft_sched.n_visits);
    while (e->kv_used + delta > e->lim.kv_budget) {
        gen_request *latest = e->running[0];
        for (int i = 1; i < e->n_running; i++)
            if (e->running[i]->order > latest->order) latest = e->running[i];
        preempt(e, latest);
        if (latest == r) return;
    }
    rp_err err;
    if (kv_cache_grow(&r->seq.cache, e->m->be, grown, &err) ||
        (r->draft_sched.n_visits && kv_cache_grow(&r->draft.seq.cache, e->m->be, grown, &err))) {   // out of device memory
        if (e->n_running > 1) preempt(e, r);   // it recomputes once others have finished
        else finish(e, r, FINISH_ERROR, err.msg);
        return;
    }
    e->kv_used += delta;
}

// --- one loop of the engine ----------------------------------------------------------------------------------------

static void reap_cancelled(serve_engine *e) {
    for (gen_request **p = &e->waiting; *p;) {
        gen_request *r = *p;
        if (!r->cancelled) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        e->n_queued--;
        r->finish = FINISH_ABORT;
        serve_metrics_add(e->met, &e->met->finished_abort, 1);
        unref(r);
    }
    for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->cancelled) finish(e, e->running[i], FINISH_ABORT, NULL);
}

static void admit(serve_engine *e) {
    while (e->waiting && e->n_running < e->lim.max_seqs) {
        gen_request *r = e->waiting;
        if (r->draft_sched.n_visits && e->lim.max_seqs < 2) schedule_free(&r->draft_sched);   // (--parallel 1: no room
                                                                                             // for a draft; the same text)
        if (e->n_seqs + seqs_of(r) > e->lim.max_seqs) break;
        int cap = r->n_ids + SERVE_KV_GROW < r->limit ? r->n_ids + SERVE_KV_GROW : r->limit;
        if (e->kv_used + (long)cap * (r->sched.n_visits + r->draft_sched.n_visits) > e->lim.kv_budget) break;
        e->waiting = r->next;
        e->n_queued--;
        rp_err err;
        int no_seq = sequence_init(&r->seq, e->m, &r->sched, cap, &err);
        if (!no_seq && r->draft_sched.n_visits &&
            spec_draft_init(&r->draft, e->m, &r->draft_sched, cap, r->draft_tokens, r->sampling.seed, &err))
            sequence_free(&r->seq, e->m), no_seq = 1;
        if (no_seq) {   // the device is fuller than the budget says
            if (e->n_running) {   // others will free theirs: wait at the front of the line
                r->next = e->waiting;
                e->waiting = r;
                e->n_queued++;
                break;
            }
            e->running[e->n_running++] = r;
            finish(e, r, FINISH_ERROR, err.msg);
            continue;
        }
        r->has_seq = 1;
        r->n_fed = 0;
        r->order = e->order++;
        e->kv_used += kv_cost(r);
        e->n_seqs += seqs_of(r);
        if (!r->smp.work) {
            sampler_init(&r->smp, &r->sampling, e->m->cfg.vocab_size);
            sampler_set_prompt(&r->smp, r->prompt, r->n_prompt);
        }
        // (again after a preemption: its ids so far are fed anew, and it goes on counting what it drew)
        gen_begin(&r->gen, &r->seq, &r->smp, r->ids, r->n_ids, r->max_tokens);
        r->gen.n_generated = r->n_generated, r->gen.ctx = r->limit;
        r->gen.ignore_eos = r->ignore_eos, r->gen.extra_eos = r->extra_eos;
        r->gen.bias_id = r->bias_id, r->gen.bias = r->bias, r->gen.n_bias = r->n_bias;
        if (r->draft_sched.n_visits) r->gen.draft = &r->draft;   // (its KV as fresh as the target's: the ids are fed to both)
        e->running[e->n_running++] = r;
    }
}

static int wants_prompt_logprobs(const gen_request *r) { return r->prompt_logprobs && !r->prompt_done; }

// Rows of this step: one for every decoding request, then prompt (or recompute) chunks in admission order.
static void plan_step(serve_engine *e) {
    int rows = e->lim.step_tokens, echo_rows = e->echo_rows;
    for (int i = 0; i < e->n_running; i++) e->running[i]->in_step = 0;
    for (int i = 0; i < e->n_running && rows > 0; i++) {
        gen_request *r = e->running[i];
        if (r->n_ids - r->n_fed == 1 && !wants_prompt_logprobs(r)) r->in_step = 1, rows--;
    }
    for (int i = 0; i < e->n_running && rows > 0; i++) {
        gen_request *r = e->running[i];
        int n = r->n_ids - r->n_fed;
        if (r->in_step || n < 1) continue;
        if (n > rows) n = rows;
        if (wants_prompt_logprobs(r)) {
            if (n > echo_rows) n = echo_rows;
            echo_rows -= n;
        }
        r->in_step = n, rows -= n;
    }
    for (int i = 0; i < e->n_running; i++) {
        gen_request *r = e->running[i];
        if (r->in_step) make_room(e, r);   // may preempt or fail requests: e->running changes
        if (i < e->n_running && e->running[i] != r) i--;
    }
}

// Runs the step's rows as one generation step (outside the lock): each request feeds its rows of the step, those
// whose prompt logprobs are asked keep every row's logits, and each whose feed completes draws its next id.
typedef struct {
    gen_request *r;
    char error[1024];
    long proposed, accepted;   // its draft's proposals of the step, and those kept
} step_item;

static void run_step(serve_engine *e, step_item *items, int n_items) {
    int vocab = e->m->cfg.vocab_size, echo_row = 0;
    gen_seq **g = rp_malloc(sizeof *g * (size_t)(n_items ? n_items : 1));
    for (int i = 0; i < n_items; i++) {
        gen_request *r = items[i].r;
        gen_seq *s = &r->gen;
        s->feed = r->ids + r->n_fed, s->n_feed = r->n_ids - r->n_fed, s->n_step = r->in_step;
        s->logprobs = r->logprobs >= 0 ? (r->logprobs > 1 ? r->logprobs : 1) : -1;
        s->rows_out = NULL;
        if (wants_prompt_logprobs(r)) s->rows_out = e->echo_logits + (size_t)echo_row * vocab, echo_row += r->in_step;
        g[i] = s;
    }
    for (int i = 0; i < n_items; i++) items[i].proposed = -items[i].r->draft.proposed, items[i].accepted = -items[i].r->draft.accepted;
    rp_err err;
    if (generate_step(e->m, g, n_items, NULL, &err) < 0)
        for (int i = 0; i < n_items; i++)
            if (g[i]->state == GEN_FAILED) snprintf(items[i].error, sizeof items[i].error, "%s", err.msg);
    for (int i = 0; i < n_items; i++) items[i].proposed += items[i].r->draft.proposed, items[i].accepted += items[i].r->draft.accepted;
    for (int i = 0; i < n_items; i++) {   // prompt logprobs: row j predicts token n_fed + j + 1
        gen_request *r = items[i].r;
        if (!g[i]->rows_out || items[i].error[0]) continue;
        for (int j = 0; j < r->in_step; j++) {
            int t = r->n_fed + j + 1;
            if (t < r->n_prompt)
                token_logprob_of_row(g[i]->rows_out + (size_t)j * vocab, vocab, r->ids[t], r->logprobs > 1 ? r->logprobs : 1,
                                     &r->prompt_out[t]);
        }
    }
    free(g);
}

// Under the lock: positions advance, completed feeds take their drawn token, finished requests end.
static void publish(serve_engine *e, step_item *items, int n_items) {
    double t = rp_now_s();
    for (int i = 0; i < n_items; i++) {
        gen_request *r = items[i].r;
        gen_seq *g = &r->gen;
        if (items[i].error[0]) {
            finish(e, r, FINISH_ERROR, items[i].error);
            continue;
        }
        r->n_fed += r->in_step;
        if (g->n_drawn > 1) r->n_fed = r->seq.cache.n_past;   // a speculative step: its kept proposals are fed too
        serve_metrics_add(e->met, &e->met->spec_draft_tokens, items[i].proposed);
        serve_metrics_add(e->met, &e->met->spec_accepted_tokens, items[i].accepted);
        if (r->prompt_out && !r->prompt_done && r->n_fed >= r->n_prompt) {
            r->prompt_out[0].id = r->ids[0];
            r->prompt_out[0].logprob = NAN;
            r->prompt_done = 1;
        }
        if (r->n_fed < r->n_ids) continue;   // its feed goes on next step
        if (r->n_generated == 0 && r->n_fed == r->n_prompt) serve_metrics_add(e->met, &e->met->prompt_tokens, r->n_prompt);
        if (r->max_tokens == 0) {
            finish(e, r, FINISH_LENGTH, NULL);
            continue;
        }
        if (g->state == GEN_NOT_FINITE) {
            finish(e, r, FINISH_ERROR, "the logits are not finite (NaN or infinity): nothing to sample");
            continue;
        }
        // the step's ids in order (several after a speculative step; the last one with the sequence's state)
        for (int j = 0; j < g->n_drawn; j++) {
            int id = g->drawn[j], last = j == g->n_drawn - 1;
            r->n_generated = g->n_generated - (g->n_drawn - 1 - j);   // the engine's count, published under the lock
            serve_metrics_add(e->met, &e->met->generation_tokens, 1);
            if (r->n_generated == 1) serve_metrics_observe(e->met, &e->met->ttft, t - r->t_submit);
            else serve_metrics_observe(e->met, &e->met->inter_token, j ? 0 : t - r->t_last);
            r->t_last = t;
            if (last && g->state == GEN_EOS) {
                finish(e, r, FINISH_STOP, NULL);
                break;
            }
            if (r->n_out == r->cap_out) r->out = rp_realloc(r->out, sizeof *r->out * (size_t)(r->cap_out = 2 * r->cap_out + 16));
            serve_token *tok = &r->out[r->n_out++];
            if (r->logprobs >= 0) *tok = g->lp;   // (a step with logprobs draws one id: no draft)
            else memset(tok, 0, sizeof *tok), tok->id = id;
            r->ids[r->n_ids++] = id;
            rp_err err;
            if (text_out_push(&r->text, id, &err)) finish(e, r, FINISH_ERROR, err.msg);
            else if (r->text.stopped) finish(e, r, FINISH_STOP, NULL);
            else if (last && g->state != GEN_RUNNING) finish(e, r, FINISH_LENGTH, NULL);   // max_tokens (the engine's rule)
            else continue;
            break;
        }
    }
}

static void *engine_main(void *arg) {
    serve_engine *e = arg;
    step_item *items = rp_calloc((size_t)e->lim.max_seqs, sizeof *items);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stopping && !e->incoming && !e->waiting && !e->n_running) pthread_cond_wait(&e->work, &e->mu);
        if (e->stopping && !e->incoming && !e->waiting && !e->n_running) break;
        if (e->incoming) {   // the queue joins the end of the waiting line
            gen_request **p = &e->waiting;
            while (*p) p = &(*p)->next;
            *p = e->incoming;
            e->incoming = e->incoming_tail = NULL;
        }
        reap_cancelled(e);
        admit(e);
        plan_step(e);
        int n_items = 0;
        for (int i = 0; i < e->n_running; i++)
            if (e->running[i]->in_step) items[n_items++] = (step_item){.r = e->running[i]};
        pthread_mutex_unlock(&e->mu);
        run_step(e, items, n_items);
        pthread_mutex_lock(&e->mu);
        publish(e, items, n_items);
        pthread_cond_broadcast(&e->changed);
    }
    pthread_mutex_unlock(&e->mu);
    free(items);
    return NULL;
}

serve_engine *serve_engine_start(model *m, const tokenizer *tok, const serve_limits *lim, serve_metrics *met, rp_err *err) {
    serve_engine *e = rp_calloc(1, sizeof *e);
    e->m = m, e->tok = tok, e->lim = *lim, e->met = met;
    int vocab = m->cfg.vocab_size;
    e->echo_rows = PLAN_SCORE_LOGIT_ROWS < lim->step_tokens ? PLAN_SCORE_LOGIT_ROWS : lim->step_tokens;
    e->running = rp_calloc((size_t)lim->max_seqs, sizeof *e->running);
    e->echo_logits = rp_malloc(sizeof(float) * (size_t)e->echo_rows * vocab);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->changed, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        rp_fail(err, "cannot start the engine thread");
        free(e->running), free(e->echo_logits), free(e);
        return NULL;
    }
    return e;
}

void serve_engine_drain(serve_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->draining = 1;
    pthread_mutex_unlock(&e->mu);
}

void serve_engine_gauges(serve_engine *e, serve_gauges *g) {
    pthread_mutex_lock(&e->mu);
    g->running = e->n_running;
    g->waiting = e->n_queued;
    g->kv_used = e->kv_used;
    g->kv_budget = e->lim.kv_budget;
    g->device_allocations = e->m->be->allocations_after_start ? e->m->be->allocations_after_start(e->m->be) : -1;
    pthread_mutex_unlock(&e->mu);
}

void serve_engine_stop(serve_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->draining = 1;
    e->stopping = 1;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->changed);
    free(e->running), free(e->echo_logits);
    free(e);
}
