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

static const char *usage =
    "usage: reprise bench [-m DIR] [-p N,..] [-n N,..] [-pg N,M] [-d N,..] [-b N,..] [-r N] [--schedule \"S;S..\"] [options]\n"
    "Latency and throughput as llama-bench measures them, for each schedule side by side, beside the roofline.\n"
    "Every list flag takes comma-separated values; every combination is a test (a row per schedule).\n"
    "  -m DIR            model directory (default: the built-in model)\n"
    "  -p N,..           prompt processing tests: N prompt tokens per sequence in one step (default 512, at most\n"
    "                    half the context)\n"
    "  -n N,..           generation tests: N decode steps (default 128, at most a quarter of the context)\n"
    "  -pg N,M           a prompt of N then M generated tokens, timed together (repeatable)\n"
    "  -d N,..           depth: N tokens already in the KV cache before the test (default 0)\n"
    "  -b N,..           independent sequences run together (default 1)\n"
    "  -r N              repetitions: mean and standard deviation over N runs (default 5)\n"
    "  --no-warmup       no untimed run before each test\n"
    "  --schedule \"S;..\" schedules, ';'-separated, each a row (default base); the first is the base of 'time vs base'\n"
    "  -o FMT            md (default), csv, json or jsonl (llama-bench's field names, plus schedule, visits, n_seqs)\n"
    "  --gpu NAME        h100, h200 or a100: print that GPU's rooflines alone, measuring nothing (no GPU here)\n"
    "  --backend B       cpu, cuda, or auto (default auto)\n"
    "  --tp N            split the model over N GPUs (tensor parallel; default 1)\n"
    "  -t N              threads of the CPU backend (default: all cores)\n"
    "  --kv-dtype T      the CPU backend's KV cache: auto (default: bf16 for a BF16 model, else f32), bf16 or f32\n"
    "  --allow-unused-tensors   run a checkpoint holding tensors the model does not read (else refused)\n"
    "\n"
    "usage: reprise bench --serve URL [options]\n"
    "vLLM's serving benchmark (benchmark_serving's flags, definitions and result keys) against reprise serve or any\n"
    "OpenAI-compatible server: TTFT, TPOT = (E2EL - TTFT) / (output tokens - 1) per request, ITL between chunks,\n"
    "E2EL; streamed requests, timed chunk by chunk.\n"
    "  --serve URL            the server, e.g. http://127.0.0.1:8000\n"
    "  --endpoint PATH        /v1/completions (default) or /v1/chat/completions\n"
    "  --model NAME           the model to name in requests (default: the first the server lists)\n"
    "  -m DIR                 a model directory whose tokenizer.json gives the random prompts' vocabulary (default:\n"
    "                         the server's /tokenizer_info)\n"
    "  --api-key KEY          sent as a bearer token (default: $OPENAI_API_KEY)\n"
    "  --num-prompts N        requests in all (default 1000)\n"
    "  --request-rate R       requests per second, arriving at random (default inf: all at once)\n"
    "  --burstiness B         the gamma shape of the gaps between arrivals: 1 Poisson (default), < 1 burstier\n"
    "  --max-concurrency N    at most N requests in flight; the others wait their turn (default: no limit)\n"
    "  --dataset-name NAME    random (default): token-id prompts of random ids; jsonl: --dataset-path's lines\n"
    "  --dataset-path FILE    JSONL, a request per line: {\"prompt\": \"text\" or [ids], \"output_len\": N}\n"
    "  --random-input-len N   prompt tokens of a random request (default 1024)\n"
    "  --random-output-len N  tokens to generate (default 128; also jsonl lines without output_len)\n"
    "  --random-range-ratio R lengths uniform in [N(1-R), N(1+R)] (default 0)\n"
    "  --ignore-eos           generate every requested token (sent as ignore_eos)\n"
    "  --temperature T        sampling temperature sent (default 0)\n"
    "  --seed N               the random prompts and arrival times (default 0)\n"
    "  --schedule \"S;..\"      schedules compared on one server, each in its own phase: --num-prompts requests\n"
    "                         with every schedule in turn, on the same prompts at the same arrival times, each\n"
    "                         schedule's figures from its own requests and phase; a table of them side by side, the\n"
    "                         first the base of the ratios\n"
    "  --interleave-schedules one run instead, request i with schedule i % n (pairs sharing a prompt): the schedules\n"
    "                         share batch steps, so the per-schedule figures measure the mix, not each schedule\n"
    "  --goodput SLOS         requests/s meeting every SLO, e.g. ttft:500,tpot:20 (ms; keys ttft, tpot, e2el)\n"
    "  --percentile-metrics L metrics to report percentiles of (default ttft,tpot,itl; also e2el)\n"
    "  --metric-percentiles L percentiles to report (default 99), e.g. 50,90,99\n"
    "  --request-timeout S    a request not finished in S seconds fails (default 600)\n"
    "  --save-result          write the result JSON (vLLM's keys, with every request's figures)\n"
    "  --result-dir DIR       where (default: here; made when missing, checked before the run)\n"
    "  --result-filename F    its name (default reprise-RATEqps-MODEL-DATE.json)\n";

