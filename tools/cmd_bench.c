// `reprise bench`: latency and throughput with llama-bench's flags, several schedules side by side, each figure
// beside its roofline.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/roofline.h"
#include "loader/alloc.h"
#include "loader/json_file.h"
#include "engine/tensor_parallel.h"
#include "loader/config.h"
#include "tools/bench/bench_offline.h"
#include "tools/bench/bench_serve.h"
#include "tools/cli.h"

static const char *synopsis =
    "usage: reprise bench [-m DIR] [-p N,..] [-n N,..] [-pg N,M] [-d N,..] [-b N,..] [-r N] [--schedule \"S;S..\"] [options]\n"
    "Latency and throughput as llama-bench measures them, for each schedule side by side, beside the roofline.\n"
    "Every list flag takes comma-separated values; every combination is a test (a row per schedule).\n";

static const char *serve_synopsis =
    "\n"
    "usage: reprise bench --serve URL [options]\n"
    "vLLM's serving benchmark (benchmark_serving's flags, definitions and result keys) against reprise serve or any\n"
    "OpenAI-compatible server: TTFT, TPOT = (E2EL - TTFT) / (output tokens - 1) per request, ITL between chunks,\n"
    "E2EL; streamed requests, timed chunk by chunk.\n";

static int rule_pg(void *at, const char *flag, const char *v, rp_err *err) {   // -pg N,M (repeatable)
    bench_opts *o = at;
    int one[2], n = 0;
    if (options_parse_ints(flag, v, 1, 2, one, &n, err) || n != 2) return n == 2 ? -1 : rp_fail(err, "%s: '%s' is not N,M", flag, v);
    if (o->n_pg == BENCH_MAX_LIST) return rp_fail(err, "%s: at most %d", flag, BENCH_MAX_LIST);
    o->pg[o->n_pg][0] = one[0], o->pg[o->n_pg++][1] = one[1];
    return 0;
}

static int rule_gpu(void *at, const char *flag, const char *v, rp_err *err) {
    if (!roofline_gpu(v)) return rp_fail(err, "%s %s: h100, h200 or a100", flag, v);
    *(const char **)at = v;
    return 0;
}

static void bench_print_serve_help(void);

// bench's flags into o; the shared ones it takes (-m, --backend, -t, --tp, --kv-dtype, --allow-unused-tensors) go
// through cli_opts. -1 when the command is to exit at once with *code.
static int parse_args(int argc, char **argv, bench_opts *o, const char **sched_text, int *code) {
    cli_opts c;
    int format = 0, no_warmup = 0;
    const option_def options[] = {
        SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
        {OPT_INTS, "-p", "N,..", o->prompts, 1, BENCH_MAX_LIST, &o->n_prompts,
         .help = "prompt processing tests: N prompt tokens per sequence in one step (default 512, at most half the context)"},
        {OPT_INTS, "-n", "N,..", o->gens, 1, BENCH_MAX_LIST, &o->n_gens,
         .help = "generation tests: N decode steps (default 128, at most a quarter of the context)"},
        {OPT_RULE, "-pg", "N,M", o, .rule = rule_pg, .help = "a prompt of N then M generated tokens, timed together (repeatable)"},
        {OPT_INTS, "-d", "N,..", o->depths, 0, BENCH_MAX_LIST, &o->n_depths, .def = "0",
         .help = "depth: N tokens already in the KV cache before the test"},
        {OPT_INTS, "-b", "N,..", o->batches, 1, BENCH_MAX_LIST, &o->n_batches, .def = "1",
         .help = "independent sequences run together"},
        {OPT_INT, "-r", "N", &o->reps, 1, 1 << 24, .def = "5", .help = "repetitions: mean and standard deviation over N runs"},
        {OPT_SWITCH, "--no-warmup", NULL, &no_warmup, .help = "no untimed run before each test"},
        {OPT_TEXT, "--schedule", "\"S;..\"", sched_text, .def = "base",
         .help = "schedules, ';'-separated, each a row; the first is the base of 'time vs base'"},
        {OPT_CHOICE, "-o", "FMT", &format, .choices = "md|csv|json|jsonl", .def = "md",
         .help = "the table: md, csv, json or jsonl (llama-bench's field names, plus schedule, visits, n_seqs)"},
        {OPT_RULE, "--gpu", "NAME", &o->gpu, .rule = rule_gpu,
         .help = "h100, h200 or a100: print that GPU's rooflines alone, measuring nothing (no GPU here)"},
        {OPT_SHARED, "--draft",
         .help = "self-speculative decoding: each generation test again with schedule S of the same weights drafting, "
                 "its row beside the one without (time vs base: against that row), with the draft's acceptance"},
        SHARED_FLAG("--draft-tokens"),
        SHARED_FLAG("--backend"), SHARED_FLAG("--tp"), {OPT_SHARED, "-t", .help = "threads of the CPU backend (default: all cores)"},
        SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"), SHARED_FLAG("--allow-unused-tensors"),
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &c, code)) {
        if (*code == 0) bench_print_serve_help();
        return -1;
    }
    static const char *const formats[] = {"md", "csv", "json", "jsonl"};
    o->format = formats[format], o->warmup = !no_warmup;
    o->model_dir = c.model_dir, o->backend = c.backend, o->threads = c.threads, o->tp = c.tp, o->kv_dtype = c.kv_dtype, o->weights = c.weights;
    o->allow_unused_tensors = c.allow_unused_tensors;
    o->draft = c.draft, o->draft_tokens = c.draft_tokens;
    model_config cfg;   // llama-bench's defaults, cut to the context of a small model
    rp_err err;
    if (config_load(&cfg, o->model_dir, &err)) return fprintf(stderr, "reprise bench: %s\n", err.msg), *code = 2, -1;
    int p_given = o->n_prompts > 0, n_given = o->n_gens > 0;
    if (!p_given) o->prompts[0] = cfg.max_pos / 2 < 512 ? cfg.max_pos / 2 : 512, o->n_prompts = 1;
    if (!n_given) o->gens[0] = cfg.max_pos / 4 < 128 ? cfg.max_pos / 4 : 128, o->n_gens = 1;
    if ((p_given || n_given) && !(p_given && n_given)) {   // llama-bench: giving one kind of test alone runs only it
        if (!p_given) o->n_prompts = 0;
        if (!n_given) o->n_gens = 0;
    }
    return 0;
}

