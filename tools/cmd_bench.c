// `reprise bench`: latency and throughput with llama-bench's flags, several schedules side by side, each figure
// beside its roofline.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/roofline.h"
#include "engine/tensor_parallel.h"
#include "loader/config.h"
#include "tools/bench/bench_offline.h"
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
    "  -t N              threads of the CPU backend (default: all cores)\n";

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
            if (!rc && !strcmp(a, "--tp") && o->tp > TP_MAX_RANKS) rc = rp_fail(err, "--tp: at most %d", TP_MAX_RANKS);
        } else if (!strcmp(a, "--schedule")) *sched_text = strdup(v);
        else if (!strcmp(a, "-o")) {
            if (strcmp(v, "md") && strcmp(v, "csv") && strcmp(v, "json") && strcmp(v, "jsonl"))
                rc = rp_fail(err, "-o: '%s': md, csv, json or jsonl", v);
            o->format = v;
        } else if (!strcmp(a, "--gpu")) {
            if (!roofline_gpu(v)) rc = rp_fail(err, "--gpu: '%s': h100, h200 or a100", v);
            o->gpu = v;
        } else if (!strcmp(a, "--backend")) o->backend = v;
        else rc = rp_fail(err, "unknown option '%s' (see --help)", a);
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

int cmd_bench(int argc, char **argv) {
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
    char *list = strdup(sched_text ? sched_text : "base"), *save = NULL;
    for (char *s = strtok_r(list, ";", &save); s && o.n_schedules < BENCH_MAX_LIST; s = strtok_r(NULL, ";", &save))
        if (*s) o.schedules[o.n_schedules++] = s;
    int rc = o.n_schedules ? bench_offline(&o) : (fprintf(stderr, "reprise bench: --schedule: no schedules\n"), 2);
    free(list), free(sched_text);
    return rc;
}
