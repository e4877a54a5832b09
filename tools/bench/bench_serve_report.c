// The serving benchmark's figures, by vLLM's benchmark_serving definitions: TTFT, TPOT = (E2EL - TTFT) / (output
// tokens - 1) per request, ITL pooled over every gap between chunks, E2EL; means, medians, numpy's population std
// and linearly interpolated percentiles; goodput against SLOs. Printing and the result JSON with vLLM's keys.
#include "tools/bench/bench_serve.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/common/stats.h"

const char *const serve_metric_names[N_METRICS] = {"ttft", "tpot", "itl", "e2el"};
static const char *const metric_upper[N_METRICS] = {"TTFT", "TPOT", "ITL", "E2EL"};
static const char *const metric_title[N_METRICS] = {"Time to First Token", "Time per Output Token (excl. 1st token)",
                                                    "Inter-token Latency", "End-to-end Latency"};

// --- options --------------------------------------------------------------------------------------------------------

static int metric_index(const char *name, size_t len) {
    for (int m = 0; m < N_METRICS; m++)
        if (strlen(serve_metric_names[m]) == len && !strncmp(name, serve_metric_names[m], len)) return m;
    return -1;
}

int serve_parse_goodput(serve_bench_opts *o, const char *text, rp_err *err) {
    for (const char *p = text; *p;) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        const char *colon = strchr(p, ':');
        int m = colon ? metric_index(p, (size_t)(colon - p)) : -1;
        if (m < 0 || m == METRIC_ITL)
            return rp_fail(err, "--goodput: '%s': KEY:MS pairs with KEY ttft, tpot or e2el, e.g. ttft:500,tpot:20", text);
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (end == colon + 1 || errno || !(v > 0) || !isfinite(v) || (*end && *end != ',' && *end != ' '))
            return rp_fail(err, "--goodput: '%s': the SLO of %s is not a positive number of ms", text,
                           serve_metric_names[m]);
        o->goodput_ms[m] = v;
        p = end;
    }
    return 0;
}

int serve_parse_percentile_metrics(serve_bench_opts *o, const char *text, rp_err *err) {
    o->percentile_metrics = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        int m = metric_index(p, len);
        if (m < 0) return rp_fail(err, "--percentile-metrics: '%s': a comma-separated list of ttft, tpot, itl, e2el", text);
        o->percentile_metrics |= 1 << m;
        p += len + (p[len] == ',');
    }
    return o->percentile_metrics ? 0 : rp_fail(err, "--percentile-metrics: no metric");
}

int serve_parse_percentiles(serve_bench_opts *o, const char *text, rp_err *err) {
    o->n_percentiles = 0;
    for (const char *p = text; *p;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !(v >= 0 && v <= 100) || (*end && *end != ','))
            return rp_fail(err, "--metric-percentiles: '%s': a comma-separated list of numbers from 0 to 100", text);
        if (o->n_percentiles == SERVE_BENCH_MAX_PERCENTILES)
            return rp_fail(err, "--metric-percentiles: at most %d", SERVE_BENCH_MAX_PERCENTILES);
        o->percentiles[o->n_percentiles++] = v;
        p = *end ? end + 1 : end;
    }
    return o->n_percentiles ? 0 : rp_fail(err, "--metric-percentiles: no value");
}

// --- the figures ----------------------------------------------------------------------------------------------------

static double tpot_of(const serve_result *r) {   // 0 for a single token, as vLLM's goodput counts it
    return r->output_len > 1 ? (r->e2el - r->ttft) / (r->output_len - 1) : 0;
}

