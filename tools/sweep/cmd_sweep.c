// `reprise sweep`: evaluate many layer schedules on probe sets, resumably, and report deltas, rankings and heatmaps.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/fingerprint.h"
#include "loader/alloc.h"
#include "loader/model_dir.h"
#include "tools/common/stats.h"
#include "loader/json_file.h"
#include "tools/cli.h"
#include "tools/sweep/db.h"
#include "tools/sweep/report.h"
#include "tools/sweep/run.h"
#include "tools/sweep/search.h"

static const char *synopsis =
    "usage: reprise sweep [-m DIR] --probe KIND[:FILE] [--probe ...] --out DIR [config space] [options]\n"
    "       reprise sweep merge --out DIR DB [DB ...]\n"
    "Evaluates base and every config on every probe item; results go to DIR/results.sqlite as each completes, so\n"
    "running the same command again resumes. Then prints the top configs and writes DIR/summary.csv, summary.json,\n"
    "results.csv, heatmap_<probe>.png, heatmap_combined.png and skyline.png.\n";

static const char *merge_synopsis =
    "usage: reprise sweep merge --out DIR DB [DB ...]\n"
    "Combines the databases of a sharded sweep into DIR/results.sqlite and reports on the whole.\n";

// --out, made when missing; one that cannot be written is named now, not at the first row a long run writes.
static int make_dir(const char *d, rp_err *err) {
    return dir_make_writable(d, "--out", "a sweep keeps its database and report in it", err);
}

// A database file and its WAL companions, removed.
static void remove_db(const char *path) {
    size_t n = strlen(path) + 5;
    char *side = rp_malloc(n);
    unlink(path);
    snprintf(side, n, "%s-wal", path), unlink(side);
    snprintf(side, n, "%s-shm", path), unlink(side);
    free(side);
}

// merge: the databases' configs (matched by label), items, results and failures into DIR/results.sqlite (with the
// rows it held already), built in a temporary file renamed into place only when complete: a failed merge leaves
// DIR as it was. The inputs are only read.
static int merge(int argc, char **argv) {
    const char *out = NULL;
    option_args dbs = {0};
    const option_def options[] = {
        {OPT_TEXT, "--out", "DIR", &out, .help = "where the merged database and the report go (made when missing)"},
        {OPT_ARGS, "DB", .at = &dbs},
        OPTIONS_END,
    };
    rp_err err;
    int help;
    if (options_parse(argc, argv, 3, options, NULL, &help, &err)) {
        free(dbs.items);
        return fprintf(stderr, "reprise sweep merge: %s\n", err.msg), 2;
    }
    if (help) return options_print_help(merge_synopsis, options, NULL), free(dbs.items), 0;
    if (!out || !dbs.n) {
        free(dbs.items);
        fprintf(stderr, "reprise sweep merge: usage: reprise sweep merge --out DIR DB [DB ...]\n");
        return 2;
    }
    if (make_dir(out, &err)) return free(dbs.items), fprintf(stderr, "reprise sweep merge: %s\n", err.msg), 1;
    char *path = path_join(out, "results.sqlite"), *tmp = rp_malloc(strlen(path) + 40);
    sprintf(tmp, "%s.merging-%ld", path, (long)getpid());
    remove_db(tmp);
    sweep_db d;
    int rc = sweep_db_open(&d, tmp, &err);
    long added = 0;
    if (!rc && file_exists(path)) rc = sweep_db_merge(&d, path, &added, &err);   // what DIR held already
    for (int i = 0; i < dbs.n && !rc; i++) rc = sweep_db_merge(&d, dbs.items[i], &added, &err);
    free(dbs.items);
    sweep_db_close(&d);
    if (!rc && rename(tmp, path)) rc = rp_fail(&err, "%s: cannot rename into %s: %s", tmp, path, strerror(errno));
    if (rc) {
        remove_db(tmp);
        fprintf(stderr, "reprise sweep merge: %s (%s is as it was)\n", err.msg, path);
        free(path), free(tmp);
        return 1;
    }
    fprintf(stderr, "reprise sweep merge: %ld rows added to %s\n", added, path);
    if (!(rc = sweep_db_open(&d, path, &err))) {
        rc = sweep_report(&d, out, "merged sweep", 10, &err);
        sweep_db_close(&d);
    }
    if (rc) fprintf(stderr, "reprise sweep merge: %s\n", err.msg);
    free(path), free(tmp);
    return rc ? 1 : 0;
}

