// Perplexity in sliding windows, every schedule fed the same tokens in one batch: each window's tokens go to one
// fresh sequence per schedule, a chunk of rows at a time, and each target token's log-probability is taken from
// the row before it. Per-token negative log-likelihoods are kept (8 bytes a token and schedule) for the standard
// errors: of a schedule's mean, and of its mean difference from the first schedule over the same tokens (paired).
#include "tools/perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "loader/alloc.h"
#include "tools/cli.h"
#include "tools/common/stats.h"

#define ROWS_A_STEP 64   // rows of logits a forward step returns, over all schedules (the plan's logit rows)

// A window of the walk: tokens [b, e), scoring [first, e) (none when first >= e).
typedef struct {
    long b, e, first;
} text_window;

// The window after w (w->e 0: the first), or 0 once a window has reached the text's end.
static int next_window(text_window *w, int n, int window, int stride) {
    if (w->e == n) return 0;
    long b = w->e ? w->b + stride : 0, e = b + window < n ? b + window : n;
    *w = (text_window){.b = b, .e = e, .first = w->e > b + 1 ? w->e : b + 1};
    return 1;
}

// The windows: [b, min(b + window, n)) for b = 0, stride, 2 stride, .. until one reaches the end; each scores the
// tokens no earlier window scored (the first token of the text is never scored, nor any window's first), each
// predicted from its window's tokens before it. Returns the number of windows; *scored: tokens scored in all.
static int perplexity_windows(int n, int window, int stride, long *scored) {
    int windows = 0;
    *scored = 0;
    for (text_window w = {0}; next_window(&w, n, window, stride); windows++) *scored += w.e > w.first ? w.e - w.first : 0;
    return windows;
}

