// Command-line options shared by the reprise subcommands, parsed one way everywhere.
#include "tools/cli.h"
#include "loader/alloc.h"

#include "engine/tensor_parallel.h"

#include "loader/json_file.h"
#include "loader/tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_usage_lists(const char *usage, const char *name) {
    size_t n = strlen(name);
    for (const char *line = usage; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (end - line > 3 && !strncmp(line, "  -", 3)) {
            // the label: up to the first two blanks in a row (what follows is the help)
            const char *label = line + 2, *stop = label;
            while (stop < end && !(stop[0] == ' ' && stop + 1 < end && stop[1] == ' ')) stop++;
            for (const char *p = label; p < stop; p++) {
                if (*p != '-' || (p > label && p[-1] != ' ' && p[-1] != ',' && p[-1] != '/')) continue;   // a flag starts
                const char *q = p + 1 + (p[1] == '-');
                if (stop - q >= (long)n && !strncmp(q, name, n) && (q + n == stop || !(isalnum((unsigned char)q[n]) || q[n] == '-')))
                    return 1;
            }
        }
        line = *end ? end + 1 : end;
    }
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

// How each shared flag is read, declared once: a switch, a text, a whole or real number in a range, or its own
// rule (own_flag). A command takes those its usage names (cli_usage_lists), where it says what they do.
typedef enum { FLAG_SWITCH, FLAG_TEXT, FLAG_INT, FLAG_REAL, FLAG_OWN } flag_kind;
typedef struct {
    const char *name;   // without its dashes
    flag_kind kind;
    size_t at;          // the field of cli_opts it sets
    double lo, hi;      // FLAG_INT, FLAG_REAL: the accepted range
} cli_flag;

#define AT(field) offsetof(cli_opts, field)
static const cli_flag FLAGS[] = {
    {"ignore-eos", FLAG_SWITCH, AT(ignore_eos), 0, 0},
    {"json", FLAG_SWITCH, AT(json), 0, 0},
    {"no-special", FLAG_SWITCH, AT(no_special), 0, 0},
    {"tensors", FLAG_SWITCH, AT(all_tensors), 0, 0},
    {"allow-unused-tensors", FLAG_SWITCH, AT(allow_unused_tensors), 0, 0},
    {"m", FLAG_TEXT, AT(model_dir), 0, 0},
    {"schedule", FLAG_TEXT, AT(schedule), 0, 0},
    {"tokens", FLAG_TEXT, AT(tokens), 0, 0},
    {"o", FLAG_TEXT, AT(out), 0, 0},
    {"dump-logits", FLAG_TEXT, AT(dump_logits), 0, 0},
    {"p", FLAG_TEXT, AT(prompt), 0, 0},
    {"f", FLAG_TEXT, AT(file), 0, 0},
    {"chat-template", FLAG_TEXT, AT(chat_template), 0, 0},
    {"system", FLAG_TEXT, AT(system), 0, 0},
    {"host", FLAG_TEXT, AT(host), 0, 0},
    {"api-key", FLAG_TEXT, AT(api_key), 0, 0},
    {"api-key-file", FLAG_TEXT, AT(api_key_file), 0, 0},
    {"served-model-name", FLAG_TEXT, AT(served_name), 0, 0},
    {"port", FLAG_INT, AT(port), 0, 65535},
    {"parallel", FLAG_INT, AT(parallel), 1, 4096},
    {"kv-budget", FLAG_INT, AT(kv_budget), 1, 2147483647L},
    {"queue", FLAG_INT, AT(queue), 1, 1 << 20},
    {"max-visits", FLAG_INT, AT(max_visits), 1, 1 << 16},
    {"n", FLAG_INT, AT(n_predict), 0, 1 << 30},
    {"c", FLAG_INT, AT(ctx), 1, 1 << 30},
    {"ubatch", FLAG_INT, AT(ubatch), 1, 1 << 20},
    {"batch", FLAG_INT, AT(batch), 1, 1 << 20},
    {"tp", FLAG_INT, AT(tp), 1, TP_MAX_RANKS},
    {"temp", FLAG_REAL, AT(sampling.temp), 0, 100},
    {"top-k", FLAG_INT, AT(sampling.top_k), 0, 1 << 30},
    {"top-p", FLAG_REAL, AT(sampling.top_p), 0, 1},
    {"min-p", FLAG_REAL, AT(sampling.min_p), 0, 1},
    {"repeat-penalty", FLAG_REAL, AT(sampling.repeat_penalty), 1e-3, 100},
    {"presence-penalty", FLAG_REAL, AT(sampling.presence_penalty), -2, 2},
    {"frequency-penalty", FLAG_REAL, AT(sampling.frequency_penalty), -2, 2},
    {"backend", FLAG_OWN, AT(backend), 0, 0},
    {"kv-dtype", FLAG_OWN, AT(kv_dtype), 0, 0},
    {"stop", FLAG_OWN, AT(stops), 0, 0},
    {"t", FLAG_OWN, AT(threads), 1, 1024},
    {"gpu-memory", FLAG_OWN, AT(gpu_memory_gib), 0.001, 1e6},
    {"seed", FLAG_OWN, AT(sampling.seed), -1, 2147483647L},
};
#undef AT

