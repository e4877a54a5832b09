// `reprise bench` without --serve: each (schedule, depth, sequences, test) is run -r times after a warm-up, timed
// as a whole and, for generation, step by step; every figure is printed beside its roofline (bytes over the
// measured bandwidth for decode, FLOPs over the measured peak for prompts) and beside base's time.
#include "tools/bench/bench_offline.h"
#include "loader/alloc.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backends/builtin.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "tools/bench/roofline.h"
#include "tools/common/stats.h"


typedef struct {
    int n_prompt, n_gen, depth, seqs;
} bench_test;

typedef struct {
    const char *schedule;
    int visits;
    bench_test t;
    double *samples_s;   // (reps)
    int n_samples;
    double *steps_s;     // (reps x n_gen) generation steps
    int n_steps;
    double roofline_ts;  // 0: unknown
    int base_row;        // the row of the first schedule with the same test (the time ratio); a draft's row: the
                         // same schedule's without it
    const schedule *draft;   // --draft's row: drafted by it (else NULL)
    long spec[3];        // its drafts' speculative steps, ids proposed, ids accepted (all runs)
} bench_row;

// --- the machine's limits -------------------------------------------------------------------------------------------

// FLOP/s of the CUDA backend's own BF16 GEMM on square shapes from 256 to 8192 (the best; a GEMM of 8192^3 is
// 1.1 TFLOP, milliseconds on an H100, so the largest shapes approach what the kernel can do). Under the emulation,
// where a GEMM of 256^3 takes seconds, 64^3 alone. 0 with err set.
static double gpu_gemm_peak(const backend_entry *dev, int emulated, rp_err *err) {
    double best = 0;
    for (int d = emulated ? 64 : 256; d <= (emulated ? 64 : 8192); d *= 2) {
        double s = dev->time_gemm(d, d, d, -1, err);
        if (s <= 0) return 0;
        if (2.0 * d * d * d / s > best) best = 2.0 * d * d * d / s;
    }
    return best;
}

// --- running a test -----------------------------------------------------------------------------------------------