// Opens DIR/results.sqlite and checks that its rows mean what this run's would (a new one records it): the same
// model by content (any copy of it, wherever it lies), chat template, system prompt, KV dtype, the same items of
// each probe, and the same reprise. Any difference is refused, naming it.
static int open_db(sweep_db *d, const char *dir, const sweep_run *r, const model *m, rp_err *err) {
    int rc = make_dir(dir, err);
    char *dbp = path_join(dir, "results.sqlite");
    if (!rc && file_exists(dbp) && access(dbp, W_OK))
        rc = rp_fail(err, "%s: cannot write it (%s), so this sweep cannot resume there; its rows can be read: `reprise "
                     "sweep merge --out NEWDIR %s` reports on them, and a copy of it in a directory you can write resumes there (as --out)", dbp, strerror(errno), dbp);
    if (!rc) rc = sweep_db_open(d, dbp, err);
    free(dbp);
    uint64_t fp;
    char text[160];
    if (!rc) rc = fingerprint_model(m->dir, &m->weights, &fp, err);
    if (!rc) {
        snprintf(text, sizeof text, "%016llx", (unsigned long long)fp);
        rc = sweep_db_check_meta(d, "model (config.json and tensors)", text, err);
    }
    if (!rc) rc = sweep_db_check_meta(d, "chat_template", chat_family_name(r->ct.family), err);
    if (!rc) {
        snprintf(text, sizeof text, "greedy; system prompt %016llx", (unsigned long long)fingerprint_str(FINGERPRINT_SEED, r->system));
        rc = sweep_db_check_meta(d, "decoding", text, err);
    }
    if (!rc) rc = sweep_db_check_meta(d, "reprise version", REPRISE_VERSION, err);
    for (int p = 0; p < r->n_probes && !rc; p++) {
        char key[PROBE_NAME_MAX + 32];
        snprintf(key, sizeof key, "items of probe %s", r->probes[p].name);
        probe_describe(&r->probes[p], text, sizeof text);
        rc = sweep_db_check_meta(d, key, text, err);
    }
    if (!rc) {   // BF16 keys and values change the scores a little: rows of the two never share a ranking
        size_t elem = m->be->kv_bytes_per_token(m->be) / (2 * (size_t)m->cfg.n_kv_heads * m->cfg.head_dim);
        rc = sweep_db_check_meta(d, "kv_dtype", elem == 2 ? "bf16" : "f32", err);
    }
    return rc;
}

// Registers the run's configs and its probes' items in its database.
static int register_run(sweep_run *r, rp_err *err) {
    int rc = 0;
    r->config_ids = rp_malloc(sizeof(int) * (size_t)(r->configs->n ? r->configs->n : 1));
    for (int c = 0; c < r->configs->n && !rc; c++) rc = sweep_db_add_config(r->db, &r->configs->c[c], &r->config_ids[c], err);
    for (int p = 0; p < r->n_probes && !rc; p++)
        for (int i = 0; i < r->probes[p].n_items && !rc; i++) {
            const probe_item *it = &r->probes[p].items[i];
            rc = sweep_db_item(r->db, r->probes[p].name, it->id, it->prompt, it->answer, err);
        }
    return rc;
}

// --prune-by-profile DIR: the grid's ranges from the reasoning zone of DIR/profile.json, written into i_range and
// j_range ("A:B"); *fingerprint gets the profiled model's, to check against the sweep's once it is loaded.
static int prune_by_profile(const char *dir, int n_layers, char *i_range, char *j_range, size_t cap, char *fingerprint,
                            size_t fp_cap, rp_err *err) {
    char *path = path_join(dir, "profile.json");
    cJSON *j = json_parse_file(path, err);
    int rc = j ? 0 : -1;
    const cJSON *zone = j ? cJSON_GetObjectItemCaseSensitive(j, "reasoning_zone") : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(zone, "start"), *e = cJSON_GetObjectItemCaseSensitive(zone, "end");
    const cJSON *fp = j ? cJSON_GetObjectItemCaseSensitive(j, "model_fingerprint") : NULL;
    const cJSON *visits = j ? cJSON_GetObjectItemCaseSensitive(j, "visits") : NULL;
    if (!rc && (!cJSON_IsNumber(s) || !cJSON_IsNumber(e) || !cJSON_IsString(fp) || !cJSON_IsNumber(visits)))
        rc = rp_fail(err, "%s: not a reprise profile (no reasoning_zone start and end, model_fingerprint, visits)", path);
    const cJSON *sched = j ? cJSON_GetObjectItemCaseSensitive(j, "schedule") : NULL;
    char base[32];
    snprintf(base, sizeof base, n_layers > 1 ? "0-%d" : "0", n_layers - 1);
    if (!rc && (visits->valueint != n_layers || !cJSON_IsString(sched) || strcmp(sched->valuestring, base)))
        rc = rp_fail(err, "%s: a profile of %d visits (schedule %s); the grid needs one of the base schedule (%d layers)",
                     path, visits->valueint, cJSON_IsString(sched) ? sched->valuestring : "?", n_layers);
    int zs = rc ? 0 : s->valueint, ze = rc ? 0 : e->valueint;
    if (!rc && (zs < 0 || ze > n_layers || ze - zs < 1))
        rc = rp_fail(err, "%s: reasoning zone [%d, %d) holds no block of a %d-layer model", path, zs, ze, n_layers);
    if (!rc) {
        snprintf(i_range, cap, "%d:%d", zs, ze - 1);
        snprintf(j_range, cap, "%d:%d", zs + 1, ze);
        snprintf(fingerprint, fp_cap, "%s", fp->valuestring);
        fprintf(stderr, "reprise sweep: --prune-by-profile: the reasoning zone of %s is layers %d..%d: I in %s, J in %s\n",
                path, zs, ze - 1, i_range, j_range);
    }
    cJSON_Delete(j);
    free(path);
    return rc;
}

