// Command-line options shared by the reprise subcommands, parsed one way everywhere.
#include "tools/cli.h"
#include "loader/alloc.h"

#include "engine/tensor_parallel.h"

#include "loader/json_file.h"
#include "loader/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int allowed_flag(const char *allowed, const char *name) {
    size_t n = strlen(name);
    for (const char *p = allowed; (p = strstr(p, name)); p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

int cli_parse_int(const char *flag, const char *v, long lo, long hi, int *out, rp_err *err) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return rp_fail(err, "%s: '%s' is not an integer in [%ld, %ld]", flag, v, lo, hi);
    *out = (int)x;
    return 0;
}

// --seed -1: a seed from the clock and the process id, in the range --seed accepts, so the run can be repeated.
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return x % 2147483648ull;
}

int cli_parse_float(const char *flag, const char *v, double lo, double hi, float *out, rp_err *err) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return rp_fail(err, "%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    *out = (float)x;
    return 0;
}

int cli_parse(int argc, char **argv, int first, const char *allowed, cli_opts *o, rp_err *err) {
    memset(o, 0, sizeof *o);
    o->schedule = "base";
    o->backend = "auto";
    o->n_predict = -1;   // until end-of-sequence or a full context
    o->host = "127.0.0.1";
    o->port = 8080;
    o->sampling = (sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 0};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = 1;
            return 0;
        }
        const char *name = a[0] == '-' ? (a[1] == '-' ? a + 2 : a + 1) : NULL;
        if (!name || !*name) return rp_fail(err, "unexpected argument '%s'", a);
        if (!allowed_flag(allowed, name)) return rp_fail(err, "unknown option '%s' (see --help)", a);
        // flags without a value
        if (strcmp(name, "ignore-eos") == 0) { o->ignore_eos = 1; continue; }
        if (strcmp(name, "json") == 0) { o->json = 1; continue; }
        if (strcmp(name, "no-special") == 0) { o->no_special = 1; continue; }
        if (strcmp(name, "tensors") == 0) { o->all_tensors = 1; continue; }
        if (strcmp(name, "allow-unused-tensors") == 0) { o->allow_unused_tensors = 1; continue; }
        if (i + 1 >= argc) return rp_fail(err, "%s needs a value", a);
        const char *v = argv[++i];
        int rc = 0, seed = 0;
        if (strcmp(name, "m") == 0) o->model_dir = v;
        else if (strcmp(name, "schedule") == 0) o->schedule = v;
        else if (strcmp(name, "backend") == 0) rc = cli_parse_backend(v, &o->backend, err);
        else if (strcmp(name, "kv-dtype") == 0) {
            if (kv_dtype_parse(v, &o->kv_dtype)) return rp_fail(err, "--kv-dtype: '%s': auto, bf16 or f32", v);
        }
        else if (strcmp(name, "tokens") == 0) o->tokens = v;
        else if (strcmp(name, "o") == 0) o->out = v;
        else if (strcmp(name, "dump-logits") == 0) o->dump_logits = v;
        else if (strcmp(name, "p") == 0) o->prompt = v;
        else if (strcmp(name, "f") == 0) o->file = v;
        else if (strcmp(name, "chat-template") == 0) o->chat_template = v;
        else if (strcmp(name, "system") == 0) o->system = v;
        else if (strcmp(name, "host") == 0) o->host = v;
        else if (strcmp(name, "api-key") == 0) o->api_key = v;
        else if (strcmp(name, "api-key-file") == 0) o->api_key_file = v;
        else if (strcmp(name, "served-model-name") == 0) o->served_name = v;
        else if (strcmp(name, "port") == 0) rc = cli_parse_int(a, v, 0, 65535, &o->port, err);
        else if (strcmp(name, "parallel") == 0) rc = cli_parse_int(a, v, 1, 4096, &o->parallel, err);
        else if (strcmp(name, "kv-budget") == 0) rc = cli_parse_int(a, v, 1, 2147483647L, &o->kv_budget, err);
        else if (strcmp(name, "queue") == 0) rc = cli_parse_int(a, v, 1, 1 << 20, &o->queue, err);
        else if (strcmp(name, "max-visits") == 0) rc = cli_parse_int(a, v, 1, 1 << 16, &o->max_visits, err);
        else if (strcmp(name, "stop") == 0) {
            if (o->n_stops == 8) return rp_fail(err, "--stop: at most 8 stop strings");
            if (!*v) return rp_fail(err, "--stop: an empty stop string would stop at once");
            o->stops[o->n_stops++] = v;
        }
        else if (strcmp(name, "n") == 0) rc = cli_parse_int(a, v, 0, 1 << 30, &o->n_predict, err);
        else if (strcmp(name, "t") == 0) {
            if (!(rc = cli_parse_int(a, v, 1, 1024, &o->threads, err))) o->threads = cli_clamp_threads(o->threads);
        }
        else if (strcmp(name, "c") == 0) rc = cli_parse_int(a, v, 1, 1 << 30, &o->ctx, err);
        else if (strcmp(name, "ubatch") == 0) rc = cli_parse_int(a, v, 1, 1 << 20, &o->ubatch, err);
        else if (strcmp(name, "batch") == 0) rc = cli_parse_int(a, v, 1, 1 << 20, &o->batch, err);
        else if (strcmp(name, "tp") == 0) rc = cli_parse_int(a, v, 1, TP_MAX_RANKS, &o->tp, err);
        else if (strcmp(name, "gpu-memory") == 0) {
            float g;
            rc = cli_parse_float(a, v, 0.001, 1e6, &g, err);
            o->gpu_memory_gib = g;
        }
        else if (strcmp(name, "temp") == 0) rc = cli_parse_float(a, v, 0, 100, &o->sampling.temp, err);
        else if (strcmp(name, "top-k") == 0) rc = cli_parse_int(a, v, 0, 1 << 30, &o->sampling.top_k, err);
        else if (strcmp(name, "top-p") == 0) rc = cli_parse_float(a, v, 0, 1, &o->sampling.top_p, err);
        else if (strcmp(name, "min-p") == 0) rc = cli_parse_float(a, v, 0, 1, &o->sampling.min_p, err);
        else if (strcmp(name, "repeat-penalty") == 0) rc = cli_parse_float(a, v, 1e-3, 100, &o->sampling.repeat_penalty, err);
        else if (strcmp(name, "presence-penalty") == 0) rc = cli_parse_float(a, v, -2, 2, &o->sampling.presence_penalty, err);
        else if (strcmp(name, "frequency-penalty") == 0) rc = cli_parse_float(a, v, -2, 2, &o->sampling.frequency_penalty, err);
        else if (strcmp(name, "seed") == 0) {
            rc = cli_parse_int(a, v, -1, 2147483647L, &seed, err);
            o->seed_random = seed == -1;
            o->sampling.seed = seed == -1 ? random_seed() : (uint64_t)seed;
        } else return rp_fail(err, "unknown option '%s' (see --help)", a);
        if (rc) return rc;
    }
    if (!o->model_dir) o->model_dir = REPRISE_DEFAULT_MODEL;
    int sources = !!o->tokens + !!o->prompt + !!o->file;
    if (sources > 1) return rp_fail(err, "give one of --tokens, -p and -f");
    return 0;
}

