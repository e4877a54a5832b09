// What a sweep found: deltas against base with paired standard errors, z-scores, a ranking, exports and pictures.
//
// Every probe item is scored for base and for each config, so a config's delta is the mean of its per-item
// differences from base, and its standard error comes from those paired differences: a delta within two
// standard errors of zero is marked as noise. Deltas become z-scores across the sweep's configs, per probe; a
// config's balanced score is the sum of its z-scores (RYS: z(delta math) + z(delta eq)). The z-scores compare
// configs with each other, so a config can top them while every config is worse than base: what a user reads, the
// ranking's order, its pictures' colours and its last line, is anchored to base instead: each probe's delta over its
// paired standard error (a t statistic against base), summed over the probes ("vs base").
#include "tools/sweep/report.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/fingerprint.h"
#include "loader/json_file.h"
#include "tools/plot/plot.h"
#include "tools/sweep/label_set.h"
#include "tools/sweep/statistics.h"

typedef struct {
    int id, i, j, k, visits;
    char *label, *schedule;
    double *delta, *se, *mean, *z;   // per probe
    double *p_value, *q_value;       // per probe: two-sided p of delta = 0 (normal approximation), BH-adjusted q
    int *n;
    double balanced;
    double vs_base;                  // sum over probes of delta / paired SE: > 0 better than base, < 0 worse
} cfg_row;

typedef struct {
    int n_cfg, n_probe, base;
    cfg_row *c;
    char **probe;
} summary;