// The first Ctrl-C stops the sweep after the item in progress (its rows are committed as they finish); the handler
// then steps aside, so a second one stops it at once (the committed rows are safe either way).
static void on_sigint(int sig) {
    (void)sig;
    sweep_stop_requested = 1;
    static const char msg[] = "\nreprise sweep: stopping after the item in progress (Ctrl-C again stops at once; "
                              "finished rows are kept either way)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(SIGINT, SIG_DFL);
}

// The larger of two run shapes, field by field: one plan for the screen and the confirmation after it.
static void shape_max(plan_shape *a, const plan_shape *b) {
    if (b->seqs > a->seqs) a->seqs = b->seqs;
    if (b->kv_slots > a->kv_slots) a->kv_slots = b->kv_slots;
    if (b->ctx > a->ctx) a->ctx = b->ctx;
    if (b->max_visits > a->max_visits) a->max_visits = b->max_visits;
}

// --confirm: the screen's top n configs and base again, on the confirm probes, into DIR/confirm/ (its own
// database and report: the ranking there is the one to believe).
static int run_confirm(sweep_run *cr, sweep_db *screen, int n, const char *out, const char *model_name, rp_err *err) {
    char **labels;
    int n_labels;
    if (sweep_top_configs(screen, n, &labels, &n_labels, err)) return -1;
    size_t len = 1;
    for (int i = 0; i < n_labels; i++) len += strlen(labels[i]) + 1;
    char *list = rp_calloc(len, 1);
    for (int i = 0; i < n_labels; i++) strcat(strcat(list, i ? ";" : ""), labels[i]);
    space_opts so = {.configs = list, .stride = 1, .repeat = 2, .shard_n = 1};
    config_list cl = {0};
    sweep_db d = {0};
    char *dir = path_join(out, "confirm");
    int rc = n_labels ? sweep_space_build(&cl, cr->m->cfg.n_layers, &so, err) : rp_fail(err, "--confirm: no config to confirm");
    cr->configs = &cl, cr->db = &d;
    if (!rc) rc = open_db(&d, dir, cr, cr->m, err);
    if (!rc) rc = register_run(cr, err);
    if (!rc) {
        fprintf(stderr, "reprise sweep: confirming the top %d configs and base on %d probe(s) into %s/\n", n_labels,
                cr->n_probes, dir);
        sweep_prompts_free(cr);   // prepared for the plan with every config; prepared again for these
        rc = sweep_run_all(cr, NULL, err);
    }
    if (!rc) {
        printf("\nconfirmation (%s/):\n", dir);
        rc = sweep_report(&d, dir, model_name, n_labels, err);
    }
    for (int i = 0; i < n_labels; i++) free(labels[i]);
    free(labels), free(list), free(dir), free(cr->config_ids);
    cr->config_ids = NULL;
    sweep_db_close(&d);
    sweep_space_free(&cl);
    return rc;
}

// A sweep's command line: its own flags, and the shared ones (cli_opts) after them.
typedef struct {
    cli_opts o;
    const char *probes[16], *cprobes[16], *out;
    int n_probes, n_cprobes;
    int items, batch, top, naive, retry_failed, loglik, max_tokens;   // loglik: --score (0 gen, 1 loglik, 2 acceptance)
    const char *target;            // --score acceptance: --target
    int timed;                     // --timed
    int confirm, confirm_items;    // --confirm N on --confirm-probe SPEC (--confirm-items)
    int halving, halving_items;    // --search halving, --halving-items
    int search;                    // 1: beam, 2: surrogate
    search_opts sopt;
    float budget_hours;
    const char *prune_dir;         // --prune-by-profile
    char prune_i[48], prune_j[48]; // the grid's ranges it gives
    const char *exchange;          // --exchange: a sharded search's directory
    int search_shard_k, search_shard_n;   // a search's shards split each step, not the space
    unsigned seed;
    space_opts so;
} sweep_flags;

