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

static const char *usage =
    "usage: reprise serve [-m DIR] [--host ADDR] [--port N] [--schedule S] [-c N] [options]\n"
    "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics,\n"
    "/tokenize, /detokenize, /tokenizer_info. Requests run together in continuous batches; a request's\n"
    "\"layer_schedule\" field runs it with that schedule. SIGTERM or SIGINT: finish what is in flight, then exit.\n"
    "  -m DIR                  model directory, with tokenizer.json (default: the built-in model)\n"
    "  --host ADDR             address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface)\n"
    "  --port N                port (default 8080; 0: any free port, printed on stderr)\n"
    "  --schedule S            the layer schedule of requests that name none (default base)\n"
    "  --served-model-name S   the model's name in the API (default: the model directory's name)\n"
    "  -c N                    context length: prompt + completion of one request (default min(max_position_embeddings, 4096))\n"
    "  --chat-template NAME    chatml, llama3, llama2, mistral or plain (default: the model's tokenizer_config.json)\n"
    "  --api-key KEY           require 'Authorization: Bearer KEY' on every route but /health; also\n"
    "  --api-key-file FILE     the key from the first line of FILE, or the environment variable REPRISE_API_KEY\n"
    "  --parallel N            requests running at once (default 16)\n"
    "  --ubatch N              rows of one forward step: decode rows and prompt chunks together (default 512)\n"
    "  --kv-budget N           KV positions x visits held at once (a token of an 87-visit schedule costs 87;\n"
    "                          default: --parallel x context x the default schedule's visits, or on a GPU what\n"
    "                          its free memory holds when that is less)\n"
    "  --queue N               requests waiting for admission before new ones get 503 (default 1024)\n"
    "  --max-visits N          most visits of a request's schedule (default: 2 x layers, or the default schedule's)\n"
    "  --tp N                  split the model over N GPUs (tensor parallel; default 1)\n"
    "  --backend B             cpu, cuda, or auto: cuda when built in and a GPU is present (default auto)\n"
    "  -t N                    threads of the CPU backend (default: all cores)\n"
    "  --kv-dtype T            the CPU backend's KV cache: auto (default: bf16 for a BF16 model, else f32), bf16, f32\n"
    "  --allow-unused-tensors  serve a checkpoint holding tensors the model does not read (else refused)\n";

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

static char *model_name_of(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    char *name = rp_strndup(dir + start, n - start);
    for (char *p = name; *p; p++)   // it goes into a Prometheus label too
        if (*p == '"' || *p == '\\' || *p == '\n') *p = '_';
    return name;
}

int cmd_serve(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, usage, &o, &code))
        return code;
    // the signals are waited for by this thread alone; every thread started from here on blocks them
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *key = o.api_key ? rp_strdup(o.api_key) : NULL;
    if (!key && o.api_key_file && !(key = read_key_file(o.api_key_file, &err))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        return 1;
    }
    if (!key && getenv("REPRISE_API_KEY") && *getenv("REPRISE_API_KEY")) key = rp_strdup(getenv("REPRISE_API_KEY"));

    model_dir md;
    schedule sched = {0};
    int rc = 1;
    if (model_dir_open(&md, o.model_dir, MODEL_DIR_TOKENIZER | MODEL_DIR_CHAT, o.chat_template, "the server", &err) ||
        (schedule_parse(&sched, o.schedule, md.cfg.n_layers, &err) && rp_wrap(&err, "--schedule"))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        free(key);
        model_dir_close(&md);
        return 1;
    }
    const model_config cfg = md.cfg;
    const chat_template ct = md.ct;
    tokenizer *tok = md.tok;
    int ctx = cli_context(&o, &cfg, 0, NULL);
    serve_limits lim = {.max_seqs = o.parallel ? o.parallel : 16, .step_tokens = o.ubatch ? o.ubatch : PLAN_DEFAULT_UBATCH,
                        .queue = o.queue ? o.queue : 1024, .ctx = ctx};
    lim.kv_budget = o.kv_budget ? o.kv_budget : (long)lim.max_seqs * ctx * sched.n_visits;
    int max_visits = o.max_visits ? o.max_visits : 2 * cfg.n_layers;
    if (max_visits < sched.n_visits) max_visits = sched.n_visits;
    char *name = o.served_name ? rp_strdup(o.served_name) : model_name_of(o.model_dir);
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
    if (!(http = serve_http_start(o.host, o.port, key, &err))) {
        fprintf(stderr, "reprise serve: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "reprise serve: listening on http://%s:%d (loading %s)\n", o.host, serve_http_port(http), o.model_dir);
    plan_shape shape = {.ubatch = lim.step_tokens, .seqs = lim.max_seqs,
                        .logit_rows = lim.max_seqs > PLAN_SCORE_LOGIT_ROWS ? lim.max_seqs : PLAN_SCORE_LOGIT_ROWS,
                        .kv_slots = (lim.kv_budget + ctx - 1) / ctx, .ctx = ctx, .max_visits = max_visits, .tp = o.tp,
                        .kv_fit = !o.kv_budget, .kv_dtype = o.kv_dtype};
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
    serve_context sc = {.cfg = &m.cfg, .tok = tok, .ct = &ct, .model_name = name, .default_schedule = o.schedule,
                        .ctx = ctx, .kv_budget = lim.kv_budget, .max_visits = max_visits};
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
    model_dir_close(&md);
    free(name), free(key);
    return rc;
}
