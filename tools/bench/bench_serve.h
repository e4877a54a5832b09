// `reprise bench --serve URL`: vLLM's serving benchmark against reprise serve or any OpenAI-compatible server, with
// its flags, definitions and result keys, and a layer schedule per request so schedules compare on one server.
#ifndef REPRISE_BENCH_SERVE_H
#define REPRISE_BENCH_SERVE_H

#include "loader/error.h"
#include "tools/bench/bench_offline.h"

#define SERVE_BENCH_MAX_PERCENTILES 16

// The metrics vLLM reports percentiles of (--percentile-metrics).
enum { METRIC_TTFT, METRIC_TPOT, METRIC_ITL, METRIC_E2EL, N_METRICS };
extern const char *const serve_metric_names[N_METRICS];   // "ttft", "tpot", "itl", "e2el"

typedef struct {
    const char *url;              // --serve: the server's base URL, http[s]://host:port[/prefix]
    const char *endpoint;         // --endpoint: /v1/completions (default) or /v1/chat/completions
    const char *model;            // --model (NULL: the first model the server lists)
    const char *model_dir;        // -m: a local model whose tokenizer gives the random dataset's vocabulary
    const char *api_key;          // --api-key, else $OPENAI_API_KEY
    int num_prompts;              // --num-prompts: requests in all (with several schedules: of each schedule)
    double request_rate;          // --request-rate: requests/s (INFINITY: all at once)
    double burstiness;            // --burstiness: the gamma shape of the gaps (1: Poisson)
    int max_concurrency;          // --max-concurrency (0: no limit)
    const char *dataset_name;     // --dataset-name: random or jsonl
    const char *dataset_path;     // --dataset-path (jsonl)
    int random_input_len;         // --random-input-len
    int random_output_len;        // --random-output-len (and the jsonl default)
    double random_range_ratio;    // --random-range-ratio: lengths uniform in [L(1-r), L(1+r)]
    int ignore_eos;               // --ignore-eos
    double temperature;           // --temperature
    unsigned long long seed;      // --seed: the dataset and the arrival times
    double goodput_ms[N_METRICS]; // --goodput: the SLO of ttft, tpot, e2el in ms (0: none)
    int percentile_metrics;       // --percentile-metrics: a bit per METRIC_*
    double percentiles[SERVE_BENCH_MAX_PERCENTILES];   // --metric-percentiles
    int n_percentiles;
    int save_result;              // --save-result
    const char *result_dir;       // --result-dir
    const char *result_filename;  // --result-filename
    double request_timeout_s;     // --request-timeout: a request not done by then fails
    char *schedules[BENCH_MAX_LIST];   // --schedule "base;rys:2,4" (none: not sent)
    int n_schedules;
    int interleave_schedules;     // --interleave-schedules: one run, request i with schedule i % n (they share batch
                                  // steps: a measure of the mix); else each schedule runs alone, in turn, on the
                                  // same prompts at the same arrival times
} serve_bench_opts;

// One request's outcome, in vLLM's terms.
typedef struct {
    int ok;
    int schedule;        // index into the options' schedules, -1 without --schedule
    int prompt_len;      // the server's usage.prompt_tokens, else the token ids sent (0: unknown)
    int output_len;      // the server's usage.completion_tokens, else the chunks that carried text
    double ttft;         // seconds from sending to the first chunk
    double e2el;         // seconds from sending to the last chunk
    double *itl;         // (n_itl) seconds between successive chunks
    int n_itl;
    char *text;          // what it generated
    char *error;         // why it failed (NULL when ok)
} serve_result;

// The summary of the requests of one schedule (or all, schedule -1), as vLLM computes it.
typedef struct {
    int completed, failed, good;
    long total_input, total_output;
    double duration, request_throughput, output_throughput, total_token_throughput;
    double request_goodput;   // NAN without --goodput
    double mean_ms[N_METRICS], median_ms[N_METRICS], std_ms[N_METRICS];
    double pct_ms[N_METRICS][SERVE_BENCH_MAX_PERCENTILES];
} serve_summary;

// Summarizes the results of schedule `schedule` (-1: all) over a run of `duration` seconds.
void serve_summarize(const serve_bench_opts *o, const serve_result *r, int n, int schedule, double duration,
                     serve_summary *s);

// vLLM's result table, to stdout.
void serve_print_summary(const serve_bench_opts *o, const serve_summary *s);

// The schedules side by side (per: one summary per schedule), a Markdown table, to stdout.
void serve_print_schedules(const serve_bench_opts *o, const serve_summary *per);

// The result file's JSON: vLLM's keys (date, model_id, num_prompts, request_rate, completed, duration, ...,
// input_lens, output_lens, ttfts, itls, generated_texts, errors) plus failed, e2els, layer_schedules and, with
// --schedule, a summary per schedule. A fresh string.
char *serve_result_json(const serve_bench_opts *o, const char *model, const char *date, const serve_result *r, int n,
                        const serve_summary *all, const serve_summary *per);

// Runs the benchmark, prints vLLM's result table (and the schedules side by side) to stdout and progress to
// stderr; with --save-result writes the JSON. 0; 1 with the error printed (an unreachable server, a failing first
// request, a bad dataset).
int bench_serve(const serve_bench_opts *o);

// Parses --goodput "ttft:500,tpot:20" (also space-separated) into o->goodput_ms.
int serve_parse_goodput(serve_bench_opts *o, const char *text, rp_err *err);

// Parses --percentile-metrics "ttft,tpot,itl" and --metric-percentiles "50,90,99".
int serve_parse_percentile_metrics(serve_bench_opts *o, const char *text, rp_err *err);
int serve_parse_percentiles(serve_bench_opts *o, const char *text, rp_err *err);

#endif
