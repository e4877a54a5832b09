// The speed model beside a device's measured kernel times, and its constants refitted to them.
#include "tools/bench/gpu_fit.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loader/alloc.h"

void kernel_base_name(const char *full, char *out, size_t cap) {
    // the identifier just before the first '<' or '(' that follows a letter: "void ns::k<4>(int)" -> "k"
    const char *end = full;
    while (*end && !((*end == '<' || *end == '(') && end > full && (isalnum((unsigned char)end[-1]) || end[-1] == '_'))) end++;
    const char *start = end;
    while (start > full && (isalnum((unsigned char)start[-1]) || start[-1] == '_')) start--;
    size_t n = (size_t)(end - start);
    if (n >= cap) n = cap - 1;
    memcpy(out, start, n);
    out[n] = 0;
}

// Splits one CSV line into fields (quoted or not, "" inside quotes for a quote), in place; returns their count.
static int csv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        char *w = p;
        fields[n++] = w;
        if (*p == '"') {
            for (p++; *p; p++) {
                if (*p == '"' && p[1] == '"') *w++ = '"', p++;
                else if (*p == '"') {
                    p++;
                    break;
                } else *w++ = *p;
            }
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r') *w++ = *p++;
        int more = *p == ',';
        *w = 0;
        if (!more) break;
        p++;
    }
    return n;
}

static int column(char **fields, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(fields[i], name)) return i;
    return -1;
}

// "(1, 192, 1)" -> 192
static long dims_product(const char *s, int *ok) {
    long prod = 1;
    int dims = 0;
    for (const char *p = s; *p;) {
        if (isdigit((unsigned char)*p)) {
            char *e;
            prod *= strtol(p, &e, 10), p = e, dims++;
        } else p++;
    }
    *ok = dims >= 1 && dims <= 3 && prod > 0;
    return prod;
}

static double unit_seconds(const char *unit) {
    static const struct {
        const char *name;
        double s;
    } units[] = {{"nsecond", 1e-9}, {"ns", 1e-9}, {"usecond", 1e-6}, {"us", 1e-6}, {"msecond", 1e-3}, {"ms", 1e-3},
                 {"second", 1}, {"s", 1}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(unit, units[i].name)) return units[i].s;
    return 0;
}