// One run: depth tokens fed untimed, then the timed prompt (all sequences in one step) and generation steps, each a
// generation step as `reprise generate` runs it (greedy, drawn where the backend samples), end-of-sequence ignored.
// With a draft (and its K), each sequence drafts with it: a step may draw several ids, the steps run until each
// sequence has drawn the test's ids, and spec gains the drafts' counters.
static int run_test(model *m, const schedule *s, const bench_test *t, const schedule *draft, int draft_k, double *seconds,
                    double *steps, int *n_steps, long spec[3], rp_err *err) {
    int B = t->seqs, vocab = m->cfg.vocab_size, ctx = t->depth + t->n_prompt + t->n_gen;
    int longest = t->depth > t->n_prompt ? t->depth : t->n_prompt;
    sequence *seqs = rp_calloc((size_t)B, sizeof *seqs);
    sequence **ptr = rp_malloc(sizeof *ptr * (size_t)(2 * B));
    const int **feeds = rp_malloc(sizeof *feeds * (size_t)(2 * B));
    int *counts = rp_malloc(sizeof(int) * (size_t)(2 * B)), *ids = rp_malloc(sizeof(int) * (size_t)(longest > 1 ? longest : 1));
    int *first = rp_malloc(sizeof(int) * (size_t)B);
    float *logits = rp_malloc(sizeof(float) * (size_t)B * vocab);
    gen_seq *gs = rp_calloc((size_t)B, sizeof *gs), **g = rp_malloc(sizeof *g * (size_t)B);
    spec_draft *drafts = rp_calloc((size_t)B, sizeof *drafts);
    sampler greedy;
    sampler_params gp = {.temp = 0};
    sampler_init(&greedy, &gp, vocab);
    int rc = 0, made = 0, drafted = 0;
    for (int i = 0; i < (longest > 1 ? longest : 1); i++) ids[i] = (int)((i * 7919L + 1) % vocab);
    for (; made < B && !rc; made++) {
        rc = sequence_init(&seqs[made], m, s, ctx, err);
        ptr[made] = &seqs[made];
    }
    if (rc) made--;
    for (; draft && drafted < B && !rc; drafted++)   // each draft's KV holds the depth as its target's does
        if ((rc = spec_draft_init(&drafts[drafted], m, draft, ctx, draft_k, 0, err))) drafted--;
    for (int i = 0; i < B + drafted; i++) feeds[i] = ids, counts[i] = t->depth;
    for (int i = 0; i < drafted; i++) ptr[B + i] = &drafts[i].seq;   // (their logits after the targets')
    float *depth_logits = rp_malloc(sizeof(float) * (size_t)(B + drafted) * vocab);
    if (!rc && t->depth) rc = forward(m, ptr, B + drafted, feeds, counts, 0, depth_logits, NULL, err);
    if (!rc && t->depth) memcpy(logits, depth_logits, sizeof(float) * (size_t)B * vocab);
    free(depth_logits);
    // the ids each sequence draws: the prompt's (or none), then one a generation step without a draft
    int want = (t->n_prompt ? 1 : 0) + t->n_gen;
    for (int i = 0; i < B && !rc; i++) {   // the prompt, or the first token: greedy after the depth, or a fixed one
        first[i] = t->depth ? argmax(logits + (size_t)i * vocab, vocab) : 1 % vocab;
        gen_begin(&gs[i], ptr[i], &greedy, t->n_prompt ? ids : &first[i], t->n_prompt ? t->n_prompt : 1, draft ? want : -1);
        gs[i].ignore_eos = 1;
        if (draft) gs[i].draft = &drafts[i];
        g[i] = &gs[i];
    }
    double t0 = rp_now_s();
    *n_steps = 0;
    if (!rc && t->n_prompt && generate_step(m, g, B, NULL, err) < 0) rc = -1;
    for (int k = 0; k < t->n_gen && !rc; k++) {
        int running = 0;
        for (int i = 0; i < B && !rc; i++) {
            running += gs[i].state == GEN_RUNNING;
            if (gs[i].state != GEN_RUNNING && !(draft && gs[i].state == GEN_LENGTH))   // (a draft's run ends at its ids)
                rc = rp_fail(err, "sequence %d stopped after %d tokens: %s", i, gs[i].n_generated,
                             gs[i].state == GEN_NOT_FINITE ? "its logits are not finite" : "its context is full");
        }
        if (!running) break;
        double g0 = rp_now_s();
        if (!rc && generate_step(m, g, B, NULL, err) < 0) rc = -1;
        if (steps) steps[k] = rp_now_s() - g0;
        *n_steps = k + 1;
    }
    *seconds = rp_now_s() - t0;
    for (int i = 0; i < drafted; i++) {
        spec[0] += drafts[i].steps, spec[1] += drafts[i].proposed, spec[2] += drafts[i].accepted;
        spec_draft_free(&drafts[i], m);
    }
    free(drafts);
    for (int i = 0; i < made; i++) sequence_free(&seqs[i], m);
    sampler_free(&greedy);
    free(seqs), free(ptr), free(feeds), free(counts), free(ids), free(first), free(logits), free(gs), free(g);
    return rc;
}

// --- statistics and output ------------------------------------------------------------------------------------------

static void test_name(const bench_test *t, char *buf, size_t cap) {
    int n = 0;
    if (t->n_prompt && t->n_gen) n = snprintf(buf, cap, "pp%d+tg%d", t->n_prompt, t->n_gen);
    else if (t->n_prompt) n = snprintf(buf, cap, "pp%d", t->n_prompt);
    else n = snprintf(buf, cap, "tg%d", t->n_gen);
    if (t->depth && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - n, " @ d%d", t->depth);
}

typedef struct {
    double avg_ns, stddev_ns, avg_ts, stddev_ts, p50, p90, p99;   // percentiles of generation steps, ms
    double *ts;
} row_stats;

