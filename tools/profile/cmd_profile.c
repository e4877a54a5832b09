// `reprise profile`: what each layer (and each block of layers) does to the hidden state, over a probe's prompts.
//
// Each prompt runs in chunks of --ubatch tokens; a chunk goes visit by visit (partial forward spans), so the state
// entering every visit and the last one's output are at hand for its tokens at once, and the metrics accumulate
// token by token (tools/profile/metrics.c): memory is one chunk's states, whatever the number of prompts.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "loader/fingerprint.h"
#include "loader/alloc.h"
#include "loader/model_dir.h"
#include "loader/json_file.h"
#include "tools/cli.h"
#include "tools/plot/plot.h"
#include "tools/profile/metrics.h"
#include "tools/sweep/run.h"

static const char *synopsis =
    "usage: reprise profile [-m DIR] (--probe SPEC | -p TEXT | -f FILE) --out DIR [--schedule S] [options]\n"
    "Runs the prompts once, recording the hidden state entering every visit and the last visit's output, and writes\n"
    "into DIR: layers.csv (per visit: angular distance to the next state, block influence, centred cosine,\n"
    "update norm, relative update norm, cosine of neighbouring updates), blocks.csv (every block of visits i..j-1:\n"
    "angular distance, block influence, centred cosine between its input and output), profile.json (all of it, the\n"
    "three matrices and the encode / reason / decode zones), block_distance.png (angular distance, y = i, x = j as\n"
    "the sweep's heatmaps), centred_cosine.png and layers.png. The first position of each prompt (an attention\n"
    "sink, whose state is an outlier) is left out.\n";

typedef struct {
    int *ids, n;
} prompt;

// The .npy header of a float32 array of shape (t, b, d), padded so the data starts at a multiple of 64.
static void npy_header(FILE *f, long t, int b, int d) {
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d, %d), }", t, b, d);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xff, f), fputc(hl >> 8, f);
    fwrite(dict, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
}

// Runs one prompt; adds each of its tokens (but position 0) to acc, and to dump.
static int run_prompt(model *m, const schedule *sched, const prompt *p, int chunk, profile_acc *acc, FILE *dump,
                      long *dumped, rp_err *err) {
    int B = sched->n_visits + 1, d = m->cfg.dim, rc;
    sequence seq;
    sequence *batch[1] = {&seq};
    if (sequence_init(&seq, m, sched, p->n, err)) return -1;
    float *states = rp_malloc(sizeof(float) * (size_t)B * (size_t)chunk * (size_t)d);
    const float **h = rp_malloc(sizeof(float *) * (size_t)B);
    rc = cli_check_tokens(p->ids, p->n, m->cfg.vocab_size, err);
    for (int c0 = 0; c0 < p->n && !rc; c0 += chunk) {
        int n = p->n - c0 < chunk ? p->n - c0 : chunk;
        const int *tokens = p->ids + c0;
        for (int v = 0; v <= sched->n_visits && !rc; v++) {   // state v: the input of visit v (v = 0: the embedding)
            int from = v ? v - 1 : 0;
            forward_span span = {.from_visit = &from, .hidden_in = v ? states + (size_t)(v - 1) * chunk * d : NULL,
                                 .to_visit = v, .hidden_out = states + (size_t)v * chunk * d};
            rc = forward_span_run(m, batch, 1, &tokens, &n, &span, 0, NULL, NULL, err);
        }
        seq.cache.n_past += n;   // the spans wrote every visit's KV for these positions; partial spans do not advance
        for (int t = 0; t < n && !rc; t++) {
            if (c0 + t == 0) continue;
            for (int a = 0; a < B; a++) h[a] = states + ((size_t)a * chunk + t) * d;
            profile_acc_add(acc, h);
            for (int a = 0; dump && a < B; a++) fwrite(h[a], sizeof(float), (size_t)d, dump);
            if (dump) ++*dumped;
        }
    }
    free(states), free(h);
    sequence_free(&seq, m);
    return rc;
}

// A CSV cell: the number, or empty for NAN.
static void csv_num(FILE *f, double v, int last) {
    if (!isnan(v)) fprintf(f, "%.9g", v);
    fputc(last ? '\n' : ',', f);
}

