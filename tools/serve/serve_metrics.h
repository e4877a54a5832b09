// The server's counters and latency histograms, rendered as Prometheus text for GET /metrics.
#ifndef REPRISE_SERVE_METRICS_H
#define REPRISE_SERVE_METRICS_H

#include <pthread.h>
#include <stddef.h>

#define METRIC_BUCKETS 16

typedef struct {
    long count[METRIC_BUCKETS + 1];   // per bucket (not cumulative); the last is +Inf
    double sum;
    long n;
} histogram;

typedef struct {
    pthread_mutex_t mu;
    long prompt_tokens, generation_tokens;   // counters
    long preemptions;
    long spec_draft_tokens, spec_accepted_tokens;   // self-speculative decoding: proposed, accepted
    long finished_stop, finished_length;    // requests finished, by finish reason
    long finished_abort;                    // cancelled: the client went away
    long requests_error;                    // refused with a 4xx or 5xx, or failed in the engine
    histogram ttft, inter_token, e2e;       // seconds
} serve_metrics;

// What the engine is doing now (gauges), taken when /metrics is read.
typedef struct {
    int running, waiting;
    long kv_used, kv_budget;   // visit-positions
    long device_allocations;   // the backend's device allocations and frees since its first step; -1: no device
} serve_gauges;

void serve_metrics_init(serve_metrics *m);
void serve_metrics_free(serve_metrics *m);
// Seconds into a histogram (ttft, inter_token or e2e), under the lock.
void serve_metrics_observe(serve_metrics *m, histogram *h, double seconds);
void serve_metrics_add(serve_metrics *m, long *counter, long n);
// The text of GET /metrics (heap string), named as vLLM's metrics with the `reprise:` prefix.
char *serve_metrics_render(serve_metrics *m, const serve_gauges *g, const char *model_name);

#endif