static int parse_list(const char *flag, const char *v, int lo, int *out, int *n, rp_err *err) {
    *n = 0;
    for (const char *p = v; *p;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > (1 << 24) || (*end && *end != ','))
            return rp_fail(err, "%s: '%s' is not a comma-separated list of integers >= %d", flag, v, lo);
        if (*n == BENCH_MAX_LIST) return rp_fail(err, "%s: at most %d values", flag, BENCH_MAX_LIST);
        out[(*n)++] = (int)x;
        p = *end ? end + 1 : end;
    }
    if (!*n) return rp_fail(err, "%s: no values", flag);
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts *o, char **sched_text, int *help, rp_err *err) {
    int p_given = 0, n_given = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return *help = 1, 0;
        if (!strcmp(a, "--no-warmup")) {
            o->warmup = 0;
            continue;
        }
        if (!strcmp(a, "--allow-unused-tensors")) {
            o->allow_unused_tensors = 1;
            continue;
        }
        if (i + 1 >= argc) return rp_fail(err, "%s needs a value (see --help)", a);
        const char *v = argv[++i];
        int one[BENCH_MAX_LIST], n1, rc = 0;
        if (!strcmp(a, "-m")) o->model_dir = v;
        else if (!strcmp(a, "-p")) rc = parse_list(a, v, 1, o->prompts, &o->n_prompts, err), p_given = 1;
        else if (!strcmp(a, "-n")) rc = parse_list(a, v, 1, o->gens, &o->n_gens, err), n_given = 1;
        else if (!strcmp(a, "-d")) rc = parse_list(a, v, 0, o->depths, &o->n_depths, err);
        else if (!strcmp(a, "-b")) rc = parse_list(a, v, 1, o->batches, &o->n_batches, err);
        else if (!strcmp(a, "-pg")) {
            rc = parse_list(a, v, 1, one, &n1, err);
            if (!rc && n1 != 2) rc = rp_fail(err, "-pg: '%s' is not N,M", v);
            if (!rc && o->n_pg == BENCH_MAX_LIST) rc = rp_fail(err, "-pg: at most %d", BENCH_MAX_LIST);
            if (!rc) o->pg[o->n_pg][0] = one[0], o->pg[o->n_pg++][1] = one[1];
        } else if (!strcmp(a, "-r") || !strcmp(a, "-t") || !strcmp(a, "--tp")) {
            rc = parse_list(a, v, 1, one, &n1, err);
            if (!rc && n1 != 1) rc = rp_fail(err, "%s takes one integer", a);
            if (!rc) *(!strcmp(a, "-r") ? &o->reps : !strcmp(a, "-t") ? &o->threads : &o->tp) = one[0];
            if (!rc && !strcmp(a, "-t")) o->threads = cli_clamp_threads(o->threads);
            if (!rc && !strcmp(a, "--tp") && o->tp > TP_MAX_RANKS) rc = rp_fail(err, "--tp: at most %d", TP_MAX_RANKS);
        } else if (!strcmp(a, "--schedule")) *sched_text = rp_strdup(v);
        else if (!strcmp(a, "-o")) {
            if (strcmp(v, "md") && strcmp(v, "csv") && strcmp(v, "json") && strcmp(v, "jsonl"))
                rc = rp_fail(err, "-o: '%s': md, csv, json or jsonl", v);
            o->format = v;
        } else if (!strcmp(a, "--gpu")) {
            if (!roofline_gpu(v)) rc = rp_fail(err, "--gpu: '%s': h100, h200 or a100", v);
            o->gpu = v;
        } else if (!strcmp(a, "--backend")) rc = cli_parse_backend(v, &o->backend, err);
        else if (!strcmp(a, "--kv-dtype")) {
            if (kv_dtype_parse(v, &o->kv_dtype)) rc = rp_fail(err, "--kv-dtype: '%s': auto, bf16 or f32", v);
        } else rc = rp_fail(err, "unknown option '%s' (see --help)", a);
        if (rc) return rc;
    }
    model_config cfg;   // llama-bench's defaults, cut to the context of a small model
    if (config_load(&cfg, o->model_dir, err)) return -1;
    if (!p_given) o->prompts[0] = cfg.max_pos / 2 < 512 ? cfg.max_pos / 2 : 512, o->n_prompts = 1;
    if (!n_given) o->gens[0] = cfg.max_pos / 4 < 128 ? cfg.max_pos / 4 : 128, o->n_gens = 1;
    if ((p_given || n_given) && !(p_given && n_given)) {   // llama-bench: giving one kind of test alone runs only it
        if (!p_given) o->n_prompts = 0;
        if (!n_given) o->n_gens = 0;
    }
    return 0;
}

