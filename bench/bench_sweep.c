// Sweep throughput: configs evaluated per hour and layer work, for three ways to run the same sweep on the same
// model in the same process, each writing its own database:
//   duplicated: per config, export the physically duplicated checkpoint, load it, evaluate it alone (mergekit's way)
//   naive:      one model loaded once; each config alone, nothing shared
//   sweep:      reprise sweep: the base's prefix shared, configs decoded together
// Prints figures and ratios; asserts nothing. All three must give the same rows; it says whether they do.
// --backend cuda runs the naive and sweep modes on a GPU (the duplicated mode, on the CPU, is for small models);
// --shape qwen2-7b writes a model of Qwen2-7B's shapes (dim 3584, 28 layers, GQA 28:4, MLP 18944, vocabulary 152064)
// with random BF16 weights and the built-in model's tokenizer, for a sweep at that size (tests/run_gpu.sh).
// usage: bench_sweep [-m DIR | --shape qwen2-7b] [--backend cpu|cuda] [--probe SPEC] [--items N] [--configs LIST]
//                    [--no-duplicated]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_usage.h"
#include "bench/random_model.h"
#include "engine/memory_plan.h"
#include "tools/export.h"
#include "loader/fingerprint.h"
#include "loader/json_file.h"
#include "loader/model_dir.h"
#include "tools/cli.h"
#include "tools/sweep/run.h"
#include "tools/common/cpu_threads.h"
#include "tools/common/stats.h"

// Every row (config label, probe, item, score to the last bit, reply), in one order whatever order they were written
// in, fingerprinted: the modes agree when their rows do (a floating-point total summed in another row order can
// differ in its last bits while every row is the same).
static void fingerprint_row(void *ctx, const sweep_db_result_row *row) {
    uint64_t *h = ctx;
    *h = fingerprint_str(*h, row->label), *h = fingerprint_str(*h, row->probe), *h = fingerprint_str(*h, row->item);
    *h = fingerprint_bytes(*h, &row->score, sizeof row->score), *h = fingerprint_str(*h, row->reply);
}

static uint64_t rows_fingerprint(sweep_db *d) {
    uint64_t h = FINGERPRINT_SEED;
    sweep_db_each_result(d, 1, fingerprint_row, &h);
    return h;
}

typedef struct {
    double seconds;
    uint64_t rows;   // rows_fingerprint
    long layer_execs, visits;
} outcome;

static int setup(sweep_run *r, model *m, tokenizer *tok, probe *p, config_list *cl, sweep_db *d, const char *db_path,
                 int naive, rp_err *err) {
    memset(r, 0, sizeof *r);
    *r = (sweep_run){.m = m, .tok = tok, .probes = p, .n_probes = 1, .configs = cl, .db = d, .batch = 64, .naive = naive};
    unlink(db_path);
    if (sweep_db_open(d, db_path, err)) return -1;
    r->config_ids = malloc(sizeof(int) * cl->n);
    for (int c = 0; c < cl->n; c++)
        if (sweep_db_add_config(d, &cl->c[c], &r->config_ids[c], err)) return -1;
    return 0;
}

// A model of a real model's shapes with random BF16 weights, and the built-in model's tokenizer (its ids are in any
// vocabulary): written into dir.
static int write_shaped_model(const char *dir, const char *shape) {
    if (strcmp(shape, "qwen2-7b")) return fprintf(stderr, "bench_sweep: --shape %s: qwen2-7b is the one known\n", shape), -1;
    random_model_shape s = {3584, 18944, 28, 28, 4, 152064, 32768};
    fprintf(stderr, "bench_sweep: writing a random model of Qwen2-7B's shapes to %s\n", dir);
    if (random_model_write(dir, s, 1)) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/' && { cp '%s/tokenizer_config.json' '%s/' 2>/dev/null || true; }",
             REPRISE_DEFAULT_MODEL, dir, REPRISE_DEFAULT_MODEL, dir);
    return system(cmd) == 0 ? 0 : (fprintf(stderr, "bench_sweep: cannot copy the tokenizer into %s\n", dir), -1);
}

