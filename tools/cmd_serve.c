// `reprise serve`: the OpenAI-compatible server. Listens first (/health says 503 while the model loads), loads the
// model planned for the batching limits, serves until SIGTERM or SIGINT, then finishes what is in flight.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "loader/alloc.h"
#include "loader/model_dir.h"
#include "loader/json_file.h"
#include "tools/cli.h"
#include "tools/serve/serve_http.h"

static const char *synopsis =
    "usage: reprise serve [-m DIR | MODEL] [--host ADDR] [--port N] [--schedule S] [-c N] [options]\n"
    "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics,\n"
    "/tokenize, /detokenize, /tokenizer_info. Requests run together in continuous batches; a request's\n"
    "\"layer_schedule\" field runs it with that schedule. SIGTERM or SIGINT: finish what is in flight, then exit.\n"
    "The model may come first, as `vllm serve MODEL` takes it: `reprise serve Qwen/Qwen2-7B` is `-m Qwen/Qwen2-7B`.\n";

// serve's own flags (the shared ones are in cli_opts).
typedef struct {
    const char *host, *api_key, *api_key_file, *served_name, *metrics_key;
    int port, parallel, queue, quiet;
    int kv_budget, max_visits;   // 0: not given (see their help)
} serve_flags;

static char *read_key_file(const char *path, rp_err *err) {
    size_t len;
    char *text = read_file_all(path, READ_LIMIT_SECRET, "key file", &len, err);
    if (!text) return NULL;
    text[strcspn(text, "\r\n")] = 0;
    if (!*text) {
        free(text);
        rp_fail(err, "--api-key-file %s: the first line is empty", path);
        return NULL;
    }
    return text;
}

// The model's name in the API and in /metrics' labels: the hub name as given, or the directory's name.
static char *model_name_of(const char *name) {
    char *out = rp_strdup(name);
    for (char *p = out; *p; p++)   // it goes into a Prometheus label too
        if (*p == '"' || *p == '\\' || *p == '\n') *p = '_';
    return out;
}