// --shard K/N
static int rule_shard(void *at, const char *flag, const char *v, rp_err *err) {
    space_opts *so = at;
    int n;
    if (sscanf(v, "%d/%d%n", &so->shard_k, &so->shard_n, &n) != 2 || v[n] || so->shard_n < 1 || so->shard_k < 0 ||
        so->shard_k >= so->shard_n)
        return rp_fail(err, "%s %s: expected K/N with 0 <= K < N", flag, v);
    return 0;
}

// Phase 1: the flags. Returns -1 when the command is to exit at once with *code (help, or a flag refused).
static int parse_flags(int argc, char **argv, sweep_flags *f, int *code) {
    *f = (sweep_flags){.search_shard_n = 1};
    space_opts *so = &f->so;
    search_opts *sopt = &f->sopt;
    int search_mode = 0;
    const option_def options[] = {
        {.kind = OPT_HEADING, .flag = "probes:"},
        {OPT_REPEAT, "--probe", "KIND[:FILE]", f->probes, 0, 16, &f->n_probes,
         .help = "a probe set (repeatable):\n"
                 "math[:FILE]  RYS math (FILE in RYS's format, or generated questions), partial credit\n"
                 "eq:FILE      RYS EQ-Bench dialogues, parse-confidence-weighted score\n"
                 "mc:FILE      multiple choice by log-likelihood; jsonl {\"prompt\", \"options\", \"answer\": index}\n"
                 "jsonl:FILE   {\"prompt\", \"answer\", \"match\": \"exact\"|\"numeric\"|\"regex\"} per line; a "
                 "line's \"max_tokens\" is its reply budget\n"
                 "arith        generated A+B= / A*B= problems for the built-in model, partial credit\n"
                 "bbh:FILE     a BIG-Bench Hard task ({\"examples\": [{\"input\", \"target\"}]}, or a jsonl of them): "
                 "BBH's exact match (the first \"(X)\", or the final answer); --items draws a seeded subset"},
        {OPT_INT, "--items", "N", &f->items, 1, 1 << 24, .def = "32",
         .help = "items per probe (generated: how many; files: the first N; bbh: N drawn with --seed); each probe's "
                 "count, of how many it holds, is printed at the start and in the ranking"},
        {OPT_INT, "--max-tokens", "N", &f->max_tokens, 1, 1 << 20,
         .help = "the reply budget of probes that generate replies (defaults: math 64, arith 12, eq 96, jsonl 64, "
                 "bbh 48; a jsonl line's own max_tokens wins): a short-context model runs them"},
        {OPT_SHARED, "--seed", .help = "seed of generated items and of bbh's subset"},
        {OPT_CHOICE, "--score", "MODE", &f->loglik, .choices = "gen|loglik|acceptance", .def = "gen",
         .help = "gen: greedy replies scored as each probe defines; acceptance: each config drafts for --target "
                 "(self-speculative decoding) while it decodes the item's greedy reply, scored by the speed-up per "
                 "token in visits ((accepted + steps) x target visits / (proposed x config visits + steps x target "
                 "visits)), rows under probe \"accept[TARGET,K]:NAME\" (with --repeat 0 the grid skips its blocks); "
                 "loglik: the log-probability of the reference "
                 "answer after the prompt, one forward and no decoding (math, arith, jsonl exact/numeric, bbh: its "
                 "option letters as mc; mc is always by log-likelihood): a cheap, noise-free screen. Its rows are "
                 "kept apart, under probe \"loglik:NAME\""},
        {.kind = OPT_HEADING, .flag = "config space (base is always included):"},
        {OPT_TEXT, "--i-range", "A:B", &so->i_range, .help = "block starts I (default 0:N-1)"},
        {OPT_TEXT, "--j-range", "A:B", &so->j_range, .help = "block ends J, exclusive (default 1:N)"},
        {OPT_TEXT, "--block-sizes", "LIST", &so->block_sizes, .help = "allowed J-I, e.g. 1,2,4 (default any)"},
        {OPT_INT, "--stride", "S", &so->stride, 1, 1 << 16, .def = "1", .help = "step of I and J"},
        {OPT_INT, "--repeat", "K", &so->repeat, 0, 1 << 16, .def = "2",
         .help = "run the grid's blocks K times in all (rys:I,J,K); 0 skips them (drafts for --score acceptance)"},
        {OPT_TEXT, "--target", "S", &f->target, .def = "base",
         .help = "--score acceptance: the schedule the configs draft for"},
        SHARED_FLAG("--draft-tokens"),
        {OPT_SWITCH, "--timed", NULL, &f->timed,
         .help = "--score acceptance by measured time: the target's decoding alone over the drafted one's, per item "
                 "(one config at a time)"},
        {OPT_TEXT, "--configs", "LIST", &so->configs,
         .help = "explicit schedules separated by ';', e.g. \"rys:3,5;0-4,2-7\" (no grid unless grid flags)"},
        {OPT_TEXT, "--configs-file", "FILE", &so->configs_file, .help = "one schedule per line"},
        {OPT_RULE, "--shard", "K/N", so, .rule = rule_shard,
         .help = "evaluate configs K, K+N, ... only (merge the databases with `sweep merge`); with a search, "
                 "configs K, K+N, ... of each step, the shards trading rows through --exchange"},
        {OPT_TEXT, "--exchange", "DIR", &f->exchange,
         .help = "a sharded search's meeting place (every shard reads and writes it: a shared filesystem across "
                 "machines): each shard puts its rows of a step there and waits for the others', so every shard's "
                 "--out holds every row and all take the same next step"},
        {OPT_TEXT, "--prune-by-profile", "DIR", &f->prune_dir,
         .help = "the grid's blocks inside the reasoning zone of DIR/profile.json only (`reprise profile` of this "
                 "model, base schedule): zone states [S, E) keep S <= I and J <= E"},
        {.kind = OPT_HEADING, .flag = "search:"},
        {OPT_CHOICE, "--search", "MODE", &search_mode, .choices = "grid|halving|beam|surrogate", .def = "grid",
         .help = "grid: every config on every item; halving: every config on --halving-items items per probe, the "
                 "better half (balanced score) on twice as many, ..., the last rung on all --items; beam, surrogate: "
                 "measure the config space (the seed), then propose and measure configs of up to --max-blocks "
                 "repeated blocks until --budget (beam: grow, shrink, shift a block of the best --beam configs, add a "
                 "pass or a second block; surrogate: libxgboost trained on the measured configs' per-layer visit "
                 "counts ranks a pool of candidates, the best --round are measured, retrain, repeat). Each resumes "
                 "from its database; --shard splits each step's measuring"},
        {OPT_INT, "--halving-items", "N", &f->halving_items, 1, 1 << 24, .def = "4", .help = "items of the first halving rung"},
        {OPT_INT, "--budget", "N", &sopt->budget, 1, 1 << 24, .def = "200",
         .help = "beam, surrogate: most configs measured, the seed included"},
        {OPT_REAL, "--budget-hours", "H", &f->budget_hours, 1e-6, 1e6,
         .help = "any mode: start no new item after H hours; the same command resumes"},
        {OPT_INT, "--beam", "W", &sopt->beam, 1, 4096, .def = "24", .help = "configs a beam step expands"},
        {OPT_INT, "--max-blocks", "K", &sopt->space.max_blocks, 1, BLOCKS_MAX, .def = "2", .help = "blocks of a proposed config"},
        {OPT_INT, "--max-passes", "R", &sopt->space.max_passes, 2, 64, .def = "3", .help = "most passes of a block"},
        {OPT_INT, "--max-visits", "V", &sopt->space.max_visits, 1, 100000,
         .help = "most visits of a proposed config (default 2 x layers)"},
        {OPT_INT, "--pool", "N", &sopt->pool, 1, 1 << 24, .def = "100000",
         .help = "surrogate: candidates ranked each round (drawn with --seed)"},
        {OPT_INT, "--round", "N", &sopt->round, 1, 1 << 20, .def = "16", .help = "surrogate: configs measured each round"},
        {.kind = OPT_HEADING, .flag = "options:"},
        {OPT_TEXT, "--out", "DIR", &f->out,
         .help = "the database and the report (made when missing); the same command with the same DIR resumes"},
        {OPT_SHARED, "-m", .help = "model directory with tokenizer.json, or a Hugging Face name (ORG/NAME) in the local hub cache (default: the built-in model)"},
        SHARED_FLAG("--revision"),
        SHARED_FLAG("--chat-template"),
        SHARED_FLAG("--system"),
        {OPT_INT, "--batch", "N", &f->batch, 1, 1 << 16, .def = "64", .help = "most configs decoded together"},
        {OPT_INT, "--top", "N", &f->top, 0, 1 << 24, .def = "10", .help = "rows of the ranking"},
        {OPT_SWITCH, "--naive", NULL, &f->naive, .help = "one config at a time, nothing shared (the baseline of bench_sweep)"},
        {OPT_SHARED, "--ubatch", .help = "most rows of one forward step; prompts run in windows of N rows (default 512)"},
        SHARED_FLAG("--tp"),
        {OPT_SWITCH, "--retry-failed", NULL, &f->retry_failed,
         .help = "run again the rows that failed (recorded with their reason, otherwise skipped)"},
        {OPT_INT, "--confirm", "N", &f->confirm, 1, 1 << 24,
         .help = "then re-measure the top N configs and base on --confirm-probe, into DIR/confirm/ (its own database, "
                 "summaries and ranking with standard errors, p- and q-values)"},
        {OPT_REPEAT, "--confirm-probe", "SPEC", f->cprobes, 0, 16, &f->n_cprobes,
         .help = "a larger probe set for --confirm, as --probe (repeatable); generated replies scored as --score gen"},
        {OPT_INT, "--confirm-items", "N", &f->confirm_items, 1, 1 << 24,
         .help = "items of each confirm probe (default: all of a file; generated: 4 x --items, from another seed "
                 "than the screen's)"},
        SHARED_FLAG("--backend"), SHARED_FLAG("-t"), SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"), SHARED_FLAG("--allow-unused-tensors"),
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &f->o, code)) return -1;
    f->halving = search_mode == 1;
    f->search = search_mode == 2 ? 1 : search_mode == 3 ? 2 : 0;
    f->seed = (unsigned)f->o.sampling.seed;
    return 0;
}