int main(int argc, char **argv) {
    cpu_threads_bound_spinning(argv);
    const char *dir = REPRISE_DEFAULT_MODEL, *spec = "arith", *configs = NULL, *backend = "cpu", *shape = NULL;
    int items = 32, duplicated = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--probe") && i + 1 < argc) spec = argv[++i];
        else if (!strcmp(argv[i], "--items") && i + 1 < argc) items = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--configs") && i + 1 < argc) configs = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--no-duplicated")) duplicated = 0;
        else
            return bench_usage(argv[i], "usage: bench_sweep [-m DIR | --shape qwen2-7b] [--backend cpu|cuda] [--probe SPEC] "
                                        "[--items N] [--configs LIST] [--no-duplicated]\n");
    }
    char shaped[] = "/tmp/reprise-bench-sweep-model-XXXXXX";
    if (shape) {
        if (!mkdtemp(shaped) || write_shaped_model(shaped, shape)) return 1;
        dir = shaped;
    }
    rp_err err;
    model m;
    model_dir md;   // its tokenizer and config (the model reads the rest)
    tokenizer *tok = model_dir_open(&md, dir, MODEL_DIR_TOKENIZER, NULL, "bench_sweep", &err) ? NULL : md.tok;
    probe p;
    config_list cl;
    space_opts so = {.stride = 1, .repeat = 2, .configs = configs};
    if (!tok || probe_load(&p, spec, items, items, 0, &err) || sweep_space_build(&cl, md.cfg.n_layers, &so, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    // the memory plan of the largest run here (the sweep's batch of 64), before any weight is read
    plan_shape plan;
    sweep_run pr = {.tok = tok, .probes = &p, .n_probes = 1, .configs = &cl, .batch = 64};
    sweep_prepare(&pr, &md.cfg, &plan);
    sweep_prompts_free(&pr);
    double t_load = rp_now_s();
    if (model_load_planned(&m, dir, backend, 0, &plan, 0, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    t_load = rp_now_s() - t_load;
    if (duplicated && strcmp(backend, "cpu"))
        duplicated = 0, fprintf(stderr, "bench_sweep: --backend %s: no duplicated-checkpoint mode (it loads a model per config)\n", backend);
    char tmpl[] = "/tmp/reprise-bench-sweep-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    outcome out[3] = {{0}};
    const char *names[3] = {"duplicated", "naive", "sweep"};
    for (int mode = duplicated ? 0 : 1; mode < 3; mode++) {
        char db_path[256];
        snprintf(db_path, sizeof db_path, "%s/%s.sqlite", tmp, names[mode]);
        sweep_run r;
        sweep_db d;
        double t0 = rp_now_s();
        if (mode == 0) {   // per config: export, load, evaluate alone as `base`
            unlink(db_path);
            if (sweep_db_open(&d, db_path, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
            for (int c = 0; c < cl.n; c++) {
                char out_dir[300];
                snprintf(out_dir, sizeof out_dir, "%s/dup%d", tmp, c);
                model dm;
                if (export_schedule(dir, &cl.c[c].sched, &(export_opts){.quiet = 1}, out_dir, &err) || model_load(&dm, out_dir, "cpu", 0, &err))
                    return fprintf(stderr, "%s\n", err.msg), 1;
                config_list one = {0};
                space_opts base_only = {.configs = "base"};
                sweep_space_build(&one, dm.cfg.n_layers, &base_only, &err);
                // keep the config's own label so the databases compare
                free(one.c[0].label);
                one.c[0].label = strdup(cl.c[c].label);
                sweep_run rr = {.m = &dm, .tok = tok, .probes = &p, .n_probes = 1, .configs = &one, .db = &d, .batch = 1, .naive = 1};
                int id;
                sweep_db_add_config(&d, &cl.c[c], &id, &err);
                rr.config_ids = &id;
                if (sweep_run_all(&rr, NULL, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
                out[0].layer_execs += rr.stats.layer_execs, out[0].visits += rr.stats.visits;
                sweep_space_free(&one);
                model_free(&dm);
                char cmd[400];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
                if (system(cmd)) {}
            }
        } else {
            if (setup(&r, &m, tok, &p, &cl, &d, db_path, mode == 1, &err) || sweep_run_all(&r, NULL, &err))
                return fprintf(stderr, "%s\n", err.msg), 1;
            out[mode].layer_execs = r.stats.layer_execs, out[mode].visits = r.stats.visits;
            free(r.config_ids);
        }
        out[mode].seconds = rp_now_s() - t0;
        out[mode].rows = rows_fingerprint(&d);
        sweep_db_close(&d);
    }
    double hours_per_config[3];
    printf("model %s (%d layers), backend %s, probe %s x %d items, %d configs (base included); model load %.3f s\n",
           shape ? shape : dir, m.cfg.n_layers, backend, spec, p.n_items, cl.n, t_load);
    printf("%-11s %10s %14s %16s %14s %10s\n", "mode", "seconds", "configs/hour", "layer execs", "visits run", "scores");
    for (int mode = duplicated ? 0 : 1; mode < 3; mode++) {
        hours_per_config[mode] = out[mode].seconds / 3600 / cl.n;
        printf("%-11s %10.3f %14.0f %16ld %14ld %10s\n", names[mode], out[mode].seconds, 1 / hours_per_config[mode],
               out[mode].layer_execs, out[mode].visits, out[mode].rows == out[2].rows ? "same" : "DIFFER");
    }
    printf("reprise sweep vs naive: %.2fx configs/hour, %.2fx fewer layer executions, %.2fx fewer visits\n",
           out[1].seconds / out[2].seconds, (double)out[1].layer_execs / out[2].layer_execs, (double)out[1].visits / out[2].visits);
    if (duplicated)
        printf("reprise sweep vs one duplicated checkpoint per config: %.2fx configs/hour\n", out[0].seconds / out[2].seconds);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    sweep_space_free(&cl);
    probe_free(&p);
    model_dir_close(&md);
    model_free(&m);
    if (shape) random_model_remove(shaped);
    return 0;
}
