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

// --seed -1: a seed from the clock and the process id, in the range --seed accepts, so the run can be repeated.
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return x % 2147483648ull;
}

// --backend: cpu, cuda or auto, named as it is parsed (before any model is read).
static int parse_backend(const char *v, const char **out, rp_err *err) {
    *out = v;
    if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) return rp_fail(err, "--backend %s: unknown backend (cpu, cuda, auto)", v);
    return 0;
}

// -t N past this machine's cores: said on stderr and lowered to the cores.
static int clamp_threads(int n) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1 || n <= cores) return n;
    fprintf(stderr, "reprise: -t %d: this machine has %ld cores; using %ld (threads past the cores only wait on each "
                    "other at every step)\n", n, cores, cores);
    return (int)cores;
}

// The shared flags read by a rule of their own.
static int rule_seed(void *at, const char *flag, const char *v, rp_err *err) {   // -1 draws a random one
    cli_opts *o = at;
    int seed;
    if (options_parse_int(flag, v, -1, 2147483647L, &seed, err)) return -1;
    o->seed_random = seed == -1;
    o->sampling.seed = seed == -1 ? random_seed() : (uint64_t)seed;
    return 0;
}
static int rule_backend(void *at, const char *flag, const char *v, rp_err *err) {
    (void)flag;
    return parse_backend(v, at, err);
}
static int rule_kv_dtype(void *at, const char *flag, const char *v, rp_err *err) {
    return kv_dtype_parse(v, at) ? rp_fail(err, "%s: '%s': auto, bf16 or f32", flag, v) : 0;
}
static int rule_weights(void *at, const char *flag, const char *v, rp_err *err) {
    return weights_format_parse(v, at) ? rp_fail(err, "%s: '%s': stored or fp8", flag, v) : 0;
}
static int rule_stop(void *at, const char *flag, const char *v, rp_err *err) {
    cli_opts *o = at;
    if (o->n_stops == 8) return rp_fail(err, "%s: at most 8 stop strings", flag);
    if (!*v) return rp_fail(err, "%s: an empty stop string would stop at once", flag);
    o->stops[o->n_stops++] = v;
    return 0;
}
static int rule_threads(void *at, const char *flag, const char *v, rp_err *err) {   // past the cores: said, lowered
    if (options_parse_int(flag, v, 1, 1024, at, err)) return -1;
    *(int *)at = clamp_threads(*(int *)at);
    return 0;
}