// The flags read by a rule of their own. a: the flag as typed (for errors), v: its value.
static int own_flag(cli_opts *o, const cli_flag *f, const char *a, const char *v, rp_err *err) {
    if (!strcmp(f->name, "backend")) return cli_parse_backend(v, &o->backend, err);
    if (!strcmp(f->name, "kv-dtype"))
        return kv_dtype_parse(v, &o->kv_dtype) ? rp_fail(err, "--kv-dtype: '%s': auto, bf16 or f32", v) : 0;
    if (!strcmp(f->name, "stop")) {
        if (o->n_stops == 8) return rp_fail(err, "--stop: at most 8 stop strings");
        if (!*v) return rp_fail(err, "--stop: an empty stop string would stop at once");
        o->stops[o->n_stops++] = v;
        return 0;
    }
    if (!strcmp(f->name, "t")) {   // past the cores: said, and lowered to them
        if (cli_parse_int(a, v, (long)f->lo, (long)f->hi, &o->threads, err)) return -1;
        o->threads = cli_clamp_threads(o->threads);
        return 0;
    }
    if (!strcmp(f->name, "gpu-memory")) {
        float g = 0;
        if (cli_parse_float(a, v, f->lo, f->hi, &g, err)) return -1;
        o->gpu_memory_gib = g;
        return 0;
    }
    int seed = 0;   // --seed: -1 draws a random one
    if (cli_parse_int(a, v, (long)f->lo, (long)f->hi, &seed, err)) return -1;
    o->seed_random = seed == -1;
    o->sampling.seed = seed == -1 ? random_seed() : (uint64_t)seed;
    return 0;
}

int cli_parse(int argc, char **argv, int first, const char *usage, cli_opts *o, rp_err *err) {
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
        const cli_flag *f = NULL;
        for (size_t k = 0; k < sizeof FLAGS / sizeof *FLAGS && !f; k++)
            if (!strcmp(FLAGS[k].name, name)) f = &FLAGS[k];
        if (!f || !cli_usage_lists(usage, name)) return rp_fail(err, "unknown option '%s' (see --help)", a);
        char *field = (char *)o + f->at;
        if (f->kind == FLAG_SWITCH) {
            *(int *)field = 1;
            continue;
        }
        if (i + 1 >= argc) return rp_fail(err, "%s needs a value", a);
        const char *v = argv[++i];
        int rc = 0;
        if (f->kind == FLAG_TEXT) *(const char **)field = v;
        else if (f->kind == FLAG_INT) rc = cli_parse_int(a, v, (long)f->lo, (long)f->hi, (int *)field, err);
        else if (f->kind == FLAG_REAL) rc = cli_parse_float(a, v, f->lo, f->hi, (float *)field, err);
        else rc = own_flag(o, f, a, v, err);
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

int cli_begin(int argc, char **argv, const char *usage, cli_opts *o, int *exit_code) {
    rp_err err;
    if (cli_parse(argc, argv, 2, usage, o, &err)) {
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
