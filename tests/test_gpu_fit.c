// The speed model's refit (tools/bench/gpu_fit.c): Nsight Compute's CSV read back, its kernels paired with counted
// launches, and constants recovered from times a known model made; malformed CSVs refused by name.
#include <math.h>
#include <unistd.h>

#include "test_util.h"
#include "tools/bench/gpu_fit.h"

static void base_names(void) {
    const char *cases[][2] = {{"(gemm_bf16_kernel<4, false>)", "gemm_bf16_kernel"},
                              {"void gemm_bf16_kernel<4, false>(const __nv_bfloat16 *, int)", "gemm_bf16_kernel"},
                              {"rmsnorm_kernel(float*, float const*)", "rmsnorm_kernel"},
                              {"void ns::inner::k_2(int)", "k_2"},
                              {"add_kernel", "add_kernel"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[96];
        kernel_base_name(cases[i][0], out, sizeof out);
        CHECK(!strcmp(out, cases[i][1]), "'%s' -> '%s', not '%s'", cases[i][0], out, cases[i][1]);
    }
}

// Five launches, each held back by a different term of the model: launch cost, latency (two sizes), DRAM, L2.
static launch_list planted_launches(void) {
    static launch_counters l[5];
    memset(l, 0, sizeof l);
    struct {
        const char *name;
        long ctas;
        int threads;
        double requests_per_warp, sectors_per_request, dram_share;
    } k[] = {{"(tiny_kernel)", 1, 32, 2, 4, 0.5},         {"(latency_kernel<8>)", 128, 256, 400, 4, 0.5},
             {"(latency_kernel<8>)", 16, 256, 40, 4, 0.5}, {"copy_kernel", 65536, 256, 2, 16, 1},
             {"strided_kernel", 4096, 256, 50, 32, 1.0 / 32}};
    for (int i = 0; i < 5; i++) {
        snprintf(l[i].name, sizeof l[i].name, "%s", k[i].name);
        l[i].ctas = l[i].ctas_run = k[i].ctas, l[i].threads = k[i].threads;
        double warps = (double)k[i].ctas * k[i].threads / 32;
        l[i].load_requests = warps * k[i].requests_per_warp;
        l[i].load_sectors = l[i].load_requests * k[i].sectors_per_request;
        l[i].load_bytes = l[i].wide_bytes = l[i].load_sectors * 32;
        l[i].dram_sectors = l[i].load_sectors * k[i].dram_share;
    }
    return (launch_list){l, 5};
}

static char *write_temp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/reprise-ncu-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s", path);
    close(fd);
    return path;
}

// ncu's CSV of the planted launches timed by `truth`, each launched twice (0.9x and 1.1x its time), in ns with
// thousands grouped, among ncu's own lines and a program's output; plus a kernel nothing counted and another metric.
static char *ncu_csv(const launch_list *l, const gpu_model *truth) {
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "==PROF== Connected to process 1\nmodel random 0.79B: 16 layers\n"
                                "\"ID\",\"Process ID\",\"Kernel Name\",\"Context\",\"Block Size\",\"Grid Size\",\"Metric Name\","
                                "\"Metric Unit\",\"Metric Value\"\n");
    int id = 0;
    for (int rep = 0; rep < 2; rep++)
        for (int i = 0; i < l->n; i++) {
            const launch_counters *c = &l->l[i];
            double ns = gpu_predict(truth, sm_limits_hopper(), NULL, c).seconds * 1e9 * (rep ? 1.1 : 0.9);
            char name[160], value[32];
            kernel_base_name(c->name, name, sizeof name);
            long whole = (long)ns;   // "12,345.678"
            snprintf(value, sizeof value, whole >= 1000 ? "%ld,%03ld.%03d" : "%.0ld%ld.%03d", whole / 1000, whole % 1000,
                     (int)((ns - whole) * 1000));
            n += (size_t)snprintf(text + n, sizeof text - n,
                                  "\"%d\",\"7\",\"void %s%s(const float *, int)\",\"1\",\"(%d, 1, 1)\",\"(1, %ld, 1)\","
                                  "\"gpu__time_duration.sum\",\"nsecond\",\"%s\"\n", id++, name,
                                  strchr(c->name, '<') ? "<8>" : "", c->threads, c->ctas, value);
        }
    snprintf(text + n, sizeof text - n, "\"99\",\"7\",\"never_counted(int)\",\"1\",\"(32, 1, 1)\",\"(4, 1, 1)\","
             "\"gpu__time_duration.sum\",\"usecond\",\"3.5\"\n"
             "\"99\",\"7\",\"tiny_kernel(int)\",\"1\",\"(32, 1, 1)\",\"(1, 1, 1)\",\"dram__bytes.sum\",\"byte\",\"1,024\"\n"
             "==PROF== Disconnected from process 1\n");
    return text;
}