static void stats_of(const bench_row *r, row_stats *st) {
    int n = r->n_samples;
    double tokens = (double)r->t.seqs * (r->t.n_prompt + r->t.n_gen);
    st->ts = rp_malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *ns = rp_malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) ns[i] = r->samples_s[i] * 1e9, st->ts[i] = tokens / r->samples_s[i];
    st->avg_ns = stats_mean(ns, n), st->stddev_ns = stats_stddev(ns, n, 1);
    st->avg_ts = stats_mean(st->ts, n), st->stddev_ts = stats_stddev(st->ts, n, 1);
    free(ns);
    double *sorted = rp_malloc(sizeof(double) * (size_t)(r->n_steps ? r->n_steps : 1));
    memcpy(sorted, r->steps_s, sizeof(double) * (size_t)r->n_steps);
    stats_sort(sorted, r->n_steps);
    st->p50 = stats_percentile(sorted, r->n_steps, 50) * 1e3;
    st->p90 = stats_percentile(sorted, r->n_steps, 90) * 1e3;
    st->p99 = stats_percentile(sorted, r->n_steps, 99) * 1e3;
    free(sorted);
}

typedef struct {
    const char *model, *backend;
    int tp, threads, n_layers;
    double bandwidth, peak_flops;   // measured (0: not measured)
    const char *bandwidth_source, *peak_source;
} bench_env;

