// CPU benchmark: prefill and decode tokens/s for `base` and a repeated schedule, and their time ratio beside
// visits/layers (a schedule of V visits over N layers should cost V/N of base); then base with the projections in
// FP8 (--weights fp8) beside the weights as stored, in the same run. Prints, never asserts.
//
// usage: bench_cpu [-m DIR] [--schedule S] [--prompt N] [--decode N] [-t N]
//        bench_cpu --contention [-m DIR] [--decode N]   (decode beside other work: see contention())
//        bench_cpu --write-model DIR   (writes the random ~100M model into DIR and exits: for `reprise bench -m DIR`)
// Without -m it writes a ~100M-parameter Llama (dim 768, 12 layers, GQA 12:4, vocab 32000, BF16, random weights)
// into a temporary directory and removes it afterwards.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/common/cpu_threads.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "tools/bench/roofline.h"
#include "engine/sampler.h"
#include "loader/json_file.h"
#include "loader/weights.h"
#include "bench/bench_usage.h"
#include "bench/random_model.h"
#include "tools/common/stats.h"

typedef struct {
    double prefill_s, decode_s;
} timing;

static int run(model *m, const schedule *s, int n_prompt, int n_decode, timing *out) {
    sequence seq;
    rp_err err;
    if (sequence_init(&seq, m, s, n_prompt + n_decode, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    int *prompt = malloc(sizeof(int) * n_prompt);
    for (int i = 0; i < n_prompt; i++) prompt[i] = (i * 7919 + 1) % m->cfg.vocab_size;
    sampler greedy;
    sampler_params gp = {.temp = 0};
    sampler_init(&greedy, &gp, m->cfg.vocab_size);
    gen_seq g, *b[1] = {&g};   // the prompt, then greedy steps as `reprise generate` runs them
    gen_begin(&g, &seq, &greedy, prompt, n_prompt, -1);
    g.ignore_eos = 1;
    double t0 = rp_now_s();
    int rc = generate_step(m, b, 1, NULL, &err) < 0;
    double t1 = rp_now_s();
    for (int i = 0; i < n_decode && !rc; i++) rc = generate_step(m, b, 1, NULL, &err) < 0;
    double t2 = rp_now_s();
    *out = (timing){t1 - t0, t2 - t1};
    if (rc) fprintf(stderr, "%s\n", err.msg);
    sampler_free(&greedy);
    free(prompt);
    sequence_free(&seq, m);
    return rc ? -1 : 0;
}

// --- decode beside other work ---------------------------------------------------------------------------------------

// Starts `bench_cpu --decode-only` on dir in a child with GOMP_SPINCOUNT=spin and -t threads (0: all cores); its
// stdout (one line: decode tokens/s) comes back through *fd.
static pid_t start_decoder(const char *self, const char *dir, int n_decode, int threads, const char *spin, int *fd) {
    int p[2];
    if (pipe(p)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1), close(p[0]), close(p[1]);
        char t[16], n[16];
        snprintf(t, sizeof t, "%d", threads), snprintf(n, sizeof n, "%d", n_decode);
        setenv("GOMP_SPINCOUNT", spin, 1);
        execl(self, self, "--decode-only", "-m", dir, "--decode", n, "-t", t, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

static double finish_decoder(pid_t pid, int fd) {
    char buf[64] = "";
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    return got > 0 && WIFEXITED(status) && !WEXITSTATUS(status) ? atof(buf) : 0;
}

// A busy loop on every core: processes that spin until killed.
static void start_busy(pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        if ((pids[i] = fork()) == 0)
            for (volatile unsigned long x = 0;; x++) {}
}

static void stop_busy(pid_t *pids, int n) {
    for (int i = 0; i < n; i++) kill(pids[i], SIGKILL), waitpid(pids[i], NULL, 0);
}

// Decode tokens/s alone, two runs at once, and beside a busy loop on every core, each with all cores and with -t 1,
// under reprise's bounded spinning (GOMP_SPINCOUNT=1000) and libgomp's default (300000). The figure to watch: a
// run beside other work against -t 1 beside the same work (the target: within 2x).
static int contention(const char *self, const char *dir, int n_decode) {
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char *spins[2] = {CPU_THREADS_SPINCOUNT, "300000"};
    printf("decode tokens/s of the model beside other work, %d cores, %d decode steps a run\n", cores, n_decode);
    printf("%-10s %-26s %12s %12s %14s\n", "spincount", "situation", "all cores", "-t 1", "all / -t 1");
    for (int s = 0; s < 2; s++) {
        double alone[2], pair[2], busy[2];
        for (int k = 0; k < 2; k++) {
            int threads = k ? 1 : 0, fa, fb;
            pid_t a = start_decoder(self, dir, n_decode, threads, spins[s], &fa);
            alone[k] = finish_decoder(a, fa);
            a = start_decoder(self, dir, n_decode, threads, spins[s], &fa);
            pid_t b = start_decoder(self, dir, n_decode, threads, spins[s], &fb);
            double x = finish_decoder(a, fa), y = finish_decoder(b, fb);
            pair[k] = (x + y) / 2;
            pid_t busy_pids[256];
            int n_busy = cores < 256 ? cores : 256;
            start_busy(busy_pids, n_busy);
            a = start_decoder(self, dir, n_decode, threads, spins[s], &fa);
            busy[k] = finish_decoder(a, fa);
            stop_busy(busy_pids, n_busy);
        }
        printf("%-10s %-26s %12.2f %12.2f %14.2f\n", spins[s], "alone", alone[0], alone[1], alone[0] / alone[1]);
        printf("%-10s %-26s %12.2f %12.2f %14.2f\n", spins[s], "two runs at once (each)", pair[0], pair[1], pair[0] / pair[1]);
        printf("%-10s %-26s %12.2f %12.2f %14.2f\n", spins[s], "beside a busy loop", busy[0], busy[1], busy[0] / busy[1]);
    }
    return 0;
}

int main(int argc, char **argv) {
    cpu_threads_bound_spinning(argv);
    const char *dir = NULL, *sched_text = "rys:4,8";
    int n_prompt = 128, n_decode = 32, threads = 0, decode_only = 0, contend = 0;
    for (int i = 1; i < argc; i++)   // the flags without a value
        if (!strcmp(argv[i], "--decode-only") || !strcmp(argv[i], "--contention")) {
            *(!strcmp(argv[i], "--contention") ? &contend : &decode_only) = 1;
            memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof *argv), argc--, i--;
        }
    static const char usage[] = "usage: bench_cpu [-m DIR] [--schedule S] [--prompt N] [--decode N] [-t N]\n"
                                "       bench_cpu --contention [-m DIR] [--decode N]\n"
                                "       bench_cpu --write-model DIR\n";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return bench_usage(argv[i], usage);
        if (!strcmp(argv[i], "--write-model")) return random_model_write(argv[i + 1], RANDOM_MODEL_100M, 1) ? 1 : 0;
        if (!strcmp(argv[i], "-m")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--schedule")) sched_text = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) n_decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else return bench_usage(argv[i], usage);
    }
    char tmpl[] = "/tmp/reprise-bench-XXXXXX";
    int own = !dir;
    if (own) {
        dir = mkdtemp(tmpl);
        fprintf(stderr, "writing a ~100M-parameter model to %s\n", dir);
        if (!dir || random_model_write(dir, RANDOM_MODEL_100M, 1)) return 1;
    }
    if (contend) {
        int rc = contention("/proc/self/exe", dir, n_decode);
        if (own) random_model_remove(dir);
        return rc;
    }
    model m;
    rp_err err;
    double t0 = rp_now_s();
    if (model_load(&m, dir, "cpu", threads, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    if (decode_only) {   // a child of --contention: one line, decode tokens/s after a 16-token prompt
        schedule base;
        schedule_base(&base, m.cfg.n_layers);
        timing t;
        int rc = run(&m, &base, 16, n_decode, &t);
        if (!rc) printf("%.3f\n", n_decode / t.decode_s);
        schedule_free(&base);
        model_free(&m);
        return rc ? 1 : 0;
    }
    double load_s = rp_now_s() - t0;
    schedule base, rep;
    schedule_base(&base, m.cfg.n_layers);
    if (schedule_parse(&rep, sched_text, m.cfg.n_layers, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    long long params = 0;
    for (int i = 0; i < m.weights.n_tensors; i++) params += st_numel(&m.weights.tensors[i]);
    printf("model: %s, %.1fM parameters, %d layers; load + convert %.2f s; %d prompt tokens, %d decode steps\n",
           own ? "generated llama" : dir, params / 1e6, m.cfg.n_layers, load_s, n_prompt, n_decode);
    // best of three runs each, alternating, so that first touches and the other core's noise weigh on neither
    timing tb = {1e9, 1e9}, tr = {1e9, 1e9}, t;
    for (int rep_i = 0; rep_i < 3; rep_i++) {
        run(&m, &base, n_prompt, n_decode, &t);
        if (t.prefill_s < tb.prefill_s) tb.prefill_s = t.prefill_s;
        if (t.decode_s < tb.decode_s) tb.decode_s = t.decode_s;
        run(&m, &rep, n_prompt, n_decode, &t);
        if (t.prefill_s < tr.prefill_s) tr.prefill_s = t.prefill_s;
        if (t.decode_s < tr.decode_s) tr.decode_s = t.decode_s;
    }
    double vr = (double)rep.n_visits / base.n_visits;
    printf("%-12s %7s %14s %14s\n", "schedule", "visits", "prefill tok/s", "decode tok/s");
    printf("%-12s %7d %14.1f %14.2f\n", "base", base.n_visits, n_prompt / tb.prefill_s, n_decode / tb.decode_s);
    printf("%-12s %7d %14.1f %14.2f\n", sched_text, rep.n_visits, n_prompt / tr.prefill_s, n_decode / tr.decode_s);
    // Decode reads every visited layer's weights plus the LM head once per token: with the head's fixed cost,
    // the expected decode ratio is below visits/layers.
    double head = (double)m.cfg.vocab_size * m.cfg.dim, layers = (double)params - head * (m.cfg.tied_embeddings ? 1 : 2);
    printf("time ratio %s / base: prefill %.3f, decode %.3f; visits/layers %.3f; decode weight bytes ratio %.3f\n",
           sched_text, tr.prefill_s / tb.prefill_s, tr.decode_s / tb.decode_s, vr, (layers * vr + head) / (layers + head));
    // decode against the machine: the bytes a step reads (every visit's weights, the head, the KV) over the read
    // bandwidth measured now, with the threads decode ran on
    int n_threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    double bw = roofline_cpu_bandwidth(n_threads), ctx = n_prompt + n_decode / 2.0;
    roofline_bytes rb = roofline_element_bytes(&m);   // the bytes per element the backend holds (2 for this BF16 model)
    double bytes_base = roofline_decode_bytes(&m.cfg, &base, 1, ctx, rb), bytes_rep = roofline_decode_bytes(&m.cfg, &rep, 1, ctx, rb);
    printf("read bandwidth (measured, %d threads): %.1f GB/s; decode reads %.1f MB a step (base), reaching %.0f%% of it; "
           "%s %.0f%%\n", n_threads, bw / 1e9, bytes_base / 1e6, 100 * bytes_base * n_decode / tb.decode_s / bw, sched_text,
           100 * bytes_rep * n_decode / tr.decode_s / bw);
    // the projections in FP8 (--weights fp8, quantized at load) beside the weights as stored, decode of base, best of
    // three each, alternating: FP8 reads a byte a weight where BF16 reads two
    model m8;
    plan_shape s8 = {.weights = WEIGHTS_FP8};
    if (model_load_planned(&m8, dir, "cpu", threads, &s8, 0, &err)) fprintf(stderr, "--weights fp8: %s\n", err.msg);
    else {
        timing ts = {1e9, 1e9}, t8 = {1e9, 1e9};
        for (int rep_i = 0; rep_i < 3; rep_i++) {
            run(&m, &base, n_prompt, n_decode, &t);
            if (t.decode_s < ts.decode_s) ts = t;
            run(&m8, &base, n_prompt, n_decode, &t);
            if (t.decode_s < t8.decode_s) t8 = t;
        }
        printf("weights as stored vs --weights fp8 (base): decode %.2f vs %.2f tok/s (fp8 %.2fx), prefill %.1f vs %.1f tok/s; "
               "weights in memory %.1f vs %.1f MB\n",
               n_decode / ts.decode_s, n_decode / t8.decode_s, ts.decode_s / t8.decode_s, n_prompt / ts.prefill_s,
               n_prompt / t8.prefill_s, m.be->weight_bytes(m.be) / 1e6, m8.be->weight_bytes(m8.be) / 1e6);
        model_free(&m8);
    }
    schedule_free(&base);
    schedule_free(&rep);
    model_free(&m);
    if (own) random_model_remove(dir);
    return 0;
}