static int rule_request_rate(void *at, const char *flag, const char *v, rp_err *err) {   // "inf": all at once
    if (!strcmp(v, "inf")) return *(double *)at = INFINITY, 0;
    return options_parse_double(flag, v, 1e-9, 1e9, at, err);
}
static int rule_seed(void *at, const char *flag, const char *v, rp_err *err) {
    double x;
    if (options_parse_double(flag, v, 0, 9e15, &x, err)) return -1;
    *(unsigned long long *)at = (unsigned long long)x;
    return 0;
}
static int rule_goodput(void *at, const char *flag, const char *v, rp_err *err) {
    (void)flag;
    return serve_parse_goodput(at, v, err);
}
static int rule_percentile_metrics(void *at, const char *flag, const char *v, rp_err *err) {
    (void)flag;
    return serve_parse_percentile_metrics(at, v, err);
}
static int rule_percentiles(void *at, const char *flag, const char *v, rp_err *err) {
    (void)flag;
    return serve_parse_percentiles(at, v, err);
}

// bench --serve's flags, declared once for its parser and its help (o == NULL: the help alone).
static void serve_table(serve_bench_opts *o, const char **sched_text, int *dataset, option_def t[32]) {
    const option_def list[] = {
        {OPT_TEXT, "--serve", "URL", &o->url, .help = "the server, e.g. http://127.0.0.1:8000"},
        {OPT_TEXT, "--endpoint", "PATH", &o->endpoint, .def = "/v1/completions", .help = "/v1/completions or /v1/chat/completions"},
        {OPT_TEXT, "--model", "NAME", &o->model, .help = "the model to name in requests (default: the first the server lists)"},
        {OPT_TEXT, "-m", "DIR", &o->model_dir,
         .help = "a model directory whose tokenizer.json gives the random prompts' vocabulary (default: the server's "
                 "/tokenizer_info)"},
        {OPT_TEXT, "--api-key", "KEY", &o->api_key, .help = "sent as a bearer token (default: $OPENAI_API_KEY)"},
        {OPT_INT, "--num-prompts", "N", &o->num_prompts, 1, 1e6, .def = "1000", .help = "requests in all"},
        {OPT_RULE, "--request-rate", "R", &o->request_rate, .rule = rule_request_rate, .def = "inf",
         .help = "requests per second, arriving at random (inf: all at once)"},
        {OPT_DOUBLE, "--burstiness", "B", &o->burstiness, 1e-3, 1e3, .def = "1",
         .help = "the gamma shape of the gaps between arrivals: 1 Poisson, < 1 burstier"},
        {OPT_INT, "--max-concurrency", "N", &o->max_concurrency, 1, 1e6,
         .help = "at most N requests in flight; the others wait their turn (default: no limit)"},
        {OPT_CHOICE, "--dataset-name", "NAME", dataset, .choices = "random|jsonl", .def = "random",
         .help = "random: token-id prompts of random ids; jsonl: --dataset-path's lines"},
        {OPT_TEXT, "--dataset-path", "FILE", &o->dataset_path,
         .help = "JSONL, a request per line: {\"prompt\": \"text\" or [ids], \"output_len\": N}"},
        {OPT_INT, "--random-input-len", "N", &o->random_input_len, 1, 1e6, .def = "1024", .help = "prompt tokens of a random request"},
        {OPT_INT, "--random-output-len", "N", &o->random_output_len, 1, 1e6, .def = "128",
         .help = "tokens to generate (also jsonl lines without output_len)"},
        {OPT_DOUBLE, "--random-range-ratio", "R", &o->random_range_ratio, 0, 0.999, .def = "0",
         .help = "lengths uniform in [N(1-R), N(1+R)]"},
        {OPT_SWITCH, "--ignore-eos", NULL, &o->ignore_eos, .help = "generate every requested token (sent as ignore_eos)"},
        {OPT_DOUBLE, "--temperature", "T", &o->temperature, 0, 100, .def = "0", .help = "sampling temperature sent"},
        {OPT_RULE, "--seed", "N", &o->seed, .rule = rule_seed, .def = "0", .help = "the random prompts and arrival times"},
        {OPT_TEXT, "--schedule", "\"S;..\"", sched_text,
         .help = "schedules compared on one server, each in its own phase: --num-prompts requests with every "
                 "schedule in turn, on the same prompts at the same arrival times, each schedule's figures from its "
                 "own requests and phase; a table of them side by side, the first the base of the ratios"},
        {OPT_SWITCH, "--interleave-schedules", NULL, &o->interleave_schedules,
         .help = "one run instead, request i with schedule i % n (pairs sharing a prompt): the schedules share batch "
                 "steps, so the per-schedule figures measure the mix, not each schedule"},
        {OPT_RULE, "--goodput", "SLOS", o, .rule = rule_goodput,
         .help = "requests/s meeting every SLO, e.g. ttft:500,tpot:20 (ms; keys ttft, tpot, e2el)"},
        {OPT_RULE, "--percentile-metrics", "L", o, .rule = rule_percentile_metrics, .def = "ttft,tpot,itl",
         .help = "metrics to report percentiles of (also e2el)"},
        {OPT_RULE, "--metric-percentiles", "L", o, .rule = rule_percentiles, .def = "99",
         .help = "percentiles to report, e.g. 50,90,99"},
        {OPT_DOUBLE, "--request-timeout", "S", &o->request_timeout_s, 0.001, 1e7, .def = "600",
         .help = "a request not finished in S seconds fails"},
        {OPT_SWITCH, "--save-result", NULL, &o->save_result,
         .help = "write the result JSON (vLLM's keys, with every request's figures)"},
        {OPT_TEXT, "--result-dir", "DIR", &o->result_dir, .help = "where (default: here; made when missing, checked before the run)"},
        {OPT_TEXT, "--result-filename", "F", &o->result_filename, .help = "its name (default reprise-RATEqps-MODEL-DATE.json)"},
        OPTIONS_END,
    };
    _Static_assert(sizeof list / sizeof *list <= 32, "serve_table");
    memcpy(t, list, sizeof list);
}