// Phase 2: the flags that go together, and those that exclude each other. -1 with the message printed.
static int check_flags(sweep_flags *f) {
    if (!f->n_probes || !f->out) return fprintf(stderr, "reprise sweep: --probe and --out are required (see --help)\n"), -1;
    // a search's shards split each step, not the space: every shard builds the whole space and takes the same steps
    if ((f->halving || f->search) && f->so.shard_n > 1) {
        if (!f->exchange)
            return fprintf(stderr, "reprise sweep: --search %s decides each step from every config measured before it: "
                                   "its shards need --exchange DIR, a directory they all read and write\n",
                           f->halving ? "halving" : f->search == 1 ? "beam" : "surrogate"), -1;
        f->search_shard_k = f->so.shard_k, f->search_shard_n = f->so.shard_n;
        f->so.shard_k = 0, f->so.shard_n = 1;
    } else if (f->exchange)
        return fprintf(stderr, "reprise sweep: --exchange DIR goes with --shard K/N and a --search (halving, beam, "
                               "surrogate); a grid's shards share nothing until `sweep merge`\n"), -1;
    if ((f->confirm > 0) != (f->n_cprobes > 0))
        return fprintf(stderr, "reprise sweep: --confirm N (N > 0) and --confirm-probe SPEC go together\n"), -1;
    if (f->timed && f->loglik != 2)
        return fprintf(stderr, "reprise sweep: --timed measures drafts: it goes with --score acceptance\n"), -1;
    if (f->confirm && f->loglik == 2)
        return fprintf(stderr, "reprise sweep: --confirm scores replies; --score acceptance ranks drafts by speed: run "
                               "the winners again with more --items instead\n"), -1;
    return 0;
}