int cli_parse_tokens(const char *text, int **ids, int *n, rp_err *err) {
    int cap = 16;
    *n = 0;
    *ids = rp_malloc(sizeof(int) * cap);
    const char *p = text;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 2147483647L || (*end && *end != ',' && *end != ' ')) {
            int len = (int)strcspn(p, ", ");
            free(*ids);
            *ids = NULL;
            return rp_fail(err, "--tokens: '%.*s' is not a token id", len, p);
        }
        if (*n == cap) *ids = rp_realloc(*ids, sizeof(int) * (cap *= 2));
        (*ids)[(*n)++] = (int)v;
        p = end;
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return rp_fail(err, "--tokens: no token ids given");
    }
    return 0;
}

int cli_parse_backend(const char *v, const char **out, rp_err *err) {
    *out = v;
    if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) return rp_fail(err, "--backend %s: unknown backend (cpu, cuda, auto)", v);
    return 0;
}

int cli_clamp_threads(int n) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1 || n <= cores) return n;
    fprintf(stderr, "reprise: -t %d: this machine has %ld cores; using %ld (threads past the cores only wait on each "
                    "other at every step)\n", n, cores, cores);
    return (int)cores;
}

int cli_load_model(const cli_opts *o, int ctx, int logit_rows, model *m, schedule *s, rp_err *err) {
    model_config cfg;
    if (config_load(&cfg, o->model_dir, err)) return -1;
    if (schedule_parse(s, o->schedule, cfg.n_layers, err)) return rp_wrap(err, "--schedule");
    plan_shape shape = {.ubatch = o->ubatch, .seqs = 1, .logit_rows = logit_rows, .kv_slots = s->n_visits, .ctx = ctx,
                        .max_visits = s->n_visits, .tp = o->tp, .kv_dtype = o->kv_dtype};
    if (model_load_planned(m, o->model_dir, o->backend, o->threads, &shape, o->allow_unused_tensors, err)) {
        schedule_free(s);
        return -1;
    }
    return 0;
}