static int write_outputs(const char *out, const profile_metrics *pm, const schedule *sched, const char *model_name,
                         uint64_t fp, long tokens, int n_prompts, const char *const *probe_names, int n_probe_names,
                         const char *schedule_text, rp_err *err) {
    int B = pm->n_states, V = B - 1;
    char *path = path_join(out, "layers.csv");
    FILE *f = fopen(path, "w");
    if (!f) return rp_fail(err, "%s: cannot create: %s", path, strerror(errno)), free(path), -1;
    fprintf(f, "visit,layer,angular_distance,block_influence,centred_cosine,update_norm,relative_update_norm,neighbour_update_cosine\n");
    for (int a = 0; a < V; a++) {
        size_t next = (size_t)a * B + a + 1;
        fprintf(f, "%d,%d,", a, sched->layer[a]);
        csv_num(f, pm->angular[next], 0), csv_num(f, pm->influence[next], 0), csv_num(f, pm->centred[next], 0);
        csv_num(f, pm->update_norm[a], 0), csv_num(f, pm->update_rel[a], 0);
        csv_num(f, a + 2 < B ? pm->update_corr[a] : NAN, 1);
    }
    int bad = fclose(f);
    free(path);
    path = path_join(out, "blocks.csv");
    if (bad || !(f = fopen(path, "w"))) return rp_fail(err, "%s: cannot write", path), free(path), -1;
    fprintf(f, "i,j,n,angular_distance,block_influence,centred_cosine\n");
    for (int i = 0; i < B; i++)
        for (int j = i + 1; j < B; j++) {
            size_t ij = (size_t)i * B + j;
            fprintf(f, "%d,%d,%d,", i, j, j - i);
            csv_num(f, pm->angular[ij], 0), csv_num(f, pm->influence[ij], 0), csv_num(f, pm->centred[ij], 1);
        }
    bad = fclose(f);
    free(path);
    if (bad) return rp_fail(err, "blocks.csv: cannot write");

    cJSON *j = cJSON_CreateObject();
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fp);
    cJSON_AddStringToObject(j, "model", model_name);
    cJSON_AddStringToObject(j, "model_fingerprint", hex);
    cJSON_AddStringToObject(j, "schedule", schedule_text);
    cJSON_AddNumberToObject(j, "visits", V);
    cJSON_AddNumberToObject(j, "prompts", n_prompts);
    cJSON_AddNumberToObject(j, "tokens", (double)tokens);
    cJSON *pr = cJSON_AddArrayToObject(j, "probes");
    for (int i = 0; i < n_probe_names; i++) cJSON_AddItemToArray(pr, cJSON_CreateString(probe_names[i]));
    cJSON *zone = cJSON_AddObjectToObject(j, "reasoning_zone");
    cJSON_AddNumberToObject(zone, "start", pm->zone_start);
    cJSON_AddNumberToObject(zone, "end", pm->zone_end);
    cJSON_AddStringToObject(zone, "meaning", "states [start, end): visits start..end-1 (base: layers), the middle of the "
                                             "three runs the centred cosine matrix splits into");
    cJSON *per = cJSON_AddArrayToObject(j, "per_visit");
    for (int a = 0; a < V; a++) {
        cJSON *r = cJSON_CreateObject();
        size_t next = (size_t)a * B + a + 1;
        cJSON_AddNumberToObject(r, "visit", a);
        cJSON_AddNumberToObject(r, "layer", sched->layer[a]);
        cJSON_AddNumberToObject(r, "angular_distance", pm->angular[next]);
        cJSON_AddNumberToObject(r, "block_influence", pm->influence[next]);
        cJSON_AddNumberToObject(r, "centred_cosine", pm->centred[next]);
        cJSON_AddNumberToObject(r, "update_norm", pm->update_norm[a]);
        cJSON_AddNumberToObject(r, "relative_update_norm", pm->update_rel[a]);
        if (a + 2 < B) cJSON_AddNumberToObject(r, "neighbour_update_cosine", pm->update_corr[a]);
        cJSON_AddItemToArray(per, r);
    }
    const char *names[3] = {"angular_distance", "block_influence", "centred_cosine"};
    const double *mats[3] = {pm->angular, pm->influence, pm->centred};
    cJSON *mj = cJSON_AddObjectToObject(j, "matrices");
    for (int k = 0; k < 3; k++) {
        cJSON *rows = cJSON_AddArrayToObject(mj, names[k]);
        for (int a = 0; a < B; a++) cJSON_AddItemToArray(rows, cJSON_CreateDoubleArray(mats[k] + (size_t)a * B, B));
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    path = path_join(out, "profile.json");
    f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f)) ok = 0;
    free(text);
    if (!ok) return rp_fail(err, "%s: cannot write", path), free(path), -1;
    free(path);

    // pictures: the block-distance matrix as the sweep's heatmap (y = i in 0..V-1, x = j in 1..V)
    double *cells = rp_malloc(sizeof(double) * (size_t)V * (size_t)V);
    for (int i = 0; i < V; i++)
        for (int jj = 1; jj <= V; jj++) cells[(size_t)i * V + jj - 1] = jj > i ? pm->angular[(size_t)i * B + jj] : NAN;
    char title[256];
    snprintf(title, sizeof title, "%s - angular distance between the input of visit i and of visit j", model_name);
    path = path_join(out, "block_distance.png");
    int rc = plot_heatmap(path, title, cells, V, 0, V, 1, "j: end of the block (exclusive)", "i: start of the block",
                          PLOT_SEQUENTIAL, NULL, err);
    free(path), free(cells);
    snprintf(title, sizeof title, "%s - centred cosine similarity of the states (zones: %d | %d | %d)", model_name,
             pm->zone_start, pm->zone_end - pm->zone_start, B - pm->zone_end);
    path = path_join(out, "centred_cosine.png");
    if (!rc) rc = plot_heatmap(path, title, pm->centred, B, 0, B, 0, "state b (the input of visit b)",
                               "state a (the input of visit a)", PLOT_DIVERGING, NULL, err);
    free(path);
    double *infl = rp_malloc(sizeof(double) * (size_t)V), *corr = rp_malloc(sizeof(double) * (size_t)V);
    for (int a = 0; a < V; a++) infl[a] = pm->influence[(size_t)a * B + a + 1], corr[a] = a + 2 < B ? pm->update_corr[a] : NAN;
    const double *series[3] = {infl, pm->update_rel, corr};
    const char *snames[3] = {"block influence of the visit (1 - cos(input, output))", "update norm / state norm",
                             "cosine of this visit's update and the next one's"};
    snprintf(title, sizeof title, "%s - per visit", model_name);
    path = path_join(out, "layers.png");
    if (!rc) rc = plot_curves(path, title, series, snames, 3, V, 0, "visit", err);
    free(path), free(infl), free(corr);
    return rc;
}