static void free_items(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

static int by_string(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Reads the database into S. only (n_only probes; NULL: every probe and item there is) limits it to those probes
// and, of each, its first n_items items: a halving rung ranks on the items its configs all have. among (NULL: every
// config) limits it to base and those configs: z-scores are then over them alone, so a search's scores at a step
// do not depend on configs it measured after that step (a resumed search retraces its path).
typedef struct {   // the configs being read into a summary
    summary *S;
    const label_set *among;
} config_reader;

static void add_config(void *ctx, const sweep_db_config_row *row) {
    config_reader *cr = ctx;
    summary *S = cr->S;
    if (cr->among && strcmp(row->label, "base") && !label_set_has(cr->among, row->label)) return;
    S->c = rp_realloc(S->c, sizeof *S->c * (size_t)(S->n_cfg + 1));
    cfg_row *c = &S->c[S->n_cfg];
    memset(c, 0, sizeof *c);
    c->id = row->id, c->i = row->i, c->j = row->j, c->k = row->k, c->visits = row->visits;
    c->label = rp_strdup(row->label);
    c->schedule = rp_strdup(row->schedule);
    if (!strcmp(c->label, "base")) S->base = S->n_cfg;
    S->n_cfg++;
}

static int build(sweep_db *db, summary *S, const probe *only, int n_only, const label_set *among, rp_err *err) {
    memset(S, 0, sizeof *S);
    S->base = -1;
    char **names;
    int n_names;
    sweep_db_scored_probes(db, &names, &n_names);
    for (int i = 0; i < n_names; i++) {
        int keep = !only;
        for (int q = 0; q < n_only; q++) keep |= !strcmp(only[q].name, names[i]);
        if (!keep) {
            free(names[i]);
            continue;
        }
        S->probe = rp_realloc(S->probe, sizeof *S->probe * (size_t)(S->n_probe + 1));
        S->probe[S->n_probe++] = names[i];
    }
    free(names);
    // among: in label order, so the z-scores' sums run in one order whatever order the rows arrived in (the shards
    // of a search, each with every row, must score a step alike)
    config_reader cr = {S, among};
    sweep_db_each_config(db, among != NULL, add_config, &cr);
    if (S->base < 0) return rp_fail(err, "the sweep has no base results to compare with");
    for (int ci = 0; ci < S->n_cfg; ci++) {
        cfg_row *c = &S->c[ci];
        c->delta = rp_calloc((size_t)S->n_probe, sizeof(double));
        c->se = rp_calloc((size_t)S->n_probe, sizeof(double));
        c->mean = rp_calloc((size_t)S->n_probe, sizeof(double));
        c->z = rp_calloc((size_t)S->n_probe, sizeof(double));
        c->n = rp_calloc((size_t)S->n_probe, sizeof(int));
        c->p_value = rp_calloc((size_t)S->n_probe, sizeof(double));
        c->q_value = rp_calloc((size_t)S->n_probe, sizeof(double));
    }
    for (int p = 0; p < S->n_probe; p++) {
        char **allowed = NULL;   // with only: the probe's items that count, sorted
        int n_allowed = 0;
        for (int q = 0; q < n_only; q++)
            if (!strcmp(only[q].name, S->probe[p])) {
                allowed = rp_malloc(sizeof(char *) * (size_t)(only[q].n_items ? only[q].n_items : 1));
                for (int i = 0; i < only[q].n_items; i++) allowed[n_allowed++] = only[q].items[i].id;
                qsort(allowed, (size_t)n_allowed, sizeof(char *), by_string);
            }
        char **bi;
        int nb;
        double *bs;
        sweep_db_scores(db, S->c[S->base].id, S->probe[p], &bi, &bs, &nb);
        for (int ci = 0; ci < S->n_cfg; ci++) {
            cfg_row *c = &S->c[ci];
            char **items;
            int n;
            double *s;
            sweep_db_scores(db, c->id, S->probe[p], &items, &s, &n);
            // paired over the items both have (both lists are sorted by item)
            paired_sum ps = {0};
            for (int a = 0, b = 0; a < n && b < nb;) {
                int cmp = strcmp(items[a], bi[b]);
                if (cmp < 0) a++;
                else if (cmp > 0) b++;
                else if (allowed && !bsearch(&items[a], allowed, (size_t)n_allowed, sizeof(char *), by_string)) a++, b++;
                else paired_add(&ps, s[a++], bs[b++]);
            }
            c->n[p] = ps.n;
            paired_result(&ps, &c->mean[p], &c->delta[p], &c->se[p]);
            free(s);
            free_items(items, n);
        }
        free(bs);
        free_items(bi, nb);
        free(allowed);
        // z-scores of the deltas across the configs (base excluded)
        double *x = rp_malloc(sizeof(double) * S->n_cfg), *z = rp_malloc(sizeof(double) * S->n_cfg);
        int *use = rp_malloc(sizeof(int) * S->n_cfg);
        for (int ci = 0; ci < S->n_cfg; ci++) x[ci] = S->c[ci].delta[p], use[ci] = ci != S->base && S->c[ci].n[p];
        z_scores(x, use, S->n_cfg, z);
        for (int ci = 0; ci < S->n_cfg; ci++) S->c[ci].z[p] = z[ci];
        free(x), free(z), free(use);
        // p-values of "no effect", and q-values over the sweep's configs (base excluded)
        double *pv = rp_malloc(sizeof(double) * S->n_cfg), *qv = rp_malloc(sizeof(double) * S->n_cfg);
        for (int ci = 0; ci < S->n_cfg; ci++) pv[ci] = ci == S->base ? NAN : p_two_sided(S->c[ci].delta[p], S->c[ci].se[p]);
        bh_adjust(pv, qv, S->n_cfg);
        for (int ci = 0; ci < S->n_cfg; ci++) S->c[ci].p_value[p] = pv[ci], S->c[ci].q_value[p] = qv[ci];
        free(pv), free(qv);
    }
    for (int ci = 0; ci < S->n_cfg; ci++) {
        cfg_row *c = &S->c[ci];
        c->balanced = c->vs_base = 0;
        for (int p = 0; p < S->n_probe; p++) c->balanced += c->z[p], c->vs_base += t_vs_base(c->delta[p], c->se[p]);
    }
    return 0;
}

static void summary_free(summary *S) {
    for (int ci = 0; ci < S->n_cfg; ci++) {
        cfg_row *c = &S->c[ci];
        free(c->label), free(c->schedule), free(c->delta), free(c->se), free(c->mean), free(c->z), free(c->n);
        free(c->p_value), free(c->q_value);
    }
    for (int p = 0; p < S->n_probe; p++) free(S->probe[p]);
    free(S->c), free(S->probe);
}

static int noise(const cfg_row *c, int p) { return !(fabs(c->delta[p]) > 2 * c->se[p]); }

static void csv_field(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

// s as a JSON string, quotes and escapes included (a probe's name is a path, which may hold any character).
static void json_string(FILE *f, const char *s) {
    cJSON *j = cJSON_CreateString(s ? s : "");
    char *text = cJSON_PrintUnformatted(j);
    fputs(text ? text : "\"\"", f);
    free(text);
    cJSON_Delete(j);
}

// Opens path for writing, or fails naming it and why.
static FILE *create(const char *path, rp_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) rp_fail(err, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static void add_failure(void *ctx, const char *label, const char *probe, const char *item, const char *reason) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "config", label);
    cJSON_AddStringToObject(o, "probe", probe);
    cJSON_AddStringToObject(o, "item", item);
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddItemToArray((cJSON *)ctx, o);
}

static void write_csv_row(void *ctx, const sweep_db_result_row *row) {
    FILE *f = ctx;
    csv_field(f, row->label), fputc(',', f);
    csv_field(f, row->probe), fputc(',', f);
    csv_field(f, row->item);
    fprintf(f, ",%.6f,", row->score);
    csv_field(f, row->reply);
    fputc('\n', f);
}

static int write_exports(sweep_db *db, const summary *S, const char *out, rp_err *err) {
    char *path = path_join(out, "summary.csv");
    FILE *f = create(path, err);
    free(path);
    if (!f) return -1;
    fprintf(f, "config,schedule,i,j,k,visits,probe,items,mean,delta,se,within_noise,z,balanced,p,q,vs_base\n");
    for (int ci = 0; ci < S->n_cfg; ci++)
        for (int p = 0; p < S->n_probe; p++) {
            const cfg_row *c = &S->c[ci];
            csv_field(f, c->label), fputc(',', f), csv_field(f, c->schedule);
            fprintf(f, ",%d,%d,%d,%d,", c->i, c->j, c->k, c->visits);
            csv_field(f, S->probe[p]);
            fprintf(f, ",%d,%.6f,%.6f,%.6f,%d,%.4f,%.4f,%.6g,%.6g,%.4f\n", c->n[p], c->mean[p], c->delta[p], c->se[p], noise(c, p),
                    c->z[p], c->balanced, c->p_value[p], c->q_value[p], c->vs_base);
        }
    fclose(f);

    path = path_join(out, "summary.json");
    if (!(f = create(path, err))) {
        free(path);
        return -1;
    }
    fprintf(f, "{\"probes\": [");
    for (int p = 0; p < S->n_probe; p++) fputs(p ? ", " : "", f), json_string(f, S->probe[p]);
    fprintf(f, "], \"configs\": [\n");
    for (int ci = 0; ci < S->n_cfg; ci++) {
        const cfg_row *c = &S->c[ci];
        fputs("  {\"config\": ", f), json_string(f, c->label), fputs(", \"schedule\": ", f), json_string(f, c->schedule);
        fprintf(f, ", \"visits\": %d, \"vs_base\": %.4f, \"balanced\": %.4f, \"probes\": {", c->visits, c->vs_base, c->balanced);
        for (int p = 0; p < S->n_probe; p++) {
            char se[32] = "null", pv[32] = "null", qv[32] = "null";
            if (!isnan(c->se[p])) snprintf(se, sizeof se, "%.6f", c->se[p]);
            if (!isnan(c->p_value[p])) snprintf(pv, sizeof pv, "%.6g", c->p_value[p]);
            if (!isnan(c->q_value[p])) snprintf(qv, sizeof qv, "%.6g", c->q_value[p]);
            fputs(p ? ", " : "", f), json_string(f, S->probe[p]);
            fprintf(f, ": {\"items\": %d, \"mean\": %.6f, \"delta\": %.6f, \"se\": %s, \"within_noise\": %s, \"z\": %.4f, "
                       "\"p\": %s, \"q\": %s}",
                    c->n[p], isnan(c->mean[p]) ? 0 : c->mean[p], isnan(c->delta[p]) ? 0 : c->delta[p],
                    se, noise(c, p) ? "true" : "false", c->z[p], pv, qv);
        }
        fprintf(f, "}}%s\n", ci + 1 < S->n_cfg ? "," : "");
    }
    // rows that could not be evaluated, with their reasons
    cJSON *failures = cJSON_CreateArray();
    sweep_db_each_failure(db, add_failure, failures);
    char *ftext = cJSON_PrintUnformatted(failures);
    fprintf(f, "], \"failures\": %s}\n", ftext);
    if (cJSON_GetArraySize(failures))
        fprintf(stderr, "reprise sweep: %d rows failed and have no score; their reasons are in %s\n",
                cJSON_GetArraySize(failures), path);
    free(ftext);
    cJSON_Delete(failures);
    fclose(f);
    free(path);

    path = path_join(out, "results.csv");
    f = create(path, err);
    free(path);
    if (!f) return -1;
    fprintf(f, "config,probe,item,score,reply\n");
    sweep_db_each_result(db, 0, write_csv_row, f);
    fclose(f);
    return 0;
}

// ---- pictures ----

#ifdef REPRISE_HAVE_CAIRO
// value(cfg) for the rys configs with repeat count k, drawn at (y = i, x = j).
static int heatmap(const summary *S, int k, const double *value, const char *title, const char *legend, const char *path,
                   rp_err *err) {
    int imin = 1 << 30, imax = -1, jmin = 1 << 30, jmax = -1;
    for (int ci = 0; ci < S->n_cfg; ci++) {
        const cfg_row *c = &S->c[ci];
        if (c->k != k || c->i < 0 || isnan(value[ci])) continue;
        if (c->i < imin) imin = c->i;
        if (c->i > imax) imax = c->i;
        if (c->j < jmin) jmin = c->j;
        if (c->j > jmax) jmax = c->j;
    }
    if (imax < 0) return 0;
    int ni = imax - imin + 1, nj = jmax - jmin + 1;
    double *cell = rp_malloc(sizeof(double) * (size_t)ni * (size_t)nj);
    for (long c = 0; c < (long)ni * nj; c++) cell[c] = NAN;
    for (int ci = 0; ci < S->n_cfg; ci++) {
        const cfg_row *c = &S->c[ci];
        if (c->k == k && c->i >= 0 && !isnan(value[ci])) cell[(long)(c->i - imin) * nj + (c->j - jmin)] = value[ci];
    }
    int rc = plot_heatmap(path, title, cell, ni, imin, nj, jmin, "j: end of the repeated block (exclusive)",
                          "i: start of the repeated block", PLOT_DIVERGING, legend, err);
    free(cell);
    return rc;
}

// Mean of value over each i (row) and each j (column) of the grid, as two panels of bars.
static int skyline(const summary *S, int k, const double *value, const char *title, const char *legend, const char *path,
                   rp_err *err) {
    int n = 0;
    for (int ci = 0; ci < S->n_cfg; ci++) n = S->c[ci].j > n ? S->c[ci].j : n;
    double *rs = rp_calloc((size_t)n + 1, sizeof(double)), *cs = rp_calloc((size_t)n + 1, sizeof(double));
    int *rn = rp_calloc((size_t)n + 1, sizeof(int)), *cn = rp_calloc((size_t)n + 1, sizeof(int));
    for (int ci = 0; ci < S->n_cfg; ci++) {
        const cfg_row *c = &S->c[ci];
        if (c->k != k || c->i < 0 || isnan(value[ci])) continue;
        rs[c->i] += value[ci], rn[c->i]++, cs[c->j] += value[ci], cn[c->j]++;
    }
    for (int x = 0; x <= n; x++) rs[x] = rn[x] ? rs[x] / rn[x] : NAN, cs[x] = cn[x] ? cs[x] / cn[x] : NAN;
    const double *panels[2] = {rs, cs};
    const char *labels[2] = {"i: mean over the configs starting their block at i", "j: mean over the configs ending their block at j"};
    int rc = plot_signed_bars(path, title, legend, panels, labels, 2, n + 1, err);
    free(rs), free(cs), free(rn), free(cn);
    return rc;
}

// The heatmaps (one per probe and the combined score) and the skyline.
static int write_pictures(const summary *S, int k, const char *model_name, const char *out, rp_err *err) {
    double *v = rp_malloc(sizeof(double) * S->n_cfg);
    int rc = 0;
    char title[256], file[128];
    for (int p = 0; p <= S->n_probe && !rc; p++) {
        const char *name = p < S->n_probe ? S->probe[p] : "combined";
        for (int ci = 0; ci < S->n_cfg; ci++) v[ci] = p < S->n_probe ? S->c[ci].delta[p] : S->c[ci].vs_base;
        if (p < S->n_probe) snprintf(title, sizeof title, "%s - %s: score minus base's (block run %dx)", model_name, name, k);
        else snprintf(title, sizeof title, "%s - combined: sum over probes of delta / paired SE (block run %dx)", model_name, k);
        const char *legend = p < S->n_probe ? "0 (white) = base's score; red: above base, blue: below"
                                            : "0 (white) = base; red: better than base, blue: worse; |value| > 2 on one probe is beyond noise";
        // the probe's whole name, or, past 80 bytes, its first 60 and a fingerprint of all of it: two probes whose
        // names share a long prefix never write the same file
        if (strlen(name) <= 80) snprintf(file, sizeof file, "heatmap_%s.png", name);
        else snprintf(file, sizeof file, "heatmap_%.60s_%016llx.png", name, (unsigned long long)fingerprint_str(FINGERPRINT_SEED, name));
        for (char *c = file; *c; c++)
            if (*c == '/' || *c == ':' || *c == '\\' || (unsigned char)*c < 32) *c = '_';
        char *path = path_join(out, file);
        rc = heatmap(S, k, v, title, legend, path, err);
        free(path);
        if (!rc && p == S->n_probe) {
            snprintf(title, sizeof title, "%s - skyline of the combined score (block run %dx)", model_name, k);
            path = path_join(out, "skyline.png");
            rc = skyline(S, k, v, title, "bars: the mean of the combined score vs base (0 = base; up, red: better than base)", path, err);
            free(path);
        }
    }
    free(v);
    return rc;
}
#else
// A build without Cairo (an offline GPU machine) writes everything but the pictures, and says so once.
static int write_pictures(const summary *S, int k, const char *model_name, const char *out, rp_err *err) {
    (void)S, (void)k, (void)model_name, (void)out, (void)err;
    fprintf(stderr, "reprise sweep: built without Cairo: heatmap_*.png and skyline.png are not written "
                    "(summary.csv and summary.json hold the same numbers)\n");
    return 0;
}
#endif

// The configs but base, best score against base first, into order (n_cfg - 1 entries); returns their count.
static int rank_configs(const summary *S, int *order) {
    int n = 0;
    for (int ci = 0; ci < S->n_cfg; ci++)
        if (ci != S->base) order[n++] = ci;
    for (int a = 1; a < n; a++)   // insertion sort, stable: ties keep the database's order
        for (int b = a; b > 0 && S->c[order[b]].vs_base > S->c[order[b - 1]].vs_base; b--) {
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    return n;
}

int sweep_scores_among(sweep_db *db, char *const *labels, int n, const probe *probes, int n_probes, double *score, rp_err *err) {
    summary S;
    label_set among;
    label_set_init(&among, n);
    for (int i = 0; i < n; i++) label_set_add(&among, labels[i]);
    int rc = build(db, &S, probes, n_probes, &among, err);
    label_set_free(&among);
    if (!rc) {
        int *at = rp_malloc(sizeof(int) * (size_t)(n ? n : 1)), n_at = 0;   // S's configs but base, sorted by label
        for (int ci = 0; ci < S.n_cfg; ci++)
            if (ci != S.base) at[n_at++] = ci;
        for (int a = 1; a < n_at; a++)
            for (int b = a; b > 0 && strcmp(S.c[at[b]].label, S.c[at[b - 1]].label) < 0; b--) {
                int t = at[b];
                at[b] = at[b - 1], at[b - 1] = t;
            }
        for (int i = 0; i < n; i++) {   // binary search for each label
            int lo = 0, hi = n_at;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (strcmp(S.c[at[mid]].label, labels[i]) < 0) lo = mid + 1;
                else hi = mid;
            }
            int have = lo < n_at && !strcmp(S.c[at[lo]].label, labels[i]);
            int rows = 0;
            for (int p = 0; have && p < S.n_probe; p++) rows += S.c[at[lo]].n[p];
            score[i] = have && rows ? S.c[at[lo]].balanced : NAN;
        }
        free(at);
    }
    summary_free(&S);
    return rc;
}

int sweep_rank_among(sweep_db *db, char *const *labels, int n, const probe *probes, int n_probes, int *order, rp_err *err) {
    double *score = rp_malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (sweep_scores_among(db, labels, n, probes, n_probes, score, err)) return free(score), -1;
    for (int i = 0; i < n; i++) {
        if (isnan(score[i])) score[i] = -INFINITY;
        order[i] = i;
    }
    for (int a = 1; a < n; a++)   // insertion sort, stable: ties keep the given order
        for (int b = a; b > 0 && score[order[b]] > score[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    free(score);
    return 0;
}

int sweep_top_configs(sweep_db *db, int top_n, char ***labels, int *n_labels, rp_err *err) {
    summary S;
    *labels = NULL, *n_labels = 0;
    if (build(db, &S, NULL, 0, NULL, err)) {
        summary_free(&S);
        return -1;
    }
    int *order = rp_malloc(sizeof(int) * (size_t)S.n_cfg), n = rank_configs(&S, order);
    *n_labels = n < top_n ? n : top_n;
    *labels = rp_malloc(sizeof(char *) * (size_t)(*n_labels ? *n_labels : 1));
    for (int r = 0; r < *n_labels; r++) (*labels)[r] = rp_strdup(S.c[order[r]].label);
    free(order);
    summary_free(&S);
    return 0;
}

// The ranking's last word: which configs beat base beyond noise (delta above two paired SEs) on which probes, or
// that none does; and each probe no row of which could be scored (every item failed), named, never dropped silently.
static void print_unscored(void *ctx, const char *probe, int failures, const char *reason) {
    (void)ctx;
    printf("Probe %s: every row failed (%d), nothing scored; first reason: %s\n", probe, failures, reason);
}

static void print_verdict(sweep_db *db, const summary *S) {
    int winners = 0;
    for (int ci = 0; ci < S->n_cfg; ci++) {
        const cfg_row *c = &S->c[ci];
        if (ci == S->base) continue;
        int first = 1;
        for (int p = 0; p < S->n_probe; p++) {
            if (isnan(c->delta[p]) || c->delta[p] <= 0 || noise(c, p)) continue;
            if (!winners++) printf("Beats base beyond noise:");
            printf("%s %s on %s (%+.4f +- %.4f)", first ? (winners > 1 ? ";" : "") : ",", first ? c->label : "", S->probe[p],
                   c->delta[p], isnan(c->se[p]) ? 0.0 : c->se[p]);
            first = 0;
        }
    }
    if (winners) printf("\n");
    else printf("No config beats base beyond noise on any probe (%d configs, %d probe(s)).\n", S->n_cfg - 1, S->n_probe);
    sweep_db_each_unscored_probe(db, print_unscored, NULL);
}

int sweep_report(sweep_db *db, const char *out, const char *model_name, int top_n, rp_err *err) {
    summary S;
    if (build(db, &S, NULL, 0, NULL, err) || write_exports(db, &S, out, err)) {
        summary_free(&S);
        return -1;
    }
    // the grid's repeat count: the most common k among rys configs
    int counts[64] = {0}, k = 2, best = 0;
    for (int ci = 0; ci < S.n_cfg; ci++)
        if (S.c[ci].k > 0 && S.c[ci].k < 64 && ++counts[S.c[ci].k] > best) best = counts[S.c[ci].k], k = S.c[ci].k;
    int rc = write_pictures(&S, k, model_name, out, err);
    // top-N by the score against base; every name whole (two probes may share a long prefix)
    int *order = rp_malloc(sizeof(int) * S.n_cfg), n = rank_configs(&S, order), wl = 18;
    for (int r = 0; r < n && r < top_n; r++) wl = (int)strlen(S.c[order[r]].label) > wl ? (int)strlen(S.c[order[r]].label) : wl;
    int *wp = rp_malloc(sizeof(int) * (size_t)(S.n_probe ? S.n_probe : 1));
    char head[512];
    printf("%-4s %-*s %6s", "rank", wl, "config", "visits");
    for (int p = 0; p < S.n_probe; p++) {
        snprintf(head, sizeof head, "%s (%d items)", S.probe[p], S.c[S.base].n[p]);
        wp[p] = (int)strlen(head) > 24 ? (int)strlen(head) : 24;
        printf("  %-*s", wp[p], head);
    }
    printf("  %8s  %8s\n", "vs base", "balanced");
    printf("%-4s %-*s %6d", "-", wl, "base", S.c[S.base].visits);
    for (int p = 0; p < S.n_probe; p++)
        if (isnan(S.c[S.base].mean[p])) printf("  %-*s", wp[p], "no scored item");
        else printf("  mean %-*.4f", wp[p] - 5, S.c[S.base].mean[p]);
    printf("\n");
    for (int r = 0; r < n && r < top_n; r++) {
        const cfg_row *c = &S.c[order[r]];
        printf("%-4d %-*s %6d", r + 1, wl, c->label, c->visits);
        for (int p = 0; p < S.n_probe; p++) {
            char cell[64];
            if (isnan(c->delta[p])) snprintf(cell, sizeof cell, "no paired item");
            else snprintf(cell, sizeof cell, "%+.4f+-%.4f%s", c->delta[p], isnan(c->se[p]) ? 0.0 : c->se[p], noise(c, p) ? " ~" : " *");
            printf("  %-*s", wp[p], cell);
        }
        printf("  %+8.2f  %8.3f\n", c->vs_base, c->balanced);
    }
    free(wp);
    printf("(delta vs base +- paired standard error; ~ within two standard errors of zero, * beyond; ranked by vs base: the\n"
           " sum over probes of delta / SE, > 0 better than base; balanced: RYS's sum of z-scores among the configs)\n");
    // how much of that is luck: among m configs tested at p < 0.05, about 0.05 m pass by chance alone
    for (int p = 0; p < S.n_probe; p++) {
        int m = 0, pass = 0, discoveries = 0;
        for (int ci = 0; ci < S.n_cfg; ci++) {
            if (ci == S.base || isnan(S.c[ci].p_value[p])) continue;
            m++;
            pass += S.c[ci].p_value[p] < 0.05;
            discoveries += S.c[ci].q_value[p] < 0.05;
        }
        if (m)
            printf("%s: %d of %d configs differ from base at p < 0.05, where %.1f would by chance alone; %d at a false "
                   "discovery rate of 5%% (Benjamini-Hochberg q < 0.05)\n", S.probe[p], pass, m, 0.05 * m, discoveries);
    }
    print_verdict(db, &S);
    free(order);
    summary_free(&S);
    return rc;
}