int cli_context(const cli_opts *o, const model_config *c, int n_prompt, const char *cmd) {
    if (o->ctx) return o->ctx;
    if (n_prompt > 0 && o->n_predict >= 0) {   // the last sampled token is never fed back
        long need = (long)n_prompt + (o->n_predict > 0 ? o->n_predict - 1 : 0);
        return need < c->max_pos ? (int)need : c->max_pos;
    }
    int ctx = c->max_pos < CLI_DEFAULT_CONTEXT ? c->max_pos : CLI_DEFAULT_CONTEXT;
    if (cmd) fprintf(stderr, "reprise %s: context of %d tokens (%s %d, at most %d without -c)\n", cmd, ctx,
            config_context_name(c), c->max_pos, CLI_DEFAULT_CONTEXT);
    return ctx;
}

int cli_check_tokens(const int *ids, int n, int vocab, rp_err *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] >= vocab) return rp_fail(err, "--tokens: token id %d is outside the vocabulary [0, %d)", ids[i], vocab);
    return 0;
}

int cli_begin(int argc, char **argv, const char *allowed, const char *usage, cli_opts *o, int *exit_code) {
    rp_err err;
    if (cli_parse(argc, argv, 2, allowed, o, &err)) {
        fprintf(stderr, "reprise %s: %s\n", argv[1], err.msg);
        *exit_code = 2;
        return -1;
    }
    if (o->help) {
        fputs(usage, stdout);
        *exit_code = 0;
        return -1;
    }
    if (o->seed_random) fprintf(stderr, "reprise %s: --seed -1: the seed is %llu\n", argv[1], (unsigned long long)o->sampling.seed);
    return 0;
}

int cli_prompt_ids(const cli_opts *o, const tokenizer *tok, int **ids, int *n, int *is_text, rp_err *err) {
    *is_text = !o->tokens;
    if (o->tokens) return cli_parse_tokens(o->tokens, ids, n, err);
    if (!o->prompt && !o->file) return rp_fail(err, "give a prompt: -p TEXT, -f FILE or --tokens IDS (see --help)");
    if (!tok) return rp_fail(err, "%s has no tokenizer.json: give token ids with --tokens", o->model_dir);
    size_t len;
    char *text = o->file ? read_file_all(o->file, READ_LIMIT_PROMPT, "prompt file", &len, err) : rp_strdup(o->prompt);
    if (!text) return -1;
    if (!o->file) len = strlen(text);
    int rc = tokenizer_encode(tok, text, len, !o->no_special, ids, n, err);
    if (rc) rp_wrap(err, "%s", o->file ? o->file : "-p");
    free(text);
    return rc;
}