int cmd_profile(int argc, char **argv) {
    const char *specs[16], *out = NULL, *dump_path = NULL;
    int n_specs = 0, items = 16, code;
    rp_err err;
    cli_opts o;
    const option_def options[] = {
        SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
        {OPT_REPEAT, "--probe", "SPEC", specs, 0, 16, &n_specs,
         .help = "prompts of a probe, as sweep's --probe (math[:FILE], eq:FILE, mc:FILE, jsonl:FILE, arith); "
                 "repeatable; through the chat template as a sweep feeds them"},
        {OPT_INT, "--items", "N", &items, 1, 1 << 20, .def = "16", .help = "items per probe"},
        {OPT_SHARED, "-p", .help = "a text as one more prompt (BOS added, no chat template)"},
        {OPT_SHARED, "-f", .help = "the same, from a file"},
        {OPT_TEXT, "--out", "DIR", &out, .help = "where the files go (created)"},
        {OPT_SHARED, "--schedule", .help = "layer schedule: the states are those of its visits"},
        {OPT_TEXT, "--dump-states", "FILE", &dump_path,
         .help = "also write every counted token's states as float32 .npy, shape [tokens][visits+1][dim] (tests and "
                 "small models: 72B x 1,000 tokens is 2.6 GB)"},
        {OPT_SHARED, "--seed", .help = "seed of generated items"},
        SHARED_FLAG("--chat-template"), SHARED_FLAG("--system"),
        {OPT_SHARED, "--ubatch",
         .help = "tokens per chunk (default 512): the states held at once are N x (visits+1) x dim floats"},
        SHARED_FLAG("--backend"), SHARED_FLAG("-t"), SHARED_FLAG("--tp"), SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"),
        SHARED_FLAG("--allow-unused-tensors"),
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &o, &code)) return code;
    int rc;
    if (!out) return fprintf(stderr, "reprise profile: --out DIR is required (see --help)\n"), 2;
    if (!n_specs && !o.prompt && !o.file) return fprintf(stderr, "reprise profile: give prompts: --probe SPEC, -p TEXT or -f FILE\n"), 2;

    model_dir md;
    schedule sched = {0};
    sweep_run feed = {.system = o.system};   // how a sweep turns an item into ids
    prompt *ps = NULL;
    int n_ps = 0, longest = 1;
    rc = model_dir_open(&md, o.model_dir, MODEL_DIR_TOKENIZER | MODEL_DIR_CHAT, o.chat_template, "profile", &err);
    const model_config cfg = md.cfg;
    feed.tok = md.tok, feed.ct = md.ct;
    for (int s = 0; s < n_specs && !rc; s++) {
        probe pr;
        if ((rc = probe_load(&pr, specs[s], items, items, (unsigned)o.sampling.seed, &err))) break;
        ps = rp_realloc(ps, sizeof *ps * (size_t)(n_ps + pr.n_items));
        for (int i = 0; i < pr.n_items && !rc; i++, n_ps++)
            if ((rc = sweep_prompt_ids(&feed, pr.items[i].prompt, &ps[n_ps].ids, &ps[n_ps].n, &err)))
                rp_wrap(&err, "%s item %s", specs[s], pr.items[i].id);
        probe_free(&pr);
    }
    if (!rc && (o.prompt || o.file)) {
        int is_text;
        ps = rp_realloc(ps, sizeof *ps * (size_t)(n_ps + 1));
        if (!(rc = cli_prompt_ids(&o, feed.tok, &ps[n_ps].ids, &ps[n_ps].n, &is_text, &err))) n_ps++;
    }
    for (int i = 0; i < n_ps && !rc; i++) {
        if (ps[i].n > cfg.max_pos)
            rc = rp_fail(&err, "prompt %d has %d tokens, more than the model's context of %d", i, ps[i].n, cfg.max_pos);
        if (ps[i].n > longest) longest = ps[i].n;
    }
    if (!rc && (rc = schedule_parse(&sched, o.schedule, cfg.n_layers, &err))) rp_wrap(&err, "--schedule");
    int chunk = o.ubatch > 0 ? o.ubatch : 512;
    model m = {0};
    if (!rc) {
        plan_shape shape = {.ubatch = chunk, .seqs = 1, .logit_rows = 1, .kv_slots = sched.n_visits, .ctx = longest,
                            .max_visits = sched.n_visits, .tp = o.tp, .kv_dtype = o.kv_dtype, .weights = o.weights};
        rc = model_load_planned(&m, o.model_dir, o.backend, o.threads, &shape, o.allow_unused_tensors, &err);
    }
    if (!rc && mkdir(out, 0755) && errno != EEXIST) rc = rp_fail(&err, "--out %s: cannot create: %s", out, strerror(errno));
    FILE *dump = NULL;
    long dumped = 0;
    if (!rc && dump_path) {
        if (!(dump = fopen(dump_path, "wb"))) rc = rp_fail(&err, "--dump-states %s: cannot create: %s", dump_path, strerror(errno));
        else npy_header(dump, 0, sched.n_visits + 1, cfg.dim);   // the token count is written at the end
    }
    profile_acc acc = {0};
    profile_acc_init(&acc, sched.n_visits + 1, cfg.dim);
    fprintf(stderr, "reprise profile: %d prompt(s), %d visits of %s\n", n_ps, sched.n_visits, o.model_dir);
    for (int i = 0; i < n_ps && !rc; i++) rc = run_prompt(&m, &sched, &ps[i], chunk, &acc, dump, &dumped, &err);
    if (dump) {
        if (!rc) rewind(dump), npy_header(dump, dumped, sched.n_visits + 1, cfg.dim);
        if ((ferror(dump) | fclose(dump)) && !rc) rc = rp_fail(&err, "--dump-states %s: cannot write", dump_path);
    }
    if (!rc && acc.tokens == 0) rc = rp_fail(&err, "no token to profile: each prompt's first position is left out");
    if (!rc) {
        profile_metrics pm;
        profile_finish(&acc, &pm);
        uint64_t fp;
        char *stext = schedule_text(&sched);
        const char *name = strrchr(o.model_dir, '/');
        name = name && name[1] ? name + 1 : o.model_dir;
        rc = fingerprint_model(m.dir, &m.weights, &fp, &err);
        if (!rc) rc = write_outputs(out, &pm, &sched, name, fp, acc.tokens, n_ps, specs, n_specs, stext, &err);
        if (!rc)
            fprintf(stderr, "reprise profile: %ld tokens; reasoning zone: states %d-%d (visits %d..%d); files in %s/\n",
                    acc.tokens, pm.zone_start, pm.zone_end, pm.zone_start, pm.zone_end - 1, out);
        profile_metrics_free(&pm);
        free(stext);
    }
    if (rc) fprintf(stderr, "reprise profile: %s\n", err.msg);
    profile_acc_free(&acc);
    for (int i = 0; i < n_ps; i++) free(ps[i].ids);
    free(ps);
    schedule_free(&sched);
    model_dir_close(&md);
    model_free(&m);
    return rc ? 1 : 0;
}
