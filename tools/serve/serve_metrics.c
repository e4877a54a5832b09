// The server's counters and latency histograms, as Prometheus text.
#include "tools/serve/serve_metrics.h"
#include "loader/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Bucket upper bounds in seconds, shared by the three histograms: from a fast decode step to a long request.
static const double bounds[METRIC_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,      2.5,   5,    10,    30,    60,  120};

void serve_metrics_init(serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void serve_metrics_free(serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

void serve_metrics_observe(serve_metrics *m, histogram *h, double seconds) {
    int b = 0;
    while (b < METRIC_BUCKETS && seconds > bounds[b]) b++;
    pthread_mutex_lock(&m->mu);
    h->count[b]++;
    h->sum += seconds;
    h->n++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_add(serve_metrics *m, long *counter, long n) {
    pthread_mutex_lock(&m->mu);
    *counter += n;
    pthread_mutex_unlock(&m->mu);
}

typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void put(strbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = 2 * b->cap + (size_t)n + 1;
        b->s = rp_realloc(b->s, b->cap);
    }
}

static void put_histogram(strbuf *b, const char *name, const char *help, const histogram *h, const char *label) {
    put(b, "# HELP reprise:%s %s\n# TYPE reprise:%s histogram\n", name, help, name);
    long cum = 0;
    for (int i = 0; i <= METRIC_BUCKETS; i++) {
        cum += h->count[i];
        if (i < METRIC_BUCKETS) put(b, "reprise:%s_bucket{%s,le=\"%g\"} %ld\n", name, label, bounds[i], cum);
        else put(b, "reprise:%s_bucket{%s,le=\"+Inf\"} %ld\n", name, label, cum);
    }
    put(b, "reprise:%s_sum{%s} %.6f\nreprise:%s_count{%s} %ld\n", name, label, h->sum, name, label, h->n);
}

static void put_metric(strbuf *b, const char *name, const char *type, const char *help, const char *label, double value) {
    put(b, "# HELP reprise:%s %s\n# TYPE reprise:%s %s\nreprise:%s{%s} %.17g\n", name, help, name, type, name, label, value);
}

char *serve_metrics_render(serve_metrics *m, const serve_gauges *g, const char *model_name) {
    strbuf b = {rp_malloc(4096), 0, 4096};
    char label[512];
    snprintf(label, sizeof label, "model_name=\"%s\"", model_name);
    pthread_mutex_lock(&m->mu);
    put_metric(&b, "num_requests_running", "gauge", "Requests in the running batch.", label, g->running);
    put_metric(&b, "num_requests_waiting", "gauge", "Requests waiting to be admitted.", label, g->waiting);
    put_metric(&b, "kv_cache_usage_perc", "gauge", "KV budget in use, 1 = full (visit-positions held / --kv-budget).", label,
               g->kv_budget ? (double)g->kv_used / g->kv_budget : 0.0);
    put_metric(&b, "kv_cache_used_visit_slots", "gauge", "KV visit-positions held (a token of an 87-visit schedule holds 87).",
               label, (double)g->kv_used);
    if (g->device_allocations >= 0)
        put_metric(&b, "device_allocations_after_start", "counter",
                   "Device memory allocations and frees since the first step (none: KV slots come from the planned arena).",
                   label, (double)g->device_allocations);
    put_metric(&b, "prompt_tokens_total", "counter", "Prompt tokens prefilled.", label, (double)m->prompt_tokens);
    put_metric(&b, "generation_tokens_total", "counter", "Tokens generated.", label, (double)m->generation_tokens);
    put_metric(&b, "spec_decode_num_draft_tokens_total", "counter", "Tokens proposed by requests' draft schedules.", label,
               (double)m->spec_draft_tokens);
    put_metric(&b, "spec_decode_num_accepted_tokens_total", "counter",
               "Tokens of the drafts' proposals the target schedules accepted.", label, (double)m->spec_accepted_tokens);
    put_metric(&b, "num_preemptions_total", "counter", "Requests preempted (KV freed, recomputed later).", label,
               (double)m->preemptions);
    put(&b, "# HELP reprise:request_success_total Requests finished, by finish reason.\n"
            "# TYPE reprise:request_success_total counter\n");
    put(&b, "reprise:request_success_total{%s,finished_reason=\"stop\"} %ld\n", label, m->finished_stop);
    put(&b, "reprise:request_success_total{%s,finished_reason=\"length\"} %ld\n", label, m->finished_length);
    put(&b, "reprise:request_success_total{%s,finished_reason=\"abort\"} %ld\n", label, m->finished_abort);
    put_metric(&b, "request_failure_total", "counter", "Requests refused (4xx, 5xx) or failed in the engine.", label, (double)m->requests_error);
    put_histogram(&b, "time_to_first_token_seconds", "Time to first token.", &m->ttft, label);
    put_histogram(&b, "inter_token_latency_seconds", "Time between two generated tokens.", &m->inter_token, label);
    put_histogram(&b, "e2e_request_latency_seconds", "Request latency, submission to last token.", &m->e2e, label);
    pthread_mutex_unlock(&m->mu);
    return b.s;
}