void serve_summarize(const serve_bench_opts *o, const serve_result *r, int n, int schedule, double duration,
                     serve_summary *s) {
    memset(s, 0, sizeof *s);
    s->duration = duration;
    size_t n_itl = 0;
    for (int i = 0; i < n; i++)
        if (r[i].ok && (schedule < 0 || r[i].schedule == schedule)) n_itl += (size_t)r[i].n_itl;
    double *v[N_METRICS];
    int nv[N_METRICS] = {0};
    for (int m = 0; m < N_METRICS; m++) v[m] = rp_malloc(((m == METRIC_ITL ? n_itl : (size_t)n) + 1) * sizeof(double));
    int any_slo = 0;
    for (int m = 0; m < N_METRICS; m++) any_slo |= o->goodput_ms[m] > 0;
    for (int i = 0; i < n; i++) {
        const serve_result *q = &r[i];
        if (schedule >= 0 && q->schedule != schedule) continue;
        if (!q->ok) {
            s->failed++;
            continue;
        }
        s->completed++;
        s->total_input += q->prompt_len, s->total_output += q->output_len;
        v[METRIC_TTFT][nv[METRIC_TTFT]++] = q->ttft;
        v[METRIC_E2EL][nv[METRIC_E2EL]++] = q->e2el;
        if (q->output_len > 1) v[METRIC_TPOT][nv[METRIC_TPOT]++] = tpot_of(q);
        for (int k = 0; k < q->n_itl; k++) v[METRIC_ITL][nv[METRIC_ITL]++] = q->itl[k];
        double got[N_METRICS] = {q->ttft, tpot_of(q), 0, q->e2el};
        int good = 1;
        for (int m = 0; m < N_METRICS; m++)
            if (o->goodput_ms[m] > 0 && got[m] * 1e3 > o->goodput_ms[m]) good = 0;
        s->good += good;
    }
    double d = duration > 0 ? duration : 1e-9;
    s->request_throughput = s->completed / d;
    s->output_throughput = s->total_output / d;
    s->total_token_throughput = (s->total_input + s->total_output) / d;
    s->request_goodput = any_slo ? s->good / d : NAN;
    for (int m = 0; m < N_METRICS; m++) {
        stats_sort(v[m], nv[m]);
        s->mean_ms[m] = stats_mean(v[m], nv[m]) * 1e3;
        s->median_ms[m] = stats_percentile(v[m], nv[m], 50) * 1e3;
        s->std_ms[m] = stats_stddev(v[m], nv[m], 0) * 1e3;
        for (int p = 0; p < o->n_percentiles; p++) s->pct_ms[m][p] = stats_percentile(v[m], nv[m], o->percentiles[p]) * 1e3;
        free(v[m]);
    }
}

// --- printing -------------------------------------------------------------------------------------------------------

static void rule(const char *title, char fill) {   // "----Title----", 50 wide, as vLLM centres it
    int len = (int)strlen(title), left = (50 - len) / 2, right = 50 - len - left;
    for (int i = 0; i < left; i++) putchar(fill);
    fputs(title, stdout);
    for (int i = 0; i < right; i++) putchar(fill);
    putchar('\n');
}

void serve_print_summary(const serve_bench_opts *o, const serve_summary *s) {
    rule(" Serving Benchmark Result ", '=');
    printf("%-40s %-10d\n", "Successful requests:", s->completed);
    printf("%-40s %-10d\n", "Failed requests:", s->failed);
    if (o->max_concurrency) printf("%-40s %-10d\n", "Maximum request concurrency:", o->max_concurrency);
    printf("%-40s %-10.2f\n", "Benchmark duration (s):", s->duration);
    printf("%-40s %-10ld\n", "Total input tokens:", s->total_input);
    printf("%-40s %-10ld\n", "Total generated tokens:", s->total_output);
    printf("%-40s %-10.2f\n", "Request throughput (req/s):", s->request_throughput);
    if (!isnan(s->request_goodput)) printf("%-40s %-10.2f\n", "Request goodput (req/s):", s->request_goodput);
    printf("%-40s %-10.2f\n", "Output token throughput (tok/s):", s->output_throughput);
    printf("%-40s %-10.2f\n", "Total Token throughput (tok/s):", s->total_token_throughput);
    for (int m = 0; m < N_METRICS; m++) {
        if (!(o->percentile_metrics & 1 << m)) continue;
        rule(metric_title[m], '-');
        char label[64];
        snprintf(label, sizeof label, "Mean %s (ms):", metric_upper[m]);
        printf("%-40s %-10.2f\n", label, s->mean_ms[m]);
        snprintf(label, sizeof label, "Median %s (ms):", metric_upper[m]);
        printf("%-40s %-10.2f\n", label, s->median_ms[m]);
        for (int p = 0; p < o->n_percentiles; p++) {
            snprintf(label, sizeof label, "P%g %s (ms):", o->percentiles[p], metric_upper[m]);
            printf("%-40s %-10.2f\n", label, s->pct_ms[m][p]);
        }
    }
    rule("", '=');
}