static void bench_print_serve_help(void) {
    serve_bench_opts o;
    const char *sched;
    int dataset;
    option_def t[32];
    serve_table(&o, &sched, &dataset, t);
    options_print_help(serve_synopsis, t, NULL);
}

static int parse_serve_args(int argc, char **argv, serve_bench_opts *o, const char **sched_text, int *help, rp_err *err) {
    option_def t[32];
    int dataset = 0;
    serve_table(o, sched_text, &dataset, t);
    if (options_parse(argc, argv, 2, t, NULL, help, err)) return -1;
    if (*help) return 0;
    o->dataset_name = dataset ? "jsonl" : "random";
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))
        return rp_fail(err, "--serve: '%s' is not an http:// or https:// URL", o->url);
    if (!strcmp(o->dataset_name, "jsonl") && !o->dataset_path) return rp_fail(err, "--dataset-name jsonl needs --dataset-path");
    if (o->dataset_path && strcmp(o->dataset_name, "jsonl"))
        return rp_fail(err, "--dataset-path is for --dataset-name jsonl");
    if (!o->api_key) o->api_key = getenv("OPENAI_API_KEY");
    if (o->save_result && o->result_dir &&   // made now: a whole benchmark is not run to fail at its last step
        dir_make_writable(o->result_dir, "--result-dir", "the result JSON goes there", err))
        return -1;
    return 0;
}

static int cmd_bench_serve(int argc, char **argv) {
    serve_bench_opts o = {0};
    const char *sched_text = NULL;
    char *list = NULL;
    int help = 0, rc;
    rp_err err;
    if (parse_serve_args(argc, argv, &o, &sched_text, &help, &err)) {
        fprintf(stderr, "reprise bench: %s\n", err.msg);
        return 2;
    }
    if (help) {   // the whole of bench's help: the offline table, then this one
        char *h[] = {argv[0], argv[1], "--help"};
        bench_opts b = {0};
        parse_args(3, h, &b, &sched_text, &rc);
    }
    else if (sched_text && cli_split_schedules("reprise bench", sched_text, &list, o.schedules, BENCH_MAX_LIST, &o.n_schedules)) rc = 2;
    else rc = bench_serve(&o);
    free(list);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--serve")) return cmd_bench_serve(argc, argv);
    bench_opts o = {0};
    const char *sched_text = NULL;
    int code;
    if (parse_args(argc, argv, &o, &sched_text, &code)) return code;
    char *list = NULL;
    int rc = cli_split_schedules("reprise bench", sched_text, &list, o.schedules, BENCH_MAX_LIST, &o.n_schedules) ? 2 : bench_offline(&o);
    free(list);
    return rc;
}