int cmd_serve(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    serve_flags f = {0};
    const option_def options[] = {
        {OPT_SHARED, "-m", .help = "model directory with tokenizer.json, or a Hugging Face name (ORG/NAME) in the local hub cache (default: the built-in model)"},
        SHARED_FLAG("--revision"),
        {OPT_TEXT, "--host", "ADDR", &f.host, .def = "127.0.0.1",
         .help = "address to listen on (0.0.0.0 or :: for every interface)"},
        {OPT_INT, "--port", "N", &f.port, 0, 65535, .def = "8080", .help = "port (0: any free port, printed on stderr)"},
        {OPT_SHARED, "--schedule", .help = "the layer schedule of requests that name none"},
        {OPT_SHARED, "--draft",
         .help = "self-speculative decoding for requests that name no draft_schedule: schedule S of the same weights "
                 "proposes tokens, the request's schedule checks them (greedy output unchanged; default: none)"},
        SHARED_FLAG("--draft-tokens"),
        {OPT_TEXT, "--served-model-name", "S", &f.served_name,
         .help = "the model's name in the API (default: the model directory's name)"},
        {OPT_SHARED, "-c",
         .help = "context length: prompt + completion of one request (default min(max_position_embeddings, 4096))"},
        {OPT_SHARED, "--chat-template", .help = "chatml, llama3, llama2, mistral or plain (default: the model's "
                                                "tokenizer_config.json)"},
        {OPT_TEXT, "--api-key", "KEY", &f.api_key,
         .help = "require 'Authorization: Bearer KEY' on every route but /health and /metrics; also"},
        {OPT_TEXT, "--api-key-file", "FILE", &f.api_key_file,
         .help = "the key from the first line of FILE, or the environment variable REPRISE_API_KEY"},
        {OPT_TEXT, "--metrics-key", "KEY", &f.metrics_key,
         .help = "require 'Authorization: Bearer KEY' on /metrics (default: /metrics is open, as vLLM's is)"},
        {OPT_SWITCH, "--quiet", NULL, &f.quiet,
         .help = "no access log (otherwise a line on stderr per request: client, method and path, status, a generation's "
                 "schedule and tokens, seconds)"},
        {OPT_INT, "--parallel", "N", &f.parallel, 1, 4096, .def = "16", .help = "requests running at once"},
        {OPT_SHARED, "--ubatch", .help = "rows of one forward step: decode rows and prompt chunks together (default 512)"},
        {OPT_INT, "--kv-budget", "N", &f.kv_budget, 1, 2147483647L,
         .help = "KV positions x visits held at once (a token of an 87-visit schedule costs 87; default: --parallel x "
                 "context x the default schedule's visits, or on a GPU what its free memory holds when that is less)"},
        {OPT_INT, "--queue", "N", &f.queue, 1, 1 << 20, .def = "1024",
         .help = "requests waiting for admission before new ones get 503"},
        {OPT_INT, "--max-visits", "N", &f.max_visits, 1, 1 << 16,
         .help = "most visits of a request's schedule (default: 2 x layers, or the default schedule's)"},
        {OPT_SHARED, "--tp", .help = "split the model over N GPUs (tensor parallel; default 1)"},
        SHARED_FLAG("--backend"),
        {OPT_SHARED, "-t", .help = "threads of the CPU backend (default: all cores)"},
        SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"),
        {OPT_SHARED, "--allow-unused-tensors", .help = "serve a checkpoint holding tensors the model does not read (else refused)"},
        OPTIONS_END,
    };
    // `reprise serve MODEL ...`, vLLM's order: the model before the flags is -m's
    char **args = argv;
    if (argc > 2 && argv[2][0] != '-') {
        args = rp_malloc(sizeof *args * (size_t)(argc + 2));
        args[0] = argv[0], args[1] = argv[1], args[2] = "-m";
        memcpy(args + 3, argv + 2, sizeof *args * (size_t)(argc - 1));   // and argv's NULL
        argc++;
    }
    int begun = cli_begin(argc, args, synopsis, options, &o, &code);
    if (args != argv) free(args);   // o points into argv's strings, not into args
    if (begun)
        return code;
    // the signals are waited for by this thread alone; every thread started from here on blocks them
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *key = f.api_key ? rp_strdup(f.api_key) : NULL;
    if (!key && f.api_key_file && !(key = read_key_file(f.api_key_file, &err))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        return 1;
    }
    if (!key && getenv("REPRISE_API_KEY") && *getenv("REPRISE_API_KEY")) key = rp_strdup(getenv("REPRISE_API_KEY"));

    model_dir md;
    schedule sched = {0}, draft = {0};
    int rc = 1;
    if (model_dir_open(&md, o.model_dir, MODEL_DIR_TOKENIZER | MODEL_DIR_CHAT, o.chat_template, "the server", &err) ||
        (schedule_parse(&sched, o.schedule, md.cfg.n_layers, &err) && rp_wrap(&err, "--schedule")) ||
        (o.draft && schedule_parse(&draft, o.draft, md.cfg.n_layers, &err) && rp_wrap(&err, "--draft"))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        free(key);
        model_dir_close(&md);
        return 1;
    }
    const model_config cfg = md.cfg;
    const chat_template ct = md.ct;
    tokenizer *tok = md.tok;
    int ctx = cli_context(&o, &cfg, 0, NULL);
    serve_limits lim = {.max_seqs = f.parallel, .step_tokens = o.ubatch ? o.ubatch : PLAN_DEFAULT_UBATCH,
                        .queue = f.queue, .ctx = ctx};
    lim.kv_budget = f.kv_budget ? f.kv_budget : (long)lim.max_seqs * ctx * (sched.n_visits + draft.n_visits);
    int max_visits = f.max_visits ? f.max_visits : 2 * cfg.n_layers;
    if (max_visits < sched.n_visits) max_visits = sched.n_visits;
    if (max_visits < draft.n_visits) max_visits = draft.n_visits;
    char *name = f.served_name ? rp_strdup(f.served_name) : model_name_of(o.where->name);
    serve_http *http = NULL;
    serve_engine *engine = NULL;
    model m = {0};
    serve_metrics met;
    serve_metrics_init(&met);
    if (ctx > cfg.max_pos) {
        fprintf(stderr, "reprise serve: -c %d exceeds the model's %s %d\n", ctx,
                config_context_name(&cfg), cfg.max_pos);
        goto out;
    }
    if (lim.step_tokens < lim.max_seqs) {
        fprintf(stderr, "reprise serve: --ubatch %d is smaller than --parallel %d: a step must hold a decode row for every "
                        "running request\n", lim.step_tokens, lim.max_seqs);
        goto out;
    }
    if (lim.kv_budget < (long)sched.n_visits + 1) {
        fprintf(stderr, "reprise serve: --kv-budget %ld cannot hold one token of the default schedule (%d visits)\n",
                lim.kv_budget, sched.n_visits);
        goto out;
    }
    if (!(http = serve_http_start(f.host, f.port, key, f.metrics_key, !f.quiet, &err))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "reprise serve: listening on http://%s:%d (loading %s)\n", f.host, serve_http_port(http), o.model_dir);
    // (a request with a draft counts as two of --parallel's sequences: the draft runs beside it in a step)
    plan_shape shape = {.ubatch = lim.step_tokens, .seqs = lim.max_seqs,
                        .logit_rows = lim.max_seqs > PLAN_SCORE_LOGIT_ROWS ? lim.max_seqs : PLAN_SCORE_LOGIT_ROWS,
                        .kv_slots = (lim.kv_budget + ctx - 1) / ctx, .ctx = ctx, .max_visits = max_visits, .tp = o.tp,
                        .kv_fit = !f.kv_budget, .kv_dtype = o.kv_dtype, .weights = o.weights};
    if (model_load_planned(&m, o.model_dir, o.backend, o.threads, &shape, o.allow_unused_tensors, &err)) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        goto out;
    }
    if (shape.kv_fit && (long)m.plan.shape.kv_slots * ctx < lim.kv_budget) {   // the GPU's free memory set the budget
        lim.kv_budget = (long)m.plan.shape.kv_slots * ctx;
        if (lim.kv_budget < (long)sched.n_visits * 2) {
            fprintf(stderr, "reprise serve: no GPU memory is left for the KV cache after the weights and buffers; a smaller "
                            "--parallel, --ubatch or -c, or more GPUs (--tp), would leave room\n");
            goto out;
        }
    }
    if (!(engine = serve_engine_start(&m, tok, &lim, &met, &err))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        goto out;
    }
    serve_context sc = {.cfg = &m.cfg, .tok = tok, .ct = &ct, .model_name = name, .model_paths = {o.model_given, o.model_dir}, .default_schedule = o.schedule,
                        .default_draft = o.draft, .draft_tokens = o.draft_tokens, .ctx = ctx, .kv_budget = lim.kv_budget,
                        .max_visits = max_visits};
    serve_http_ready(http, engine, &sc, &met, o.model_dir);
    fprintf(stderr, "reprise serve: ready: model %s (%s backend), schedule %s (%d visits), context %d, %d running at once, "
                    "KV budget %ld visit-positions, chat template %s%s\n", name, m.be->name, o.schedule, sched.n_visits, ctx,
            lim.max_seqs, lim.kv_budget, ct.family == CHAT_NONE ? "none" : chat_family_name(ct.family), key ? ", API key required" : "");
    int sig;
    sigwait(&stop_signals, &sig);
    serve_gauges g;
    serve_engine_gauges(engine, &g);
    fprintf(stderr, "reprise serve: %s: no new requests; finishing %d running and %d waiting\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            g.running, g.waiting);
    serve_engine_drain(engine);
    serve_http_drain(http);
    rc = 0;
    fprintf(stderr, "reprise serve: stopped\n");
out:
    serve_http_stop(http);
    if (engine) serve_engine_stop(engine);
    if (m.be) model_free(&m);
    serve_metrics_free(&met);
    schedule_free(&sched);
    schedule_free(&draft);
    model_dir_close(&md);
    free(name), free(key);
    return rc;
}