// Every shared flag, declared once: how it is read into o, its default and its help. A command takes those its
// table names (OPT_SHARED), and may say more in its own words there.
#define SHARED_MAX 40
static void shared_table(cli_opts *o, option_def t[SHARED_MAX]) {
    const option_def list[] = {
        {OPT_TEXT, "-m", "DIR", &o->model_dir,
         .help = "model directory, or a Hugging Face name (ORG/NAME) in the local hub cache (default: the built-in model)"},
        {OPT_TEXT, "--revision", "REV", &o->revision,
         .help = "with -m ORG/NAME: the branch, tag or commit in the cache (default main)"},
        {OPT_TEXT, "-p", "TEXT", &o->prompt, .help = "prompt text (BOS added as the tokenizer's post-processor says)"},
        {OPT_TEXT, "-f", "FILE", &o->file, .help = "prompt text from a file"},
        {OPT_TEXT, "--tokens", "IDS", &o->tokens, .help = "prompt token ids, e.g. 1,403,407"},
        {OPT_SWITCH, "--no-special", NULL, &o->no_special, .help = "do not add BOS or other template tokens to a text prompt"},
        {OPT_INT, "-n", "N", &o->n_predict, 0, 1 << 30,
         .help = "tokens to generate (default: until end-of-sequence or the context is full)"},
        {OPT_TEXT, "--schedule", "S", &o->schedule, .def = "base",
         .help = "layer schedule: base, 0-5,3-9, rys:I,J or rys:I,J,K"},
        {OPT_TEXT, "--draft", "S", &o->draft,
         .help = "self-speculative decoding: schedule S of the same weights (e.g. one that skips layers) proposes "
                 "tokens and --schedule checks them in one pass; greedy output is unchanged, sampled output keeps "
                 "--schedule's distribution (default: none)"},
        {OPT_INT, "--draft-tokens", "K", &o->draft_tokens, 1, 16,
         .help = "tokens the draft proposes a step (default: adapted to how many are accepted, from 4)"},
        {OPT_INT, "-c", "N", &o->ctx, 1, 1 << 30,
         .help = "context length (default: prompt + N with -n, else max_position_embeddings up to 4096)"},
        {OPT_INT, "--ubatch", "N", &o->ubatch, 1, 1 << 20,
         .help = "most rows of one forward step; a longer prompt runs in chunks (default 512)"},
        {OPT_INT, "--tp", "N", &o->tp, 1, TP_MAX_RANKS,
         .help = "split the model over N GPUs (tensor parallel; N divides the KV heads; default 1)"},
        {OPT_TEXT, "--chat-template", "NAME", &o->chat_template,
         .help = "chatml, llama3, llama2, mistral, or plain (a base model: the prompt as plain text with BOS) "
                 "(default: recognised from tokenizer_config.json)"},
        {OPT_TEXT, "--system", "TEXT", &o->system, .help = "system prompt for chat models"},
        {OPT_REAL, "--temp", "T", &o->sampling.temp, 0, 100, .def = "0.8", .help = "temperature; 0 = greedy"},
        {OPT_INT, "--top-k", "K", &o->sampling.top_k, 0, 1 << 30, .def = "40", .help = "keep the K most likely tokens; 0 = off"},
        {OPT_REAL, "--top-p", "P", &o->sampling.top_p, 0, 1, .def = "0.95",
         .help = "keep the smallest set with probability >= P; 1 = off"},
        {OPT_REAL, "--min-p", "P", &o->sampling.min_p, 0, 1, .def = "0.05",
         .help = "drop tokens below P x the top probability; 0 = off"},
        {OPT_RULE, "--seed", "S", o, .rule = rule_seed, .def = "0", .help = "random seed; -1 = a random one, printed on stderr"},
        {OPT_REAL, "--repeat-penalty", "R", &o->sampling.repeat_penalty, 1e-3, 100,
         .help = "a token seen in the prompt or the output: its logit divided by R when positive, multiplied when "
                 "not (vLLM's repetition_penalty; 1 = off, the default)"},
        {OPT_REAL, "--presence-penalty", "P", &o->sampling.presence_penalty, -2, 2,
         .help = "minus P on the logit of a token already generated (-2 to 2; 0 = off, the default)"},
        {OPT_REAL, "--frequency-penalty", "F", &o->sampling.frequency_penalty, -2, 2,
         .help = "minus F times its count in the output so far (-2 to 2; 0 = off, the default)"},
        {OPT_RULE, "--stop", "STRING", o, .rule = rule_stop,
         .help = "stop when the text contains STRING (repeatable; text mode), which is not printed"},
        {OPT_SWITCH, "--ignore-eos", NULL, &o->ignore_eos, .help = "keep going after an end-of-sequence token"},
        {OPT_RULE, "--backend", "B", &o->backend, .rule = rule_backend, .def = "auto",
         .help = "cpu, cuda, or auto: cuda when built in and a GPU is present"},
        {OPT_RULE, "-t", "N", &o->threads, .rule = rule_threads,
         .help = "threads (default: all cores; more than the cores are lowered to them, said on stderr)"},
        {OPT_RULE, "--kv-dtype", "T", &o->kv_dtype, .rule = rule_kv_dtype,
         .help = "the CPU backend's KV cache: auto (default: bf16 for a BF16 model, else f32), bf16 or f32"},
        {OPT_RULE, "--weights", "W", &o->weights, .rule = rule_weights, .def = "stored",
         .help = "the projections' weights: stored (as the checkpoint holds them: an FP8 checkpoint in FP8) or fp8 "
                 "(quantized at load to E4M3, a scale per output row; both backends)"},
        {OPT_SWITCH, "--allow-unused-tensors", NULL, &o->allow_unused_tensors,
         .help = "run a checkpoint holding tensors the model does not read (layers at or beyond num_hidden_layers, "
                 "names the architecture does not use), which is otherwise refused"},
        OPTIONS_END,
    };
    _Static_assert(sizeof list / sizeof *list <= SHARED_MAX, "SHARED_MAX");
    memcpy(t, list, sizeof list);
}