// Phase 3: the probes (the screen's, then the confirmation's, named apart). *loaded and *cloaded count what was
// loaded, for freeing, whatever failed.
static int load_probes(const sweep_flags *f, probe *ps, int *loaded, probe *cps, int *cloaded, rp_err *err) {
    int rc = 0;
    for (int p = 0; p < f->n_probes && !rc; p++, ++*loaded) {
        rc = probe_load(&ps[p], f->probes[p], f->items, f->items, f->seed, err);
        if (!rc && f->loglik == 1) rc = probe_use_loglik(&ps[p], err);
        if (!rc && f->loglik == 2) rc = probe_use_acceptance(&ps[p], f->target, f->o.draft_tokens, f->timed, err);
        if (!rc && f->max_tokens) probe_set_max_new(&ps[p], f->max_tokens);
    }
    // confirm probes: every item of a file unless --confirm-items; generated ones, 4x the screen's --items
    // (generated from another seed: items the screen never saw)
    for (int p = 0; p < f->n_cprobes && !rc; p++, ++*cloaded) {
        int n = f->confirm_items ? f->confirm_items : 4 * f->items;
        rc = probe_load(&cps[p], f->cprobes[p], f->confirm_items, n, f->seed + 1000003u, err);
        if (!rc && f->max_tokens) probe_set_max_new(&cps[p], f->max_tokens);
    }
    for (int p = 0; p < *cloaded && !rc; p++) {   // kept apart from the screen's rows of the same probe
        char key[PROBE_NAME_MAX];
        memcpy(key, cps[p].name, sizeof key);
        if (snprintf(cps[p].name, sizeof cps[p].name, "confirm:%s", key) >= (int)sizeof cps[p].name)
            rc = rp_fail(err, "--confirm-probe %s: too long a name", f->cprobes[p]);
    }
    return rc;
}