static int parse_number(const char *flag, const char *v, double lo, double hi, double *out, rp_err *err) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi)) return rp_fail(err, "%s: '%s' is not a number from %g to %g", flag, v, lo, hi);
    *out = x;
    return 0;
}

static int parse_serve_args(int argc, char **argv, serve_bench_opts *o, char **sched_text, int *help, rp_err *err) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return *help = 1, 0;
        if (!strcmp(a, "--ignore-eos") || !strcmp(a, "--save-result") || !strcmp(a, "--interleave-schedules")) {
            *(!strcmp(a, "--ignore-eos") ? &o->ignore_eos : !strcmp(a, "--save-result") ? &o->save_result
                                                                                         : &o->interleave_schedules) = 1;
            continue;
        }
        if (i + 1 >= argc) return rp_fail(err, "%s needs a value (see --help)", a);
        const char *v = argv[++i];
        double x;
        int rc = 0;
        if (!strcmp(a, "--serve")) o->url = v;
        else if (!strcmp(a, "--endpoint")) o->endpoint = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "-m")) o->model_dir = v;
        else if (!strcmp(a, "--api-key")) o->api_key = v;
        else if (!strcmp(a, "--dataset-path")) o->dataset_path = v;
        else if (!strcmp(a, "--result-dir")) o->result_dir = v;
        else if (!strcmp(a, "--result-filename")) o->result_filename = v;
        else if (!strcmp(a, "--schedule")) free(*sched_text), *sched_text = rp_strdup(v);
        else if (!strcmp(a, "--goodput")) rc = serve_parse_goodput(o, v, err);
        else if (!strcmp(a, "--percentile-metrics")) rc = serve_parse_percentile_metrics(o, v, err);
        else if (!strcmp(a, "--metric-percentiles")) rc = serve_parse_percentiles(o, v, err);
        else if (!strcmp(a, "--dataset-name")) {
            if (strcmp(v, "random") && strcmp(v, "jsonl")) rc = rp_fail(err, "--dataset-name: '%s': random or jsonl", v);
            o->dataset_name = v;
        } else if (!strcmp(a, "--request-rate")) {
            if (!strcmp(v, "inf")) o->request_rate = INFINITY;
            else if (!(rc = parse_number(a, v, 1e-9, 1e9, &x, err))) o->request_rate = x;
        } else if (!strcmp(a, "--burstiness")) {
            if (!(rc = parse_number(a, v, 1e-3, 1e3, &x, err))) o->burstiness = x;
        } else if (!strcmp(a, "--random-range-ratio")) {
            if (!(rc = parse_number(a, v, 0, 0.999, &x, err))) o->random_range_ratio = x;
        } else if (!strcmp(a, "--temperature")) {
            if (!(rc = parse_number(a, v, 0, 100, &x, err))) o->temperature = x;
        } else if (!strcmp(a, "--request-timeout")) {
            if (!(rc = parse_number(a, v, 0.001, 1e7, &x, err))) o->request_timeout_s = x;
        } else if (!strcmp(a, "--seed")) {
            if (!(rc = parse_number(a, v, 0, 9e15, &x, err))) o->seed = (unsigned long long)x;
        } else if (!strcmp(a, "--num-prompts") || !strcmp(a, "--max-concurrency") || !strcmp(a, "--random-input-len") ||
                   !strcmp(a, "--random-output-len")) {
            if (!(rc = parse_number(a, v, 1, 1e6, &x, err)) && x != (int)x) rc = rp_fail(err, "%s: '%s' is not an integer", a, v);
            if (!rc) *(!strcmp(a, "--num-prompts") ? &o->num_prompts : !strcmp(a, "--max-concurrency") ? &o->max_concurrency
                       : !strcmp(a, "--random-input-len") ? &o->random_input_len : &o->random_output_len) = (int)x;
        } else rc = rp_fail(err, "unknown option '%s' for bench --serve (see --help)", a);
        if (rc) return rc;
    }
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