int measured_list_read_ncu(measured_list *out, const char *path, rp_err *err) {
    *out = (measured_list){0};
    FILE *f = fopen(path, "r");
    if (!f) return rp_fail(err, "%s: cannot read the measured kernel times", path);
    char *line = NULL, *fields[64];
    size_t cap = 0;
    int cap_k = 0, lineno = 0, rc = 0, header = 0, c_name = -1, c_grid = -1, c_block = -1, c_metric = -1, c_unit = -1, c_value = -1;
    while (getline(&line, &cap, f) > 0 && !rc) {
        lineno++;
        if (line[0] != '"') continue;   // ncu's own lines ("==PROF==") and the program's output
        int n = csv_split(line, fields, 64);
        if (!header) {
            c_name = column(fields, n, "Kernel Name"), c_grid = column(fields, n, "Grid Size"), c_block = column(fields, n, "Block Size");
            c_metric = column(fields, n, "Metric Name"), c_unit = column(fields, n, "Metric Unit"), c_value = column(fields, n, "Metric Value");
            if (c_name < 0 && c_value < 0) continue;
            if (c_name < 0 || c_grid < 0 || c_block < 0 || c_metric < 0 || c_unit < 0 || c_value < 0)
                rc = rp_fail(err, "%s:%d: ncu's CSV header lacks one of Kernel Name, Grid Size, Block Size, Metric Name, Metric "
                             "Unit, Metric Value", path, lineno);
            header = 1;
            continue;
        }
        if (n <= c_name || n <= c_grid || n <= c_block || n <= c_metric || n <= c_unit || n <= c_value) {
            rc = rp_fail(err, "%s:%d: %d fields, fewer than the header's columns", path, lineno, n);
            break;
        }
        if (strcmp(fields[c_metric], "gpu__time_duration.sum")) continue;
        char digits[64];   // "1,234.5": ncu groups thousands
        size_t d = 0;
        for (const char *p = fields[c_value]; *p && d + 1 < sizeof digits; p++)
            if (*p != ',') digits[d++] = *p;
        digits[d] = 0;
        char *end;
        double v = strtod(digits, &end), unit = unit_seconds(fields[c_unit]);
        int ok_grid, ok_block;
        long ctas = dims_product(fields[c_grid], &ok_grid), threads = dims_product(fields[c_block], &ok_block);
        if (!d || *end || !(v >= 0) || !unit || !ok_grid || !ok_block) {
            rc = rp_fail(err, "%s:%d: not a kernel time: value '%s' unit '%s' grid '%s' block '%s'", path, lineno,
                         fields[c_value], fields[c_unit], fields[c_grid], fields[c_block]);
            break;
        }
        char name[96];
        kernel_base_name(fields[c_name], name, sizeof name);
        int i = 0;
        while (i < out->n && !(out->k[i].ctas == ctas && out->k[i].threads == threads && !strcmp(out->k[i].name, name))) i++;
        if (i == out->n) {
            if (out->n == cap_k) out->k = rp_realloc(out->k, sizeof *out->k * (size_t)(cap_k = cap_k ? 2 * cap_k : 32));
            out->k[out->n++] = (measured_kernel){.ctas = ctas, .threads = (int)threads};
            snprintf(out->k[i].name, sizeof out->k[i].name, "%s", name);
        }
        measured_kernel *k = &out->k[i];   // running mean
        k->launches++;
        k->seconds += (v * unit - k->seconds) / k->launches;
    }
    free(line);
    fclose(f);
    if (!rc && !header) rc = rp_fail(err, "%s: no ncu CSV header (a \"Kernel Name\" and a \"Metric Value\" column)", path);
    if (!rc && !out->n) rc = rp_fail(err, "%s: no gpu__time_duration.sum rows", path);
    if (rc) measured_list_free(out);
    return rc;
}

void measured_list_free(measured_list *m) {
    free(m->k);
    *m = (measured_list){0};
}

void fit_set_match(fit_set *out, const measured_list *m, const launch_list *counted, const kernel_resource_table *res) {
    *out = (fit_set){.p = rp_calloc((size_t)m->n + 1, sizeof *out->p)};
    for (int i = 0; i < m->n; i++) {
        fit_point pt = {.measured = &m->k[i], .counted = rp_calloc((size_t)counted->n + 1, sizeof *pt.counted)};
        for (int j = 0; j < counted->n; j++) {
            const launch_counters *c = &counted->l[j];
            char name[96];
            kernel_base_name(c->name, name, sizeof name);
            if (c->ctas == m->k[i].ctas && c->threads == m->k[i].threads && !strcmp(name, m->k[i].name)) {
                pt.counted[pt.n_counted++] = c;
                if (res && !pt.res) pt.res = kernel_resources_find(res, c->name);
            }
        }
        if (pt.n_counted) out->p[out->n++] = pt;
        else free(pt.counted), out->unmatched++;
    }
}

void fit_set_free(fit_set *s) {
    for (int i = 0; i < s->n; i++) free(s->p[i].counted);
    free(s->p);
    *s = (fit_set){0};
}

double fit_point_predict(const fit_point *p, const gpu_model *g) {
    double sum = 0;
    for (int i = 0; i < p->n_counted; i++) sum += gpu_predict(g, sm_limits_hopper(), p->res, p->counted[i]).seconds;
    return sum / p->n_counted;
}