// Phase 4: the config space (the grid, pruned by a profile when asked, or a search's starting point).
static int build_space(sweep_flags *f, int n_layers, config_list *cl, char *prune_fp, size_t fp_cap, rp_err *err) {
    int rc = 0;
    if (f->prune_dir && (f->so.i_range || f->so.j_range))
        rc = rp_fail(err, "--prune-by-profile sets the grid's --i-range and --j-range: give neither");
    if (!rc && f->prune_dir &&
        !(rc = prune_by_profile(f->prune_dir, n_layers, f->prune_i, f->prune_j, sizeof f->prune_i, prune_fp, fp_cap, err)))
        f->so.i_range = f->prune_i, f->so.j_range = f->prune_j;
    if (!rc) rc = sweep_space_build(cl, n_layers, &f->so, err);
    f->sopt.space.n_layers = n_layers, f->sopt.seed = f->seed;
    f->sopt.space.skips = f->loglik == 2;   // --score acceptance searches drafts: blocks skipped
    if (!f->sopt.space.max_visits) f->sopt.space.max_visits = 2 * n_layers;
    return rc;
}

// A profile used to prune must be of this model, by content.
static int check_profile_model(const sweep_flags *f, model *m, const char *prune_fp, rp_err *err) {
    uint64_t fp;
    char hex[32];
    if (fingerprint_model(m->dir, &m->weights, &fp, err)) return -1;
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fp);
    if (strcmp(hex, prune_fp))
        return rp_fail(err, "--prune-by-profile %s: a profile of another model (fingerprint %s; this one's is %s)",
                       f->prune_dir, prune_fp, hex);
    return 0;
}

// Phase 5: what is measured, said; then the grid or the search, until done, the budget, or Ctrl-C.
static int run_sweep(const sweep_flags *f, sweep_run *r, const config_list *cl, rp_err *err) {
    fprintf(stderr, "reprise sweep: %d configs (base included) x %d probe(s) on %s%s\n", cl->n, r->n_probes, f->o.model_dir,
            r->ct.family != CHAT_NONE ? ", through its chat template" : "");
    for (int p = 0; p < r->n_probes; p++) {   // what is measured: each probe's items, of how many it has
        const probe *ps = &r->probes[p];
        char of[96] = "", reply[64] = "";
        if (ps->n_items < ps->n_available) snprintf(of, sizeof of, " of the %d it holds (--items %d)", ps->n_available, f->items);
        if (ps->kind != PROBE_MC && !ps->loglik) snprintf(reply, sizeof reply, ", replies of up to %d tokens", ps->max_new);
        fprintf(stderr, "reprise sweep: probe %s: %d item(s)%s%s\n", ps->name, ps->n_items, of, reply);
    }
    if (f->budget_hours > 0) r->deadline = rp_now_s() + f->budget_hours * 3600.0;
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    int rc = f->halving ? sweep_halving(r, f->halving_items, err)
             : f->search == 1 ? sweep_beam(r, &f->sopt, err)
             : f->search == 2 ? sweep_surrogate(r, &f->sopt, err)
                              : sweep_run_all(r, NULL, err);
    if (!rc && r->timed_out)
        fprintf(stderr, "reprise sweep: --budget-hours %g spent: every finished row is in the database; the same "
                        "command resumes\n", f->budget_hours);
    return rc;
}