// Splits "a;b;c" into o's schedules (pointers into *list, which the caller frees).
static int split_schedules(const char *text, char **list, char **out, int *n) {
    *list = rp_strdup(text);
    char *save = NULL;
    *n = 0;
    for (char *s = strtok_r(*list, ";", &save); s && *n < BENCH_MAX_LIST; s = strtok_r(NULL, ";", &save)) {
        char *t = schedule_tidy(s);   // "base; rys:1,3": the row is named "rys:1,3"
        strcpy(s, t);                 // never longer
        free(t);
        if (*s) out[(*n)++] = s;
    }
    if (*n) return 0;
    fprintf(stderr, "reprise bench: --schedule: no schedules\n");
    return -1;
}

static int cmd_bench_serve(int argc, char **argv) {
    serve_bench_opts o = {.endpoint = "/v1/completions", .num_prompts = 1000, .request_rate = INFINITY,
                          .burstiness = 1, .dataset_name = "random", .random_input_len = 1024,
                          .random_output_len = 128, .percentile_metrics = 1 << METRIC_TTFT | 1 << METRIC_TPOT | 1 << METRIC_ITL,
                          .percentiles = {99}, .n_percentiles = 1, .request_timeout_s = 600};
    char *sched_text = NULL, *list = NULL;
    int help = 0, rc;
    rp_err err;
    if (parse_serve_args(argc, argv, &o, &sched_text, &help, &err)) {
        fprintf(stderr, "reprise bench: %s\n", err.msg);
        free(sched_text);
        return 2;
    }
    if (help) rc = (fputs(usage, stdout), 0);
    else if (sched_text && split_schedules(sched_text, &list, o.schedules, &o.n_schedules)) rc = 2;
    else rc = bench_serve(&o);
    free(list), free(sched_text);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--serve")) return cmd_bench_serve(argc, argv);
    bench_opts o = {.model_dir = REPRISE_DEFAULT_MODEL, .backend = "auto", .reps = 5, .warmup = 1, .format = "md",
                    .depths = {0}, .n_depths = 1, .batches = {1}, .n_batches = 1};
    char *sched_text = NULL;
    int help = 0;
    rp_err err;
    if (parse_args(argc, argv, &o, &sched_text, &help, &err)) {
        fprintf(stderr, "reprise bench: %s\n", err.msg);
        free(sched_text);
        return 2;
    }
    if (help) {
        fputs(usage, stdout);
        free(sched_text);
        return 0;
    }
    char *list = NULL;
    int rc = split_schedules(sched_text ? sched_text : "base", &list, o.schedules, &o.n_schedules) ? 2 : bench_offline(&o);
    free(list), free(sched_text);
    return rc;
}