static void print_row(const bench_opts *o, const bench_env *env, const bench_row *rows, int i, int first) {
    const bench_row *r = &rows[i];
    // a drafted row: its schedule's label names the draft; the acceptance (proposals kept) and the ids a
    // speculative step gives (those kept and the target's own)
    char label[256];
    snprintf(label, sizeof label, r->draft ? "%s + draft %s" : "%s", r->schedule, r->draft ? o->draft : "");
    double acceptance = r->spec[1] ? (double)r->spec[2] / r->spec[1] : 0;
    double per_step = r->spec[0] ? (double)(r->spec[2] + r->spec[0]) / r->spec[0] : 0;
    row_stats st, base;
    stats_of(r, &st);
    double vs_base = 0;
    if (r->base_row >= 0) {
        stats_of(&rows[r->base_row], &base);
        vs_base = base.avg_ns > 0 ? st.avg_ns / base.avg_ns : 0;
        free(base.ts);
    }
    char test[64];
    test_name(&r->t, test, sizeof test);
    double pct = r->roofline_ts > 0 && r->n_samples ? 100 * st.avg_ts / r->roofline_ts : 0;
    int gen = r->n_steps > 0;
    const char *fmt = o->format;
    if (!strcmp(fmt, "md")) {
        if (first) {
            printf("| schedule | visits | backend | tp | seqs | test | t/s | time vs base | roofline t/s | %% roofline | "
                   "p50 ms | p90 ms | p99 ms |%s\n", o->draft ? " draft accepted | ids a step |" : "");
            printf("| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s\n",
                   o->draft ? " ---: | ---: |" : "");
        }
        char ts[64] = "-", roof[32] = "-", pc[32] = "-", vb[32] = "-", p[3][32] = {"-", "-", "-"};
        if (r->n_samples) snprintf(ts, sizeof ts, "%.2f ± %.2f", st.avg_ts, st.stddev_ts);
        if (r->roofline_ts > 0) snprintf(roof, sizeof roof, "%.2f", r->roofline_ts);
        if (pct > 0) snprintf(pc, sizeof pc, "%.1f%%", pct);
        if (vs_base > 0) snprintf(vb, sizeof vb, "%.3fx", vs_base);
        if (gen && r->n_samples) {
            snprintf(p[0], sizeof p[0], "%.3f", st.p50);
            snprintf(p[1], sizeof p[1], "%.3f", st.p90);
            snprintf(p[2], sizeof p[2], "%.3f", st.p99);
        }
        printf("| %s | %d | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |", label, r->visits, env->backend,
               env->tp, r->t.seqs, test, ts, vb, roof, pc, p[0], p[1], p[2]);
        if (o->draft && r->draft) printf(" %.1f%% | %.2f |", 100 * acceptance, per_step);
        else if (o->draft) printf(" - | - |");
        printf("\n");
    } else if (!strcmp(fmt, "csv")) {
        if (first)
            printf("model,schedule,visits,n_layers,backend,tp,n_threads,n_seqs,n_prompt,n_gen,n_depth,test,avg_ns,stddev_ns,"
                   "avg_ts,stddev_ts,time_vs_base,roofline_ts,roofline_pct,bandwidth_gbs,peak_gflops,p50_ms,p90_ms,p99_ms,"
                   "samples_ns,samples_ts,draft,draft_steps,draft_proposed,draft_accepted,draft_acceptance,draft_ids_per_step\n");
        char p[3][32] = {"", "", ""};   // a prompt test has no generation steps: empty, never a 0 that reads as a time
        if (gen && r->n_samples)
            snprintf(p[0], sizeof p[0], "%.6f", st.p50), snprintf(p[1], sizeof p[1], "%.6f", st.p90),
                snprintf(p[2], sizeof p[2], "%.6f", st.p99);
        printf("\"%s\",\"%s\",%d,%d,%s,%d,%d,%d,%d,%d,%d,\"%s\",%.0f,%.0f,%.6f,%.6f,%.6f,%.6f,%.3f,%.3f,%.3f,%s,%s,%s,\"",
               env->model, label, r->visits, env->n_layers, env->backend, env->tp, env->threads, r->t.seqs, r->t.n_prompt,
               r->t.n_gen, r->t.depth, test, st.avg_ns, st.stddev_ns, st.avg_ts, st.stddev_ts, vs_base, r->roofline_ts, pct,
               env->bandwidth / 1e9, env->peak_flops / 1e9, p[0], p[1], p[2]);
        for (int k = 0; k < r->n_samples; k++) printf("%s%.0f", k ? ";" : "", r->samples_s[k] * 1e9);
        printf("\",\"");
        for (int k = 0; k < r->n_samples; k++) printf("%s%.6f", k ? ";" : "", st.ts[k]);
        printf("\",\"%s\",%ld,%ld,%ld,%.6f,%.6f\n", r->draft ? o->draft : "", r->spec[0], r->spec[1], r->spec[2], acceptance,
               per_step);
    } else {   // json (an array) or jsonl (an object a line)
        int jsonl = !strcmp(fmt, "jsonl");
        char p[3][32] = {"null", "null", "null"};   // a prompt test has no generation steps
        if (gen && r->n_samples)
            snprintf(p[0], sizeof p[0], "%.6f", st.p50), snprintf(p[1], sizeof p[1], "%.6f", st.p90),
                snprintf(p[2], sizeof p[2], "%.6f", st.p99);
        if (!jsonl) printf(first ? "[\n  " : ",\n  ");
        printf("{\"model\": \"%s\", \"schedule\": \"%s\", \"visits\": %d, \"n_layers\": %d, \"backend\": \"%s\", \"tp\": %d, "
               "\"n_threads\": %d, \"n_seqs\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"test\": \"%s\", "
               "\"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"avg_ts\": %.6f, \"stddev_ts\": %.6f, \"time_vs_base\": %.6f, "
               "\"roofline_ts\": %.6f, \"roofline_pct\": %.3f, \"bandwidth_gbs\": %.3f, \"bandwidth_source\": \"%s\", "
               "\"peak_gflops\": %.3f, \"peak_source\": \"%s\", \"p50_ms\": %s, \"p90_ms\": %s, \"p99_ms\": %s, \"samples_ns\": [",
               env->model, label, r->visits, env->n_layers, env->backend, env->tp, env->threads, r->t.seqs, r->t.n_prompt,
               r->t.n_gen, r->t.depth, test, st.avg_ns, st.stddev_ns, st.avg_ts, st.stddev_ts, vs_base, r->roofline_ts, pct,
               env->bandwidth / 1e9, env->bandwidth_source, env->peak_flops / 1e9, env->peak_source, p[0], p[1], p[2]);
        for (int k = 0; k < r->n_samples; k++) printf("%s%.0f", k ? ", " : "", r->samples_s[k] * 1e9);
        printf("], \"samples_ts\": [");
        for (int k = 0; k < r->n_samples; k++) printf("%s%.6f", k ? ", " : "", st.ts[k]);
        printf("]");
        if (r->draft)
            printf(", \"draft\": \"%s\", \"draft_steps\": %ld, \"draft_proposed\": %ld, \"draft_accepted\": %ld, "
                   "\"draft_acceptance\": %.6f, \"draft_ids_per_step\": %.6f", o->draft, r->spec[0], r->spec[1], r->spec[2],
                   acceptance, per_step);
        printf("}%s", jsonl ? "\n" : "");
    }
    free(st.ts);
}