int cli_begin(int argc, char **argv, const char *synopsis, const option_def *table, cli_opts *o, int *exit_code) {
    rp_err err;
    option_def shared[SHARED_MAX];
    memset(o, 0, sizeof *o);
    o->n_predict = -1;   // until end-of-sequence or a full context
    shared_table(o, shared);
    int help = 0;   // every shared default, named by the command or not: the engine reads them all
    int rc = options_parse(0, argv, 0, shared, NULL, &help, &err);
    if (!rc) rc = options_parse(argc, argv, 2, table, shared, &help, &err);
    if (!rc && !help && !!o->tokens + !!o->prompt + !!o->file > 1) rc = rp_fail(&err, "give one of --tokens, -p and -f");
    if (rc) {
        fprintf(stderr, "reprise %s: %s\n", argv[1], err.msg);
        *exit_code = 2;
        return -1;
    }
    if (help) {
        options_print_help(synopsis, table, shared);
        *exit_code = 0;
        return -1;
    }
    static model_location located;   // one model a process; pointers into it outlive copies of o
    o->model_given = o->model_dir, o->where = &located;
    if (model_locate(&located, o->model_dir, o->revision, REPRISE_DEFAULT_MODEL, &err)) {
        fprintf(stderr, "reprise %s: %s\n", argv[1], err.msg);
        *exit_code = 2;
        return -1;
    }
    o->model_dir = located.dir;
    if (o->seed_random) fprintf(stderr, "reprise %s: --seed -1: the seed is %llu\n", argv[1], (unsigned long long)o->sampling.seed);
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

int cli_load_model(const cli_opts *o, int ctx, int logit_rows, model *m, schedule *s, schedule *draft, rp_err *err) {
    model_config cfg;
    if (config_load(&cfg, o->model_dir, err)) return -1;
    if (schedule_parse(s, o->schedule, cfg.n_layers, err)) return rp_wrap(err, "--schedule");
    if (draft) memset(draft, 0, sizeof *draft);
    if (draft && o->draft && schedule_parse(draft, o->draft, cfg.n_layers, err)) {
        schedule_free(s);
        return rp_wrap(err, "--draft");
    }
    int draft_visits = draft ? draft->n_visits : 0;   // the draft's slots, and its rows beside the prompt's
    plan_shape shape = {.ubatch = o->ubatch, .seqs = draft_visits ? 2 : 1, .logit_rows = logit_rows,
                        .kv_slots = s->n_visits + draft_visits, .ctx = ctx,
                        .max_visits = s->n_visits > draft_visits ? s->n_visits : draft_visits, .tp = o->tp,
                        .kv_dtype = o->kv_dtype, .weights = o->weights};
    if (model_load_planned(m, o->model_dir, o->backend, o->threads, &shape, o->allow_unused_tensors, err)) {
        schedule_free(s);
        if (draft_visits) schedule_free(draft);
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

int cli_split_schedules(const char *cmd, const char *text, char **list, char **out, int cap, int *n) {
    *list = rp_strdup(text);
    char *save = NULL;
    *n = 0;
    for (char *s = strtok_r(*list, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        char *t = schedule_tidy(s);   // "base; rys:1,3": the row is named "rys:1,3"
        strcpy(s, t);                 // never longer
        free(t);
        if (!*s) continue;
        if (*n == cap) return fprintf(stderr, "%s: --schedule: at most %d schedules\n", cmd, cap), -1;
        out[(*n)++] = s;
    }
    if (*n) return 0;
    fprintf(stderr, "%s: --schedule: no schedules\n", cmd);
    return -1;
}

int cli_check_tokens(const int *ids, int n, int vocab, rp_err *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] >= vocab) return rp_fail(err, "--tokens: token id %d is outside the vocabulary [0, %d)", ids[i], vocab);
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