double fit_rms_log_error(const fit_set *s, const gpu_model *g) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (!(s->p[i].measured->seconds > 0)) continue;
        double e = log(fit_point_predict(&s->p[i], g) / s->p[i].measured->seconds);
        sum += e * e, n++;
    }
    return n ? sqrt(sum / n) : 0;
}

gpu_model gpu_model_fit(const fit_set *s, const gpu_model *start) {
    gpu_model g = *start;
    double *knobs[] = {&g.launch, &g.latency, &g.dram_bandwidth, &g.l2_bandwidth};
    const double *from[] = {&start->launch, &start->latency, &start->dram_bandwidth, &start->l2_bandwidth};
    enum { KNOBS = sizeof knobs / sizeof *knobs };
    double best = fit_rms_log_error(s, &g), step = 0.5;
    // coordinate search in log space: each constant up and down by the step while that helps, the step halved when
    // nothing does (the error is piecewise smooth in each: a max of terms)
    while (step > 1e-4) {
        int improved = 0;
        for (int k = 0; k < KNOBS; k++)
            for (int dir = -1; dir <= 1; dir += 2) {
                double keep = *knobs[k], v = keep * exp(dir * step);
                if (v > *from[k] * 10 || v < *from[k] / 10) continue;
                *knobs[k] = v;
                double e = fit_rms_log_error(s, &g);
                if (e < best - 1e-12) best = e, improved = 1;
                else *knobs[k] = keep;
            }
        if (!improved) step /= 2;
    }
    return g;
}

void fit_report(FILE *to, const fit_set *s, const gpu_model *before, const gpu_model *after) {
    fprintf(to, "%-26s %7s %7s %8s | %12s %7s | %12s %7s\n", "kernel", "CTAs", "threads", "measured", "predicted us", "error",
            "refitted us", "error");
    double sum_m = 0, sum_b = 0, sum_a = 0;
    for (int i = 0; i < s->n; i++) {
        const fit_point *p = &s->p[i];
        double m = p->measured->seconds, b = fit_point_predict(p, before), a = fit_point_predict(p, after);
        sum_m += m * p->measured->launches, sum_b += b * p->measured->launches, sum_a += a * p->measured->launches;
        fprintf(to, "%-26.26s %7ld %7d %8.2f | %12.2f %+6.0f%% | %12.2f %+6.0f%%\n", p->measured->name, p->measured->ctas,
                p->measured->threads, m * 1e6, b * 1e6, 100 * (b / m - 1), a * 1e6, 100 * (a / m - 1));
    }
    fprintf(to, "%-26s %7s %7s %8.1f | %12.1f %+6.0f%% | %12.1f %+6.0f%%\n", "all measured launches", "", "", sum_m * 1e6,
            sum_b * 1e6, 100 * (sum_b / sum_m - 1), sum_a * 1e6, 100 * (sum_a / sum_m - 1));
    fprintf(to, "rms log error: %.3f with %s's constants, %.3f refitted (%d kernels matched, %d measured not counted)\n",
            fit_rms_log_error(s, before), before->name, fit_rms_log_error(s, after), s->n, s->unmatched);
    fprintf(to, "refitted: launch %.2f us (was %.2f), latency %.3f us (was %.3f), DRAM %.2f TB/s (was %.2f), L2 %.1f TB/s (was %.1f)\n",
            after->launch * 1e6, before->launch * 1e6, after->latency * 1e6, before->latency * 1e6, after->dram_bandwidth / 1e12,
            before->dram_bandwidth / 1e12, after->l2_bandwidth / 1e12, before->l2_bandwidth / 1e12);
    fprintf(to, "for tools/bench/gpu_model.c: {\"%s\", %.3ge12, %.3ge12, %.0fe12, %.4ge9, %.3ge-6, %.3ge-6, %.1f},\n", after->name,
            after->dram_bandwidth / 1e12, after->l2_bandwidth / 1e12, after->tensor_flops / 1e12, after->clock / 1e9,
            after->launch * 1e6, after->latency * 1e6, after->in_flight);
}