// Tokens/s at the roofline: the prompt's FLOPs over the peak, then each generation step's bytes over the bandwidth
// (every GPU of tp reading or multiplying its share).
static double roofline_ts(const model_config *c, const schedule *s, const bench_test *t, const bench_env *env, roofline_bytes rb) {
    double secs = 0;
    if (t->n_prompt) {
        if (env->peak_flops <= 0) return 0;
        secs += (double)t->seqs * t->n_prompt * roofline_prefill_flops(c, s, t->depth + t->n_prompt / 2.0) / (env->peak_flops * env->tp);
    }
    if (t->n_gen) {
        if (env->bandwidth <= 0) return 0;
        secs += t->n_gen * roofline_decode_bytes(c, s, t->seqs, t->depth + t->n_prompt + t->n_gen / 2.0, rb) /
                (env->bandwidth * env->tp);
    }
    return secs > 0 ? (double)t->seqs * (t->n_prompt + t->n_gen) / secs : 0;
}

int bench_offline(const bench_opts *o) {
    rp_err err;
    model_config cfg;
    if (config_load(&cfg, o->model_dir, &err)) return fprintf(stderr, "reprise bench: %s\n", err.msg), 1;
    // the tests, in llama-bench's order: for each depth and batch, the prompts, the generations, then both
    int n_tests = 0, cap = o->n_depths * o->n_batches * (o->n_prompts + o->n_gens + o->n_pg);
    bench_test *tests = rp_calloc((size_t)(cap ? cap : 1), sizeof *tests);
    int need_ctx = 0, most_seqs = 1;
    for (int d = 0; d < o->n_depths; d++)
        for (int b = 0; b < o->n_batches; b++) {
            for (int i = 0; i < o->n_prompts; i++) tests[n_tests++] = (bench_test){o->prompts[i], 0, o->depths[d], o->batches[b]};
            for (int i = 0; i < o->n_gens; i++) tests[n_tests++] = (bench_test){0, o->gens[i], o->depths[d], o->batches[b]};
            for (int i = 0; i < o->n_pg; i++) tests[n_tests++] = (bench_test){o->pg[i][0], o->pg[i][1], o->depths[d], o->batches[b]};
        }
    for (int i = 0; i < n_tests; i++) {
        int ctx = tests[i].depth + tests[i].n_prompt + tests[i].n_gen;
        char name[64];
        test_name(&tests[i], name, sizeof name);
        if (ctx > cfg.max_pos) {
            fprintf(stderr, "reprise bench: test %s needs %d positions, more than the model's %s %d "
                            "(smaller -p, -n or -d)\n", name, ctx, config_context_name(&cfg), cfg.max_pos);
            free(tests);
            return 1;
        }
        if (ctx > need_ctx) need_ctx = ctx;
        if (tests[i].seqs > most_seqs) most_seqs = tests[i].seqs;
    }
    schedule *scheds = rp_calloc((size_t)o->n_schedules, sizeof *scheds);
    int most_visits = 1, rc = 0;
    for (int k = 0; k < o->n_schedules && !rc; k++) {
        if (schedule_parse(&scheds[k], o->schedules[k], cfg.n_layers, &err)) {
            fprintf(stderr, "reprise bench: --schedule: %s\n", err.msg);
            rc = 1;
        } else if (scheds[k].n_visits > most_visits) most_visits = scheds[k].n_visits;
    }
    schedule draft = {0};
    if (!rc && o->draft && schedule_parse(&draft, o->draft, cfg.n_layers, &err)) {
        fprintf(stderr, "reprise bench: --draft: %s\n", err.msg);
        rc = 1;
    }
    bench_env env = {.model = o->model_dir, .tp = o->tp > 0 ? o->tp : 1, .n_layers = cfg.n_layers};
    model m = {0};
    int measure = !o->gpu, dv = draft.n_visits;
    if (!rc && measure) {   // one load for every schedule: their layers are the same weights (a draft's too)
        plan_shape shape = {.ubatch = 0, .seqs = most_seqs * (dv ? 2 : 1),
                            .logit_rows = most_seqs * (dv ? SPEC_MAX_TOKENS + 1 : 1),
                            .kv_slots = (long)(most_visits + dv) * most_seqs, .ctx = need_ctx,
                            .max_visits = most_visits > dv ? most_visits : dv, .tp = o->tp, .kv_dtype = o->kv_dtype,
                            .weights = o->weights};
        if (model_load_planned(&m, o->model_dir, o->backend, o->threads, &shape, o->allow_unused_tensors, &err)) {
            fprintf(stderr, "reprise bench: %s\n", err.msg);
            rc = 1;
        }
    }
    // bytes per element: on a GPU BF16, or FP8 projections (--weights fp8, an FP8 checkpoint); on the CPU as it holds them
    roofline_bytes rb = roofline_gpu_bytes(&cfg, weights_fp8(&cfg, o->weights));
    if (!rc && measure) {
        env.backend = m.be->name;
        env.threads = o->threads > 0 ? o->threads : omp_get_max_threads();
        const backend_entry *dev = backend_builtin_find(m.be->name);   // a device backend measures its device
        if (!strcmp(m.be->name, "cpu")) {
            rb = roofline_element_bytes(&m);
            fprintf(stderr, "reprise bench: measuring the CPU's bandwidth and its matmul's peak\n");
            env.bandwidth = roofline_cpu_bandwidth(env.threads), env.bandwidth_source = "measured: multi-threaded read of 256 MiB";
            env.peak_flops = roofline_cpu_matmul_peak(env.threads), env.peak_source = "measured: the CPU backend's matmul, best of three shapes";
        } else if (dev && dev->copy_bandwidth) {
            const char *name = dev->device_name ? dev->device_name() : "";
            int emulated = strstr(name, "emulated") != NULL;
            env.bandwidth = dev->copy_bandwidth(emulated ? (size_t)16 << 20 : (size_t)1 << 30, &err);
            env.bandwidth_source = "measured: device-to-device copy, read + write";
            const gpu_peaks *peaks = roofline_gpu(strstr(name, "H200") ? "h200" : strstr(name, "A100") ? "a100" : strstr(name, "H100") ? "h100" : "");
            if (env.bandwidth > 0 && dev->time_gemm) env.peak_flops = gpu_gemm_peak(dev, emulated, &err);
            env.peak_source = emulated ? "measured: the CUDA backend's BF16 GEMM, 64^3 under the emulation"
                                       : "measured: the CUDA backend's BF16 GEMM, best of 256^3..8192^3";
            if (env.peak_flops <= 0 && peaks) env.peak_flops = peaks->bf16_flops, env.peak_source = "datasheet: dense BF16";
            if (env.bandwidth <= 0 || env.peak_flops <= 0) fprintf(stderr, "reprise bench: measuring the GPU: %s\n", err.msg);
            fprintf(stderr, "reprise bench: %s, %.1f GB/s measured (copy), %.3g TFLOP/s (%s)", name, env.bandwidth / 1e9,
                    env.peak_flops / 1e12, env.peak_source);
            if (peaks) fprintf(stderr, "; datasheet %.2f TB/s, %.0f TFLOP/s dense BF16", peaks->bandwidth / 1e12, peaks->bf16_flops / 1e12);
            fputc('\n', stderr);
        }
    } else if (!rc) {   // --gpu: the rooflines of that GPU alone
        const gpu_peaks *peaks = roofline_gpu(o->gpu);
        env.backend = "cuda", env.bandwidth = peaks->bandwidth, env.peak_flops = peaks->bf16_flops;
        env.bandwidth_source = env.peak_source = "datasheet";
        printf("no GPU measured: the rooflines of %s%s (datasheet: %.2f TB/s, %.0f TFLOP/s dense BF16)\n\n", env.tp > 1 ? "GPUs x" : "",
               o->gpu, peaks->bandwidth / 1e12, peaks->bf16_flops / 1e12);
    }
    // the rows: each schedule's tests in order, a generation test followed by its drafted row with --draft
    int n_rows = 0, *first_row = rp_malloc(sizeof(int) * (size_t)(n_tests ? n_tests : 1));
    bench_row *rows = rp_calloc((size_t)(2 * o->n_schedules * n_tests + 1), sizeof *rows);
    for (int k = 0; k < o->n_schedules && !rc; k++)
        for (int t = 0; t < n_tests; t++)
            for (int drafted = 0; drafted < (dv && tests[t].n_gen ? 2 : 1); drafted++) {
                if (k == 0 && !drafted) first_row[t] = n_rows;
                int base = drafted ? n_rows - 1 : first_row[t];
                rows[n_rows] = (bench_row){.schedule = o->schedules[k], .visits = scheds[k].n_visits, .t = tests[t],
                                           .base_row = base, .draft = drafted ? &draft : NULL};
                n_rows++;
            }
    for (int i = 0; i < n_rows && !rc; i++) {
        bench_row *r = &rows[i];
        const schedule *sched = &scheds[0];
        for (int k = 0; k < o->n_schedules; k++)
            if (r->schedule == o->schedules[k]) sched = &scheds[k];
        r->samples_s = rp_calloc((size_t)o->reps, sizeof(double));
        r->steps_s = rp_calloc((size_t)o->reps * (r->t.n_gen ? r->t.n_gen : 1), sizeof(double));
        r->roofline_ts = roofline_ts(&cfg, sched, &r->t, &env, rb);
        if (!measure) continue;
        char name[64];
        test_name(&r->t, name, sizeof name);
        fprintf(stderr, "reprise bench: %s%s%s, %s, %d sequence%s (%d/%d)\n", r->schedule, r->draft ? ", draft " : "",
                r->draft ? o->draft : "", name, r->t.seqs, r->t.seqs == 1 ? "" : "s", i + 1, n_rows);
        for (int rep = o->warmup ? -1 : 0; rep < o->reps && !rc; rep++) {
            double secs;
            int steps;
            long spec[3] = {0, 0, 0};
            if (run_test(&m, sched, &r->t, r->draft, o->draft_tokens, &secs, rep < 0 ? NULL : r->steps_s + r->n_steps, &steps,
                         spec, &err)) {
                fprintf(stderr, "reprise bench: %s %s: %s\n", r->schedule, name, err.msg);
                rc = 1;
            } else if (rep >= 0) {
                r->samples_s[r->n_samples++] = secs;
                r->n_steps += steps;
                for (int j = 0; j < 3; j++) r->spec[j] += spec[j];
            }
        }
    }
    free(first_row);
    if (!rc && !strcmp(o->format, "md") && measure)
        printf("model %s, %s backend%s, %d threads; bandwidth %.2f GB/s (%s); peak %.1f GFLOP/s (%s)\n\n", o->model_dir, env.backend,
               env.tp > 1 ? " (tensor parallel)" : "", env.threads, env.bandwidth / 1e9, env.bandwidth_source, env.peak_flops / 1e9,
               env.peak_source);
    for (int i = 0; i < n_rows && !rc; i++) print_row(o, &env, rows, i, i == 0);
    if (!rc && !strcmp(o->format, "json")) printf("\n]\n");
    if (!rc && !strcmp(o->format, "md"))
        printf("\nt/s: tokens per second of all sequences, mean ± standard deviation of %d runs; time vs base: this schedule's "
               "time over the first schedule's for the same test (visits / layers: the work it adds); roofline: decode "
               "bytes (weights of every visit, KV of every visit) over the bandwidth, prompt FLOPs over the peak;\np50/p90/p99: generation steps' times.\n", o->reps);
    if (!rc && !strcmp(o->format, "md") && o->draft)
        printf("+ draft S: the row above run again with S drafting (self-speculative decoding; greedy, the same ids): time "
               "vs base is against that row; draft accepted: proposals kept; ids a step: ids a speculative step drew.\n");
    for (int i = 0; i < n_rows; i++) free(rows[i].samples_s), free(rows[i].steps_s);
    for (int k = 0; k < o->n_schedules; k++) schedule_free(&scheds[k]);
    if (dv) schedule_free(&draft);
    free(rows), free(scheds), free(tests);
    if (m.be) model_free(&m);
    return rc;
}