int cmd_sweep(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[2], "merge")) return merge(argc, argv);
    sweep_flags f;
    int code;
    if (parse_flags(argc, argv, &f, &code)) return code;
    if (check_flags(&f)) return 2;
    const cli_opts *o = &f.o;
    rp_err err;
    model m = {0};
    model_dir md;
    if (model_dir_open(&md, o->model_dir, MODEL_DIR_TOKENIZER | MODEL_DIR_CHAT, o->chat_template, "a sweep", &err))
        return fprintf(stderr, "reprise sweep: %s\n", err.msg), 1;
    const model_config cfg = md.cfg;
    probe ps[16], cps[16];
    int loaded = 0, cloaded = 0;
    config_list cl = {0};
    sweep_db d = {0};
    char prune_fp[64] = "";
    sweep_run r = {.m = &m, .tok = md.tok, .ct = md.ct, .system = o->system, .probes = ps, .configs = &cl, .db = &d, .batch = f.batch,
                   .naive = f.naive, .progress = isatty(2) ? 2 : 1, .ubatch = o->ubatch, .exchange = f.exchange,
                   .shard_k = f.search_shard_k, .shard_n = f.search_shard_n};
    int rc = load_probes(&f, ps, &loaded, cps, &cloaded, &err);
    r.n_probes = loaded;
    if (!rc && f.loglik == 2 && schedule_parse(&r.target, f.target, cfg.n_layers, &err)) rc = rp_wrap(&err, "--target");
    r.draft_tokens = o->draft_tokens, r.timed = f.timed;
    sweep_run cr = r;   // the confirmation: the screen's model and settings, other probes
    cr.probes = cps, cr.n_probes = cloaded, cr.config_ids = NULL, cr.prompts = NULL, cr.exchange = NULL;
    if (!rc) rc = build_space(&f, cfg.n_layers, &cl, prune_fp, sizeof prune_fp, &err);
    if (f.search) r.plan_visits = f.sopt.space.max_visits;   // the plan covers any config the search may propose
    // every prompt tokenized first: the memory plan needs the longest, and is checked before any weight is read (the
    // confirmation's too, planned with every config of the screen: its top ones are among them)
    plan_shape shape, cshape;
    if (!rc) sweep_prepare(&r, &cfg, &shape), sweep_name_unrunnable(&r);
    if (!rc && f.confirm) cr.configs = &cl, sweep_prepare(&cr, &cfg, &cshape), shape_max(&shape, &cshape);
    shape.tp = o->tp, shape.kv_dtype = o->kv_dtype, shape.weights = o->weights;
    if (!rc) rc = model_load_planned(&m, o->model_dir, o->backend, o->threads, &shape, o->allow_unused_tensors, &err);
    if (!rc && f.prune_dir) rc = check_profile_model(&f, &m, prune_fp, &err);
    if (!rc) rc = open_db(&d, f.out, &r, &m, &err);
    char *dbp = path_join(f.out, "results.sqlite");
    long forgotten = 0;
    if (!rc && f.retry_failed && !(rc = sweep_db_forget_failures(&d, &forgotten, &err)))
        fprintf(stderr, "reprise sweep: --retry-failed: %ld failed rows will run again\n", forgotten);
    if (!rc) rc = register_run(&r, &err);
    if (!rc) rc = run_sweep(&f, &r, &cl, &err);
    // phase 6: the report, and the confirmation of the top configs
    const char *name = strrchr(o->model_dir, '/');
    name = name && name[1] ? name + 1 : o->model_dir;
    if (!rc) rc = sweep_report(&d, f.out, name, f.top, &err);
    if (!rc && r.interrupted) {
        long n_rows = sweep_db_count_rows(&d);
        fprintf(stderr, "reprise sweep: interrupted: %ld rows are safe in %s (the summary above covers them); run the same "
                        "command again to resume\n", n_rows, dbp);
    }
    if (!rc && f.confirm && !r.interrupted && f.search_shard_k > 0)
        fprintf(stderr, "reprise sweep: --confirm: shard 0 of the search confirms its winners (every shard holds the "
                        "same rows)\n");
    else if (!rc && f.confirm && !r.interrupted) rc = run_confirm(&cr, &d, f.confirm, f.out, name, &err);
    if (!rc && !r.interrupted) fprintf(stderr, "reprise sweep: results in %s; summary, heatmaps and skyline in %s/\n", dbp, f.out);
    else if (rc && r.db_failed)
        fprintf(stderr, "reprise sweep: %s\nreprise sweep: the database could not be written (a full disk?): every row "
                        "committed before is kept; make room and run the same command to resume\n", err.msg);
    else if (rc) fprintf(stderr, "reprise sweep: %s\n", err.msg);
    free(dbp);
    free(r.config_ids);
    sweep_db_close(&d);
    sweep_space_free(&cl);
    schedule_free(&r.target);
    sweep_prompts_free(&r);
    sweep_prompts_free(&cr);
    for (int p = 0; p < loaded; p++) probe_free(&ps[p]);
    for (int p = 0; p < cloaded; p++) probe_free(&cps[p]);
    model_dir_close(&md);
    model_free(&m);
    return rc ? 1 : r.interrupted ? 130 : 0;
}