// Mean and standard error of the mean of x[0..n).
static void mean_se(const double *x, long n, double *mean, double *se) {
    double s = 0, ss = 0;
    for (long i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : NAN;
    for (long i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *se = n > 1 ? sqrt(ss / (n - 1) / n) : NAN;
}

// One window [b, e), targets [first, e): every schedule's sequence fed [b, e - 1) in chunks, each target's NLL into
// nll[s][at + (t - first)].
static int score_window(model *m, const schedule *schedules, int n_s, const int *ids, long b, long e, long first,
                        double **nll, long at, float *logits, rp_err *err) {
    int vocab = m->cfg.vocab_size, per = ROWS_A_STEP / n_s > 0 ? ROWS_A_STEP / n_s : 1, rc = 0, made = 0;
    sequence *seqs = rp_calloc((size_t)n_s, sizeof *seqs);
    sequence **batch = rp_malloc(sizeof *batch * (size_t)n_s);
    const int **feed = rp_malloc(sizeof *feed * (size_t)n_s);
    int *counts = rp_malloc(sizeof(int) * (size_t)n_s);
    for (; made < n_s && !rc; made++) {
        rc = sequence_init(&seqs[made], m, &schedules[made], (int)(e - b), err);
        batch[made] = &seqs[made];
    }
    if (rc) made--;
    for (long r0 = b; r0 < e - 1 && !rc; r0 += per) {   // rows r0 .. r1-1: the logits of row r predict token r + 1
        long r1 = r0 + per < e - 1 ? r0 + per : e - 1;
        for (int s = 0; s < n_s; s++) feed[s] = ids + r0, counts[s] = (int)(r1 - r0);
        if ((rc = forward(m, batch, n_s, feed, counts, 1, logits, NULL, err))) break;
        for (int s = 0; s < n_s; s++)
            for (long r = r0; r < r1; r++)
                if (r + 1 >= first) {
                    const float *row = logits + ((size_t)s * (r1 - r0) + (size_t)(r - r0)) * vocab;
                    double lp = log_prob_of(row, vocab, ids[r + 1]);
                    if (!isfinite(lp)) rc = rp_fail(err, "schedule %d: non-finite log-probability at token %ld", s + 1, r + 1);
                    nll[s][at + (r + 1 - first)] = -lp;
                }
    }
    for (int s = 0; s < made; s++) sequence_free(&seqs[s], m);
    free(seqs), free(batch), free(feed), free(counts);
    return rc;
}

static void print_table(char *const *names, const schedule *schedules, int n_s, double **nll, long scored, int windows,
                        const perplexity_opts *po, int n) {
    double *diff = rp_malloc(sizeof(double) * (size_t)(scored ? scored : 1));
    if (po->json) printf("{\"tokens\": %d, \"scored\": %ld, \"windows\": %d, \"window\": %d, \"stride\": %d, \"schedules\": [",
                         n, scored, windows, po->window, po->stride);
    else printf("perplexity of %ld tokens (of %d) in %d window(s) of %d, stride %d\n%-24s %6s %22s %24s %24s\n", scored, n,
                windows, po->window, po->stride, "schedule", "visits", "nll/token +- se", "perplexity +- se",
                "nll vs first +- paired se");
    for (int s = 0; s < n_s; s++) {
        double mean, se, dmean = 0, dse = 0;
        mean_se(nll[s], scored, &mean, &se);
        if (s) {
            for (long i = 0; i < scored; i++) diff[i] = nll[s][i] - nll[0][i];
            mean_se(diff, scored, &dmean, &dse);
        }
        double ppl = exp(mean), ppl_se = ppl * se;   // the delta method: d exp(m) = exp(m) dm
        if (po->json) {
            printf("%s{\"schedule\": \"%s\", \"visits\": %d, \"nll\": %.6f, \"nll_se\": %.6f, \"perplexity\": %.6f, "
                   "\"perplexity_se\": %.6f", s ? ", " : "", names[s], schedules[s].n_visits, mean, se, ppl, ppl_se);
            if (s) printf(", \"delta_nll\": %.6f, \"delta_nll_se\": %.6f", dmean, dse);
            printf("}");
        } else {
            char a[48], b[48], c[48] = "-";
            snprintf(a, sizeof a, "%.4f +- %.4f", mean, se);
            snprintf(b, sizeof b, "%.4f +- %.4f", ppl, ppl_se);
            if (s) snprintf(c, sizeof c, "%+.4f +- %.4f%s", dmean, dse, fabs(dmean) > 2 * dse ? " *" : "");
            printf("%-24s %6d %22s %24s %24s\n", names[s], schedules[s].n_visits, a, b, c);
        }
    }
    if (po->json) printf("]}\n");
    else if (n_s > 1) printf("(* the difference is beyond two paired standard errors; se: of the mean over tokens)\n");
    free(diff);
}

int perplexity_run(model *m, const schedule *schedules, char *const *names, int n_s, const int *ids, int n,
                   const perplexity_opts *po, rp_err *err) {
    long scored;
    int windows = perplexity_windows(n, po->window, po->stride, &scored);
    if (scored < 1) return rp_fail(err, "perplexity needs at least 2 tokens, the text has %d", n);
    double **nll = rp_malloc(sizeof *nll * (size_t)n_s);
    for (int s = 0; s < n_s; s++) nll[s] = rp_malloc(sizeof(double) * (size_t)scored);
    float *logits = rp_malloc(sizeof(float) * (size_t)ROWS_A_STEP * m->cfg.vocab_size);
    int rc = 0, k = 0;
    long at = 0;
    double t0 = rp_now_s(), last = t0;
    for (text_window w = {0}; !rc && next_window(&w, n, po->window, po->stride); k++) {
        if (w.e > w.first) rc = score_window(m, schedules, n_s, ids, w.b, w.e, w.first, nll, at, logits, err);
        if (rc) rp_wrap(err, "window %d (tokens %ld-%ld)", k + 1, w.b, w.e - 1);
        at += w.e > w.first ? w.e - w.first : 0;
        double now = rp_now_s();
        if (!rc && now - last > 10 && w.e < n) {   // a long text on a large model: minutes
            fprintf(stderr, "reprise score: window %d of %d (%.0f%%), ETA %.0f s\n", k + 1, windows, 100.0 * at / scored,
                    (now - t0) / at * (scored - at));
            last = now;
        }
    }
    if (!rc) print_table(names, schedules, n_s, nll, scored, windows, po, n);
    for (int s = 0; s < n_s; s++) free(nll[s]);
    free(nll), free(logits);
    return rc;
}

int perplexity_command(const cli_opts *o, const int *ids, int n, int stride, int json) {
    rp_err err;
    model_config cfg;
    char *list = NULL, *names[PERPLEXITY_MAX_SCHEDULES];
    schedule scheds[PERPLEXITY_MAX_SCHEDULES];
    int n_s = 0, parsed = 0, rc = config_load(&cfg, o->model_dir, &err);
    if (!rc && cli_split_schedules("reprise score", o->schedule, &list, names, PERPLEXITY_MAX_SCHEDULES, &n_s)) {
        free(list);
        return 2;
    }
    for (; !rc && parsed < n_s; parsed++)
        if (schedule_parse(&scheds[parsed], names[parsed], cfg.n_layers, &err)) rc = rp_wrap(&err, "--schedule %s", names[parsed]);
    if (rc && parsed) parsed--;
    if (!rc && n < 2) rc = rp_fail(&err, "perplexity needs at least 2 tokens, the text has %d", n);
    int window = o->ctx ? o->ctx : cli_context(o, &cfg, 0, NULL);
    if (!o->ctx && window > n) window = n;
    perplexity_opts po = {.window = window, .stride = stride ? stride : window, .json = json};
    if (!rc && window < 2) rc = rp_fail(&err, "-c %d: a window holds at least 2 tokens", window);
    if (!rc && po.stride > window) rc = rp_fail(&err, "--stride %d: at most the window, -c %d (a token would be skipped)", stride, window);
    int visits = 0, most = 0;
    for (int s = 0; s < parsed; s++) visits += scheds[s].n_visits, most = scheds[s].n_visits > most ? scheds[s].n_visits : most;
    plan_shape shape = {.ubatch = o->ubatch, .seqs = n_s, .logit_rows = ROWS_A_STEP, .kv_slots = visits, .ctx = window,
                        .max_visits = most, .tp = o->tp, .kv_dtype = o->kv_dtype, .weights = o->weights};
    model m;
    if (!rc && !(rc = model_load_planned(&m, o->model_dir, o->backend, o->threads, &shape, o->allow_unused_tensors, &err))) {
        rc = cli_check_tokens(ids, n, m.cfg.vocab_size, &err) || perplexity_run(&m, scheds, names, n_s, ids, n, &po, &err);
        model_free(&m);
    }
    if (rc) fprintf(stderr, "reprise score: %s\n", err.msg);
    for (int s = 0; s < parsed; s++) schedule_free(&scheds[s]);
    free(list);
    return rc ? 1 : 0;
}