// The schedules side by side: each one's latencies, and its mean TPOT and E2EL over the first schedule's.
void serve_print_schedules(const serve_bench_opts *o, const serve_summary *per) {
    if (o->interleave_schedules)
        printf("\nSchedules interleaved in one run (--interleave-schedules): their requests shared batch steps, so each\n"
               "row measures the mix, not the schedule alone.\n");
    else
        printf("\nEach schedule alone, in its own phase: the same %d prompts at the same arrival times; each row from\n"
               "that schedule's requests over its phase's duration.\n", o->num_prompts);
    printf("\n| schedule | completed | failed | output tok/s | mean TTFT (ms) | mean TPOT (ms) | median TPOT (ms) | "
           "mean E2EL (ms) | TPOT vs %s | E2EL vs %s |\n",
           o->schedules[0], o->schedules[0]);
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < o->n_schedules; k++) {
        const serve_summary *s = &per[k], *b = &per[0];
        printf("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | ", o->schedules[k], s->completed, s->failed,
               s->output_throughput, s->mean_ms[METRIC_TTFT], s->mean_ms[METRIC_TPOT], s->median_ms[METRIC_TPOT],
               s->mean_ms[METRIC_E2EL]);
        if (b->mean_ms[METRIC_TPOT] > 0) printf("%.3f | ", s->mean_ms[METRIC_TPOT] / b->mean_ms[METRIC_TPOT]);
        else printf("- | ");
        if (b->mean_ms[METRIC_E2EL] > 0) printf("%.3f |\n", s->mean_ms[METRIC_E2EL] / b->mean_ms[METRIC_E2EL]);
        else printf("- |\n");
    }
}

// --- the result file ------------------------------------------------------------------------------------------------

static void add_summary(cJSON *j, const serve_bench_opts *o, const serve_summary *s) {
    cJSON_AddNumberToObject(j, "duration", s->duration);
    cJSON_AddNumberToObject(j, "completed", s->completed);
    cJSON_AddNumberToObject(j, "failed", s->failed);
    cJSON_AddNumberToObject(j, "total_input_tokens", (double)s->total_input);
    cJSON_AddNumberToObject(j, "total_output_tokens", (double)s->total_output);
    cJSON_AddNumberToObject(j, "request_throughput", s->request_throughput);
    if (isnan(s->request_goodput)) cJSON_AddNullToObject(j, "request_goodput");
    else cJSON_AddNumberToObject(j, "request_goodput", s->request_goodput);
    cJSON_AddNumberToObject(j, "output_throughput", s->output_throughput);
    cJSON_AddNumberToObject(j, "total_token_throughput", s->total_token_throughput);
    for (int m = 0; m < N_METRICS; m++) {
        if (!(o->percentile_metrics & 1 << m)) continue;
        char key[64];
        snprintf(key, sizeof key, "mean_%s_ms", serve_metric_names[m]);
        cJSON_AddNumberToObject(j, key, s->mean_ms[m]);
        snprintf(key, sizeof key, "median_%s_ms", serve_metric_names[m]);
        cJSON_AddNumberToObject(j, key, s->median_ms[m]);
        snprintf(key, sizeof key, "std_%s_ms", serve_metric_names[m]);
        cJSON_AddNumberToObject(j, key, s->std_ms[m]);
        for (int p = 0; p < o->n_percentiles; p++) {
            snprintf(key, sizeof key, "p%g_%s_ms", o->percentiles[p], serve_metric_names[m]);
            cJSON_AddNumberToObject(j, key, s->pct_ms[m][p]);
        }
    }
}