static void recovers_the_constants(void) {
    launch_list l = planted_launches();
    const gpu_model *start = gpu_model_named("h200");
    gpu_model truth = *start;
    truth.launch = 3.0e-6, truth.latency = 0.6e-6, truth.dram_bandwidth = 3.8e12, truth.l2_bandwidth = 8e12;
    const char *bounds[] = {"latency", "latency", "latency", "dram", "l2"};
    for (int i = 0; i < l.n; i++) {   // the planted launches hold each term up in turn
        launch_prediction p = gpu_predict(&truth, sm_limits_hopper(), NULL, &l.l[i]);
        CHECK(!strcmp(p.bound, bounds[i]), "%s bound by %s, planted %s", l.l[i].name, p.bound, bounds[i]);
    }
    char *path = write_temp(ncu_csv(&l, &truth));
    measured_list m;
    rp_err err;
    CHECK(measured_list_read_ncu(&m, path, &err) == 0, "%s", err.msg);
    unlink(path);
    CHECK(m.n == 6, "%d kernels and shapes measured, not 6", m.n);
    for (int i = 0; i < m.n && i < l.n; i++) {   // two launches each, averaged; ns with thousands grouped read right
        double want = gpu_predict(&truth, sm_limits_hopper(), NULL, &l.l[i]).seconds;
        CHECK(m.k[i].launches == 2 && fabs(m.k[i].seconds / want - 1) < 1e-4, "%s: %d launches, %.4g s, want %.4g",
              m.k[i].name, m.k[i].launches, m.k[i].seconds, want);
    }
    fit_set set;
    fit_set_match(&set, &m, &l, NULL);
    CHECK(set.n == 5 && set.unmatched == 1, "%d matched, %d unmatched", set.n, set.unmatched);
    CHECK(fit_rms_log_error(&set, &truth) < 1e-4, "the truth's error %.3g", fit_rms_log_error(&set, &truth));
    double before = fit_rms_log_error(&set, start);
    CHECK(before > 0.1, "h200's constants already fit: %.3f (the test would prove nothing)", before);
    gpu_model fitted = gpu_model_fit(&set, start);
    double after = fit_rms_log_error(&set, &fitted);
    CHECK(after < 0.005, "rms log error %.4f after the refit (%.3f before)", after, before);
    struct {
        const char *what;
        double got, want;
    } k[] = {{"launch", fitted.launch, truth.launch},
             {"latency", fitted.latency, truth.latency},
             {"dram", fitted.dram_bandwidth, truth.dram_bandwidth},
             {"l2", fitted.l2_bandwidth, truth.l2_bandwidth}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        CHECK(fabs(k[i].got / k[i].want - 1) < 0.02, "%s refitted to %.4g, planted %.4g", k[i].what, k[i].got, k[i].want);
    CHECK(fitted.tensor_flops == start->tensor_flops && fitted.in_flight == start->in_flight, "unfitted constants changed");
    char *report = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&report, &len);
    fit_report(f, &set, start, &fitted);
    fclose(f);
    CHECK(strstr(report, "copy_kernel") && strstr(report, "strided_kernel") && strstr(report, "refitted: launch 3.0") &&
          strstr(report, "for tools/bench/gpu_model.c: {\"h200\""), "report:\n%s", report);
    free(report);
    fit_set_free(&set);
    measured_list_free(&m);
}

static void refuses_malformed_csv(void) {
    struct {
        const char *text, *says;
    } cases[] = {
        {"", "no ncu CSV header"},
        {"==PROF== nothing profiled\n", "no ncu CSV header"},
        {"\"Kernel Name\",\"Metric Value\"\n", "lacks one of"},
        {"\"Kernel Name\",\"Block Size\",\"Grid Size\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n"
         "\"k(int)\",\"(32, 1, 1)\"\n", "fewer than the header"},
        {"\"Kernel Name\",\"Block Size\",\"Grid Size\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n"
         "\"k(int)\",\"(32, 1, 1)\",\"(4, 1, 1)\",\"gpu__time_duration.sum\",\"nsecond\",\"n/a\"\n", "not a kernel time"},
        {"\"Kernel Name\",\"Block Size\",\"Grid Size\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n"
         "\"k(int)\",\"(32, 1, 1)\",\"(4, 1, 1)\",\"gpu__time_duration.sum\",\"fortnight\",\"3\"\n", "not a kernel time"},
        {"\"Kernel Name\",\"Block Size\",\"Grid Size\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n"
         "\"k(int)\",\"(32, 1, 1)\",\"(4, 1, 1)\",\"dram__bytes.sum\",\"byte\",\"3\"\n", "no gpu__time_duration.sum rows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = write_temp(cases[i].text);
        measured_list m;
        rp_err err;
        int rc = measured_list_read_ncu(&m, path, &err);
        unlink(path);
        CHECK(rc != 0 && strstr(err.msg, cases[i].says), "case %zu: rc %d, '%s' (want '%s')", i, rc, rc ? err.msg : "",
              cases[i].says);
    }
    measured_list m;
    rp_err err;
    CHECK(measured_list_read_ncu(&m, "/nonexistent/ncu.csv", &err) != 0 && strstr(err.msg, "/nonexistent/ncu.csv"), "missing file");
}

int main(void) {
    RUN(base_names);
    RUN(recovers_the_constants);
    RUN(refuses_malformed_csv);
    return TEST_EXIT();
}