char *serve_result_json(const serve_bench_opts *o, const char *model, const char *date, const serve_result *r, int n,
                        const serve_summary *all, const serve_summary *per) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "date", date);
    cJSON_AddStringToObject(j, "backend", strstr(o->endpoint, "chat/completions") ? "openai-chat" : "openai");
    cJSON_AddStringToObject(j, "model_id", model);
    cJSON_AddStringToObject(j, "tokenizer_id", o->model_dir ? o->model_dir : model);
    cJSON_AddStringToObject(j, "url", o->url);
    cJSON_AddStringToObject(j, "endpoint", o->endpoint);
    cJSON_AddNumberToObject(j, "num_prompts", o->num_prompts);
    if (isinf(o->request_rate)) cJSON_AddStringToObject(j, "request_rate", "inf");
    else cJSON_AddNumberToObject(j, "request_rate", o->request_rate);
    cJSON_AddNumberToObject(j, "burstiness", o->burstiness);
    if (o->max_concurrency) cJSON_AddNumberToObject(j, "max_concurrency", o->max_concurrency);
    else cJSON_AddNullToObject(j, "max_concurrency");
    add_summary(j, o, all);
    cJSON *in = cJSON_AddArrayToObject(j, "input_lens"), *out = cJSON_AddArrayToObject(j, "output_lens");
    cJSON *ttfts = cJSON_AddArrayToObject(j, "ttfts"), *e2els = cJSON_AddArrayToObject(j, "e2els");
    cJSON *itls = cJSON_AddArrayToObject(j, "itls"), *texts = cJSON_AddArrayToObject(j, "generated_texts");
    cJSON *errors = cJSON_AddArrayToObject(j, "errors"), *sched = cJSON_AddArrayToObject(j, "layer_schedules");
    for (int i = 0; i < n; i++) {
        const serve_result *q = &r[i];
        cJSON_AddItemToArray(in, cJSON_CreateNumber(q->prompt_len));
        cJSON_AddItemToArray(out, cJSON_CreateNumber(q->ok ? q->output_len : 0));
        cJSON_AddItemToArray(ttfts, cJSON_CreateNumber(q->ok ? q->ttft : 0));
        cJSON_AddItemToArray(e2els, cJSON_CreateNumber(q->ok ? q->e2el : 0));
        cJSON *gaps = cJSON_CreateArray();
        for (int k = 0; q->ok && k < q->n_itl; k++) cJSON_AddItemToArray(gaps, cJSON_CreateNumber(q->itl[k]));
        cJSON_AddItemToArray(itls, gaps);
        cJSON_AddItemToArray(texts, cJSON_CreateString(q->text ? q->text : ""));
        cJSON_AddItemToArray(errors, cJSON_CreateString(q->error ? q->error : ""));
        cJSON_AddItemToArray(sched, q->schedule >= 0 ? cJSON_CreateString(o->schedules[q->schedule]) : cJSON_CreateNull());
    }
    if (o->n_schedules) {
        cJSON_AddStringToObject(j, "schedule_mode", o->interleave_schedules || o->n_schedules == 1 ? "interleaved" : "phases");
        cJSON *list = cJSON_AddArrayToObject(j, "schedules");
        for (int k = 0; k < o->n_schedules; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "schedule", o->schedules[k]);
            add_summary(e, o, &per[k]);
            double bt = per[0].mean_ms[METRIC_TPOT], be = per[0].mean_ms[METRIC_E2EL];
            cJSON_AddNumberToObject(e, "mean_tpot_vs_first", bt > 0 ? per[k].mean_ms[METRIC_TPOT] / bt : 0);
            cJSON_AddNumberToObject(e, "mean_e2el_vs_first", be > 0 ? per[k].mean_ms[METRIC_E2EL] / be : 0);
            cJSON_AddItemToArray(list, e);
        }
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}
