// GPU benchmark: prefill tokens/s, and decode tokens/s at batch 1, 4 and 16, for base and a repeated schedule,
// each beside its roofline - decode: the bytes of weights and KV a step must read over the memory bandwidth;
// prefill: the matmul FLOPs over the BF16 tensor-core peak - and the percentage reached. With --tp N the model is
// split over N GPUs: the rooflines are N GPUs' (each reads 1/N of the bytes), and the all-reduce's time per step
// and its share of the step are printed. Without a GPU it prints the rooflines for the GPU named by --gpu and says
// that nothing was measured. Prints, never asserts.
// usage: bench_gpu [-m DIR] [--gpu h100|h200|a100] [--schedule S] [--prompt N] [--decode N] [--tp N] [--gemm 0|1]
//                  [--profile 0|1] [--weights stored|fp8]
// Built on the emulation's perf build (bench_gpu_emu: no GPU), it measures nothing and predicts instead: for each
// shape -m names (bench, llama3-8b, qwen2-72b-tp2, all), one decode step at batch 1 after --prompt positions is
// counted (one CTA in 16, or REPRISE_EMU_PERF_SAMPLE) on 1 and 2 layers, and tools/bench/gpu_model.c turns each
// launch into a time on an H100 and an H200: a layer visit's kernels and the whole step's tok/s beside its roofline.
//   --counters FILE  append the counted steps' launch lines there (the tests read them)
//   --prefill 1      with -m bench, also the prefill of --prompt tokens (% of the tensor cores' rate per kernel)
//   --batch N        the decode step of N sequences (default 1), each after --prompt positions
//   --weights fp8    the projections in FP8 (W8A16, quantized at load), the roofline at a byte a weight (on a GPU
//                    too: run it with and without to compare)
//   --gemm 1         the GEMM alone instead of the step, at each shape's weights: every variant, decode rows (1, 16,
//                    64) against the bandwidth and, at the bench model's shapes, 512 rows against the tensor cores
//   --gemm-rows LIST the GEMM table's row counts instead (e.g. 1,16)
//   --gemm-variant V the GEMM table's variant V alone
//   --measured CSV   with -m bench: ncu's per-launch times of bench_gpu's decode steps on a device (`ncu --csv
//                    --metrics gpu__time_duration.sum`, tests/run_gpu.sh) beside the predictions for the GPU --gpu
//                    names (h200 by default), and the model's constants refitted to them (tools/bench/gpu_fit.c)
//   --gemm 0     skip the table of the GEMM alone: at this model's weights and one GPU's share of Llama-3-8B's and
//                Qwen2-72B's (--tp 2), at 1, 16, 64 and 1024 rows (and --prompt's here), each variant beside cuBLAS
//                (bench/gemm_yardstick.cu), and the BF16 peak cuBLAS reached in the run
//   --profile 1  profiler collection (cudaProfilerStart) only around the timed decode steps of base at batch 1: run
//                under `ncu --profile-from-start off` for a per-kernel breakdown of a decode step
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_usage.h"
#include "bench/random_model.h"
#include "kernels/shapes.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/tensor_parallel.h"
#ifdef REPRISE_REAL_CUDA
#include "engine/backends/cuda/backend_cuda.h"
// bench/gemm_yardstick.cu: cuBLAS at a shape, seconds (0 with a message)
double bench_cublas_gemm_seconds(int R, int N, int K, char *err, size_t cap);
#endif
#include "tools/bench/roofline.h"
#include "loader/json_file.h"
#include "loader/weights.h"
#include "tools/common/stats.h"

static weights_format bench_weights;   // --weights stored|fp8: the projections' weights of the model run

// The model shapes the GEMM tables and the predictions are made at (-m under the emulation): bench_gpu's own model,
// and one GPU's share of two real ones.
static const struct model_shape {
    const char *name, *title;
    random_model_shape s;
    int tp;
} model_shapes[] = {
    {"bench", "bench_gpu's random 0.79B Llama (16 layers)", {2048, 5632, 16, 16, 4, 32000, 4096}, 1},
    {"llama3-8b", "Llama-3-8B's shapes (32 layers, dim 4096, GQA 32:8, vocabulary 128256)", {4096, 14336, 32, 32, 8, 128256, 8192}, 1},
    {"qwen2-72b-tp2", "Qwen2-72B's shapes over 2 GPUs (--tp 2: 80 layers, dim 8192, GQA 64:8, hidden 29568, vocabulary "
                      "152064; one GPU's share, all-reduces not counted)", {8192, 29568, 80, 64, 8, 152064, 8192}, 2},
};
#define N_MODEL_SHAPES (int)(sizeof model_shapes / sizeof *model_shapes)

#if defined(REPRISE_REAL_CUDA) || defined(REPRISE_EMU_PERF)
// The config of a random model's shape (what random_model_write writes).
static model_config config_of(random_model_shape s) {
    model_config cfg = {0};
    cfg.dim = s.dim, cfg.hidden_dim = s.hidden, cfg.n_layers = s.layers, cfg.n_heads = s.heads, cfg.n_kv_heads = s.kv_heads;
    cfg.vocab_size = s.vocab, cfg.head_dim = s.dim / s.heads, cfg.tied_embeddings = 1;
    return cfg;
}

// The GEMMs rank 0 of tp runs (the largest share).
static void gemms_of(const model_config *c, int tp, tp_gemm out[TP_GEMMS]) {
    tp_shard sh;
    tp_shard_of(c, tp, 0, &sh);
    tp_gemms_of(c, &sh, out);
}

// Whether a GEMM table shows variant v at R rows: not the WMMA kernel's other variants (1, 2: the same kernel, no
// faster), nor K cut by the row count (4) up to GEMM_SPLIT_ROWS rows, nor mma.sync alone (5) below GEMM_WGMMA_ROWS:
// there they are variant 3's launch.
static int gemm_variant_shown(int v, int R) {
    return v != 1 && v != 2 && !(v == 4 && R <= GEMM_SPLIT_ROWS) && !(v == 5 && R < GEMM_WGMMA_ROWS);
}
#endif

#ifdef REPRISE_EMU_PERF
#include <cuda_runtime_api.h>
#include <unistd.h>

static const char *counters_path;   // --counters FILE
static int prefill_too;             // --prefill 1
static int pred_batch = 1;          // --batch N: the counted decode step's sequences
static const char *measured_path;   // --measured CSV
static const char *gemm_rows;       // --gemm-rows LIST: the GEMM table's row counts (default 1,16,64 and 512)
static int gemm_variant = -1;       // --gemm-variant V: only that variant in the GEMM table (-1: every one)

#include "engine/backends/cuda/backend_cuda.h"
#include "kernels/emu/emu_control.h"
#include "tools/bench/gpu_fit.h"
#include "tools/bench/gpu_model.h"

// The emulation's launch counters around some work: counting_begin opens a temporary file for them (prof: a
// mkstemp template); counting_end closes it, reads its counters lines into *out, appends them to --counters' file
// when given, and removes it.
static int counting_begin(char *prof, rp_err *err) {
    int fd = mkstemp(prof);
    if (fd < 0) return rp_fail(err, "cannot make a temporary file for the launch counters");
    close(fd);
    emu_profile_open(prof);
    return 0;
}
static int counting_end(char *prof, launch_list *out, rp_err *err) {
    emu_profile_open(NULL);
    int rc = launch_list_read(out, prof, err);
    FILE *in = counters_path && !rc ? fopen(prof, "r") : NULL, *to = in ? fopen(counters_path, "a") : NULL;
    for (int ch; in && to && (ch = fgetc(in)) != EOF;) fputc(ch, to);
    if (in) fclose(in);
    if (to) fclose(to);
    unlink(prof);
    return rc;
}

// One launch's predicted time on g, with ptxas's figures for its kernel where the report has them.
static launch_prediction predict_launch(const gpu_model *g, const kernel_resource_table *res, const launch_counters *c) {
    return gpu_predict(g, sm_limits_hopper(), res ? kernel_resources_find(res, c->name) : NULL, c);
}

// Under the perf build (no GPU: the CUDA backend runs under the emulation with its kernels' accesses counted): one
// step through generate_step as `reprise generate` runs it, on a random model of `layers` layers of shape s: a decode
// step of `batch` sequences, `ctx` positions each already in the KV cache, or (prompt > 0) the prefill of a prompt of
// that many tokens; its launches' counters into *out.
static int counted_step(random_model_shape s, int layers, int batch, int ctx, int prompt, int tp, launch_list *out,
                        rp_err *err) {
    char dir[] = "/tmp/reprise-bench-predict-XXXXXX", prof[] = "/tmp/reprise-bench-counters-XXXXXX";
    s.layers = layers;
    if (!mkdtemp(dir) || random_model_write(dir, s, 1)) return rp_fail(err, "cannot write a random model");
    model m;
    plan_shape plan = {.seqs = batch, .ctx = ctx + 8, .tp = tp, .weights = bench_weights};
    int rc = model_load_planned(&m, dir, "cuda", 0, &plan, 0, err);
    if (rc) {
        random_model_remove(dir);
        return -1;
    }
    schedule base;
    schedule_base(&base, layers);
    sequence *seqs = calloc((size_t)batch, sizeof *seqs);
    gen_seq *gs = calloc((size_t)batch, sizeof *gs), **g = malloc(sizeof *g * batch);
    int *tok = malloc(sizeof(int) * (batch > prompt ? batch : prompt));
    sampler greedy;
    sampler_params gp = {.temp = 0};
    sampler_init(&greedy, &gp, m.cfg.vocab_size);
    for (int i = 0; i < batch && !rc; i++) {
        rc = sequence_init(&seqs[i], &m, &base, ctx + 8, err);
        // decode as if after a prompt of ctx positions: their keys and values zeros, not whatever the memory held (a
        // NaN there would end the sequence before the step counted)
        size_t row = m.be->kv_bytes_per_token(m.be) / 2;
        for (int v = 0; v < seqs[i].cache.n_slots && !rc; v++)
            cudaMemset(seqs[i].cache.slots[v].k, 0, row * (ctx + 8)), cudaMemset(seqs[i].cache.slots[v].v, 0, row * (ctx + 8));
        g[i] = &gs[i];
    }
    for (int i = 0; i < (batch > prompt ? batch : prompt); i++) tok[i] = (i * 7919 + 1) % m.cfg.vocab_size;
    int steps = prompt ? 2 : 3, counting = 0;   // decode: two to warm up (graph capture), the third counted; prefill: one of each
    for (int step = 0; step < steps && !rc; step++) {
        for (int i = 0; i < batch; i++) {   // each step the same: one token after ctx positions, or the prompt (sampled
            seqs[i].cache.n_past = prompt ? 0 : ctx;   // CTAs leave the logits unwritten: no draw is trusted or fed back)
            gen_begin(&gs[i], &seqs[i], &greedy, prompt ? tok : &tok[i], prompt ? prompt : 1, -1);
            gs[i].ignore_eos = 1;
        }
        cudaDeviceSynchronize();   // a step's work may still run when generate_step returns: count exactly this one's
        if (step == steps - 1) rc = counting_begin(prof, err), counting = !rc;
        if (!rc) rc = generate_step(&m, g, batch, NULL, err) < 0 ? -1 : 0;
        cudaDeviceSynchronize();
    }
    if (counting) {   // the profile closed however the step went; its counters kept only when it went well
        rp_err end_err;
        int end = counting_end(prof, out, &end_err);
        if (!rc && end) rc = -1, *err = end_err;
        else if (rc && !end) launch_list_free(out);
    }
    for (int i = 0; i < batch; i++) sequence_free(&seqs[i], &m);
    sampler_free(&greedy);
    free(seqs), free(gs), free(g), free(tok);
    schedule_free(&base);
    model_free(&m);
    random_model_remove(dir);
    return rc;
}

typedef struct {
    char name[160];
    double launches;
    double seconds, dram_bytes, flops;
    const char *bound;
} kernel_row;

// Adds each launch's prediction to its kernel's row (sign -1 takes it away: the 2-layer step minus the 1-layer one is
// one layer visit; with tp GPUs, each runs 1/tp of the launches, the same ones: a GPU's share is sign / tp).
static int add_rows(kernel_row *rows, int n, const launch_list *l, const gpu_model *g, const kernel_resource_table *res, double sign) {
    for (int i = 0; i < l->n; i++) {
        const launch_counters *c = &l->l[i];
        launch_prediction p = predict_launch(g, res, c);
        int r = 0;
        while (r < n && strcmp(rows[r].name, c->name)) r++;
        if (r == n) snprintf(rows[n++].name, sizeof rows[r].name, "%s", c->name);
        rows[r].launches += sign, rows[r].seconds += sign * p.seconds;   // (launches: a count, whole per GPU)
        rows[r].dram_bytes += sign * p.dram_bytes, rows[r].flops += sign * p.flops, rows[r].bound = p.bound;
    }
    return n;
}

// Predicted tables for one shape: a layer visit's kernels (time, DRAM bytes, % of bandwidth or tensor peak) on each
// GPU, and the decode step of a whole model of that shape (every other kernel once, a layer's n_layers times).
static int predict_shape(const char *title, random_model_shape s, int tp, int batch, int ctx, int prompt,
                         const kernel_resource_table *res, launch_list *keep) {
    launch_list one, two;
    rp_err err;
    fprintf(stderr, "bench_gpu: counting %s of %s (1 and 2 layers, under the emulation)\n", prompt ? "a prefill" : "a decode step", title);
    if (counted_step(s, 1, batch, ctx, prompt, tp, &one, &err) || counted_step(s, 2, batch, ctx, prompt, tp, &two, &err))
        return fprintf(stderr, "bench_gpu: %s: %s\n", title, err.msg), -1;
    fprintf(stderr, "bench_gpu: %d launches with 1 layer, %d with 2\n", one.n, two.n);
    const char *gpus[2] = {"h100", "h200"};
    if (prompt)
        printf("\nPREDICTED (the emulation's counters and the speed model; nothing measured): %s, prefill of %d tokens\n", title, prompt);
    else
        printf("\nPREDICTED (the emulation's counters and the speed model; nothing measured): %s, decode at batch %d, %d positions "
               "in the KV cache%s\n", title, batch, ctx, bench_weights == WEIGHTS_FP8 ? ", FP8 weights (W8A16)" : "");
    const char *share = prompt ? "% tensor" : "% bw";   // of the tensor cores' rate, or of the bandwidth
    printf("%-30s %8s %10s | %9s %8s %-8s | %9s %8s %-8s\n", "kernel (one layer visit)", "launches", "DRAM KB", "h100 us",
           share, "bound", "h200 us", share, "bound");
    kernel_row rows[2][64];
    int n[2] = {0, 0};
    double visit[2] = {0}, rest[2] = {0};
    for (int gi = 0; gi < 2; gi++) {
        const gpu_model *g = gpu_model_named(gpus[gi]);
        memset(rows[gi], 0, sizeof rows[gi]);
        n[gi] = add_rows(rows[gi], 0, &two, g, res, 1.0 / tp);
        n[gi] = add_rows(rows[gi], n[gi], &one, g, res, -1.0 / tp);
        kernel_row fixed[64];
        memset(fixed, 0, sizeof fixed);
        int nf = add_rows(fixed, 0, &one, g, res, 1.0 / tp);
        for (int r = 0; r < n[gi]; r++)   // the kernels a visit adds (a per-step kernel's time may differ between
            if (rows[gi][r].launches >= 0.5) visit[gi] += rows[gi][r].seconds;   // the runs with the data: not a visit's)
        for (int r = 0; r < nf; r++) rest[gi] += fixed[r].seconds;
        rest[gi] -= visit[gi];   // the 1-layer step holds one visit
    }
    for (int r = 0; r < n[0]; r++) {
        if (rows[0][r].launches < 0.5) continue;
        const kernel_row *a = &rows[0][r], *b = &rows[1][r];
        const gpu_model *ga = gpu_model_named("h100"), *gb = gpu_model_named("h200");
        double bw_a = prompt ? a->flops / a->seconds / ga->tensor_flops : a->dram_bytes / a->seconds / ga->dram_bandwidth;
        double bw_b = prompt ? b->flops / b->seconds / gb->tensor_flops : b->dram_bytes / b->seconds / gb->dram_bandwidth;
        printf("%-30s %8.0f %10.1f | %9.2f %7.1f%% %-8s | %9.2f %7.1f%% %-8s\n", a->name, a->launches, a->dram_bytes / 1024,
               a->seconds * 1e6, 100 * bw_a, a->bound, b->seconds * 1e6, 100 * bw_b, b->bound);
    }
    for (int gi = 0; gi < 2; gi++) {
        double step = rest[gi] + s.layers * visit[gi];
        const gpu_model *g = gpu_model_named(gpus[gi]);
        model_config cfg = config_of(s);
        schedule base;
        schedule_base(&base, s.layers);
        double tokens = prompt ? prompt : batch;
        double roof = prompt ? roofline_gpu(gpus[gi])->bf16_flops * tp / roofline_prefill_flops(&cfg, &base, prompt / 2.0)
                             : batch / (roofline_decode_bytes(&cfg, &base, batch, ctx, roofline_gpu_bytes(&cfg, bench_weights == WEIGHTS_FP8)) /
                                        tp / g->dram_bandwidth);
        schedule_free(&base);
        char at[64];
        if (prompt) snprintf(at, sizeof at, "%.0f TFLOP/s dense BF16, datasheet", roofline_gpu(gpus[gi])->bf16_flops / 1e12);
        else snprintf(at, sizeof at, "%.2f TB/s", g->dram_bandwidth / 1e12);
        printf("%s: a layer visit %.1f us, the rest of the step %.1f us; a step of %d layers %.3f ms: %.0f tok/s, %.1f%% of "
               "the %.0f tok/s roofline at %s\n", gpus[gi], visit[gi] * 1e6, rest[gi] * 1e6, s.layers, step * 1e3,
               tokens / step, 100 * tokens / step / roof, roof, at);
    }
    launch_list_free(&one);
    if (keep) *keep = two;   // the 2-layer step's launches: every kernel and shape of a step
    else launch_list_free(&two);
    return 0;
}

// --gemm 1: the GEMM alone at a shape's weights (one GPU's share under --tp 2), each variant beside the others:
// counted under the emulation, predicted per GPU; decode rows against the bandwidth, prefill rows against the
// tensor cores. Rows of 512 only at the bench model's shapes (the emulation's minutes grow with R x N x K).
static int predict_gemms(const char *title, random_model_shape s, int tp, const kernel_resource_table *res) {
    model_config cfg = config_of(s);
    tp_gemm w[TP_GEMMS];
    gemms_of(&cfg, tp, w);
    int rows[8] = {1, 16, 64, 512}, n_rows = s.dim <= 2048 ? 4 : 3;
    if (gemm_rows) {
        n_rows = 0;
        for (const char *p = gemm_rows; *p && n_rows < 8; p += strcspn(p, ","), p += *p == ',') {
            char *end;
            long r = strtol(p, &end, 10);
            if (end == p || r < 1 || r > 4096 || (*end && *end != ','))
                return fprintf(stderr, "bench_gpu: --gemm-rows %s: row counts from 1 to 4096, comma-separated\n", gemm_rows), -1;
            rows[n_rows++] = (int)r;
        }
    }
    printf("\nPREDICTED (the emulation's counters and the speed model; nothing measured): the GEMM alone, %s\n", title);
    for (int v = 0; backend_cuda_gemm_variant(v); v++) printf("variant %d: %s\n", v, backend_cuda_gemm_variant(v));
    rp_err perr;
    const char *prefill = backend_cuda_gemm_prefill(&perr);
    if (!prefill) return fprintf(stderr, "bench_gpu: %s\n", perr.msg), -1;
    printf("at prefill rows the emulated GPU runs: %s\n", prefill);
    printf("(/SM: CTAs resident on an SM at once; in flight: a warp's requests in flight at once, and the KB in flight on\n"
           "each SM; of the first launch)\n");
    printf("%-8s %5s %6s %6s %7s %5s %3s %9s | %9s %9s %-8s | %9s %9s %-8s\n", "gemm", "R", "N", "K", "variant", "CTAs",
           "/SM", "in flight", "h100 us", "% roof", "bound", "h200 us", "% roof", "bound");
    for (int i = 0; i < TP_GEMMS; i++)
        for (int ri = 0; ri < n_rows; ri++)
            for (int v = 0; backend_cuda_gemm_variant(v); v++) {
                if (!gemm_variant_shown(v, rows[ri]) || (gemm_variant >= 0 && v != gemm_variant)) continue;
                int R = rows[ri], N = w[i].n, K = w[i].k;
                char prof[] = "/tmp/reprise-bench-gemm-XXXXXX";
                rp_err err, end_err;
                launch_list l;
                if (counting_begin(prof, &err)) return fprintf(stderr, "bench_gpu: %s\n", err.msg), -1;
                int rc = backend_cuda_run_gemm(R, N, K, v, &err), end = counting_end(prof, &l, &end_err);
                if (!rc && end) rc = -1, err = end_err;
                else if (rc && !end) launch_list_free(&l);
                if (rc) return fprintf(stderr, "bench_gpu: %s\n", err.msg), -1;
                launch_prediction first = {0};
                if (l.n) first = predict_launch(gpu_model_named("h100"), res, &l.l[0]);
                printf("%-8s %5d %6d %6d %7d %5ld %3d %3.0f %4.0fK |", w[i].name, R, N, K, v, l.n ? l.l[0].ctas : 0L,
                       first.occ.ctas_per_sm, first.in_flight, first.in_flight_sm_bytes / 1024);
                for (int gi = 0; gi < 2; gi++) {
                    const gpu_model *g = gpu_model_named(gi ? "h200" : "h100");
                    double sec = 0, bytes = backend_cuda_gemm_variant_weight_bytes(v, N, K) + 2.0 * R * K + 4.0 * R * N;
                    double flops = 2.0 * R * N * K;
                    const char *bound = "-";
                    for (int j = 0; j < l.n; j++) {
                        launch_prediction p = predict_launch(g, res, &l.l[j]);
                        sec += p.seconds, bound = p.bound;
                    }
                    double roof = R <= 64 ? bytes / g->dram_bandwidth : fmax(bytes / g->dram_bandwidth, flops / g->tensor_flops);
                    printf(" %9.2f %8.1f%% %-8s |", sec * 1e6, 100 * roof / sec, bound);
                }
                printf("\n");
                launch_list_free(&l);
            }
    return 0;
}

// --measured: the device's kernel times beside the predictions for the same kernels and shapes, and a refit.
static int fit_to_measured(const launch_list *counted, const kernel_resource_table *res, const char *gpu) {
    const gpu_model *g = gpu_model_named(gpu ? gpu : "h200");
    if (!g) return fprintf(stderr, "bench_gpu: --gpu %s: the speed model knows h100 and h200\n", gpu), 2;
    measured_list m;
    rp_err err;
    if (measured_list_read_ncu(&m, measured_path, &err)) return fprintf(stderr, "bench_gpu: %s\n", err.msg), 1;
    fit_set set;
    fit_set_match(&set, &m, counted, res);
    int rc = 0;
    if (!set.n) {
        fprintf(stderr, "bench_gpu: %s: no measured kernel matches a counted launch (kernel, CTAs, threads)\n", measured_path);
        rc = 1;
    } else {
        gpu_model fitted = gpu_model_fit(&set, g);
        printf("\nMEASURED (%s) beside PREDICTED (%s's constants, then refitted to these times): the decode step's kernels, "
               "mean time a launch\n", measured_path, g->name);
        fit_report(stdout, &set, g, &fitted);
    }
    fit_set_free(&set);
    measured_list_free(&m);
    return rc;
}
#endif

// Tokens/s at the roofline of tp GPUs, each reading (or multiplying) its 1/tp of the step (BF16 weights and KV, or
// FP8 projections under --weights fp8).
static void roofline(const model_config *c, const schedule *s, int batch, int ctx, int tp, double bw, double flops,
                     double *decode_tps, double *prefill_tps) {
    *decode_tps = batch / (roofline_decode_bytes(c, s, batch, ctx, roofline_gpu_bytes(c, bench_weights == WEIGHTS_FP8)) / tp / bw);
    *prefill_tps = flops * tp / roofline_prefill_flops(c, s, ctx / 2.0);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *gpu = NULL, *sched_text = NULL;
    int n_prompt = 512, n_decode = 32, profile = 0, tp = 1;
    int gemm_table = -1;   // --gemm; not given: on with a GPU, off under the emulation (minutes of it)
    static const char usage[] = "usage: bench_gpu [-m DIR] [--gpu h100|h200|a100] [--schedule S] [--prompt N] [--decode N] "
                                "[--tp N] [--gemm 0|1] [--profile 0|1] [--weights stored|fp8]\n"
                                "bench_gpu_emu (predictions, no GPU) also: [--batch N] [--prefill 0|1] [--measured FILE] "
                                "[--gemm-rows N,..] [--gemm-variant V]\n";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return bench_usage(argv[i], usage);
        if (!strcmp(argv[i], "-m")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--gpu")) gpu = argv[i + 1];
        else if (!strcmp(argv[i], "--schedule")) sched_text = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) n_decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gemm")) gemm_table = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tp")) tp = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--profile")) profile = atoi(argv[i + 1]);
#ifdef REPRISE_EMU_PERF
        else if (!strcmp(argv[i], "--counters")) counters_path = argv[i + 1];
        else if (!strcmp(argv[i], "--prefill")) prefill_too = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) pred_batch = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
        else if (!strcmp(argv[i], "--measured")) measured_path = argv[i + 1];
        else if (!strcmp(argv[i], "--gemm-rows")) gemm_rows = argv[i + 1];
        else if (!strcmp(argv[i], "--gemm-variant")) gemm_variant = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--weights")) {
            if (weights_format_parse(argv[i + 1], &bench_weights))
                return fprintf(stderr, "bench_gpu: --weights %s: stored or fp8\n", argv[i + 1]), 2;
        }
#endif
        else
            return bench_usage(argv[i], usage);
    }
    char tmpl[] = "/tmp/reprise-bench-gpu-XXXXXX";
    int own = !dir;
    random_model_shape shape = model_shapes[0].s;   // 0.79B parameters (45.1M a layer, 65.5M tied embeddings)
#ifdef REPRISE_EMU_PERF
    // no GPU: predictions from the emulation's counters, for this model and for a layer visit at real models' shapes
    (void)profile, (void)tp, (void)sched_text, (void)n_decode, (void)own, (void)tmpl;
    const char *sample = getenv("REPRISE_EMU_PERF_SAMPLE");
    emu_set_perf_sample(sample ? strtoull(sample, NULL, 10) : 16);   // one CTA in 16 by default: minutes, not hours
    kernel_resource_table res;
    rp_err rerr;
    int have_res = kernel_resources_load(&res, KERNEL_RESOURCES_PATH, &rerr) == 0;
    if (!have_res) fprintf(stderr, "bench_gpu: %s; occupancy assumes 32 registers a thread\n", rerr.msg);
    const char *which = dir ? dir : "bench";   // -m names a shape here: bench, llama3-8b, qwen2-72b-tp2, all
    const struct model_shape *shapes = model_shapes;
    int rc = 0, any = 0;
    if (measured_path && strcmp(which, "bench"))
        return fprintf(stderr, "bench_gpu: --measured: with -m bench (the model bench_gpu measures on a device)\n"), 2;
    launch_list bench_step = {0};
    for (int i = 0; i < N_MODEL_SHAPES && !rc; i++)
        if (!strcmp(which, "all") || !strcmp(which, shapes[i].name))
            any = 1, rc = gemm_table > 0 ? predict_gemms(shapes[i].title, shapes[i].s, shapes[i].tp, have_res ? &res : NULL)
                                       : predict_shape(shapes[i].title, shapes[i].s, shapes[i].tp, pred_batch, n_prompt, 0,
                                                       have_res ? &res : NULL, i == 0 && measured_path ? &bench_step : NULL);
    if (!rc && measured_path) rc = fit_to_measured(&bench_step, have_res ? &res : NULL, gpu);
    launch_list_free(&bench_step);
    if (!rc && !strcmp(which, "bench") && prefill_too)   // the prefill of --prompt tokens (the bench model only: minutes)
        rc = predict_shape(shapes[0].title, shapes[0].s, 1, 1, n_prompt, n_prompt, have_res ? &res : NULL, NULL);
    if (have_res) kernel_resources_free(&res);
    if (!any) return fprintf(stderr, "bench_gpu: -m %s: under the emulation, bench, llama3-8b, qwen2-72b-tp2 or all\n", which), 2;
    return rc ? 1 : 0;
#endif
    if (own) {
        dir = mkdtemp(tmpl);
#ifdef REPRISE_REAL_CUDA
        int weights = 1;   // a GPU build: the model will run
#else
        int weights = 0;   // no CUDA backend here: the rooflines need only the config
#endif
        if (weights) fprintf(stderr, "writing a 0.79B-parameter random model to %s\n", dir);
        if (!dir || random_model_write(dir, shape, weights)) return 1;
    }
    model m;
    rp_err err;
#ifdef REPRISE_REAL_CUDA
    plan_shape plan = {.seqs = 16, .tp = tp, .weights = bench_weights};   // decode batches of up to 16
    int measured = model_load_planned(&m, dir, "cuda", 0, &plan, 0, &err) == 0;
#else
    int measured = 0;
    rp_fail(&err, "built without the CUDA backend (cmake -DREPRISE_CUDA=ON on a machine with a GPU)");
#endif
    (void)gemm_table, (void)profile;   // used in a GPU build only
    model_config cfg;
    if (!measured) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        if (config_load(&cfg, dir, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    } else cfg = m.cfg;
    const gpu_peaks *peaks = roofline_gpu("h100");
#ifdef REPRISE_REAL_CUDA
    if (!gpu && measured) {   // the card at hand, by its name
        const char *name = backend_cuda_device_name();
        gpu = strstr(name, "H200") ? "h200" : strstr(name, "A100") ? "a100" : "h100";
        printf("device: %s\n", name);
    }
#endif
    if (gpu && !roofline_gpu(gpu)) return fprintf(stderr, "bench_gpu: --gpu %s: h100, h200 or a100\n", gpu), 2;
    if (gpu) peaks = roofline_gpu(gpu);
    schedule base, rep;
    schedule_base(&base, cfg.n_layers);
    char def[64];
    snprintf(def, sizeof def, "rys:%d,%d", cfg.n_layers / 2, cfg.n_layers / 2 + cfg.n_layers / 4);
    if (schedule_parse(&rep, sched_text ? sched_text : def, cfg.n_layers, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    double bandwidth = peaks->bandwidth;
    const char *bw_source = "datasheet";
#ifdef REPRISE_REAL_CUDA
    if (measured) {   // the roofline of the card at hand: its bandwidth as a 1 GiB device-to-device copy moves it
        rp_err berr;
        double bw = backend_cuda_copy_bandwidth((size_t)1 << 30, &berr);
        if (bw > 0) bandwidth = bw, bw_source = "measured: 1 GiB device-to-device copy, read + write";
        else fprintf(stderr, "bench_gpu: %s; the roofline uses the datasheet's bandwidth\n", berr.msg);
    }
#endif
    printf("model %s: %d layers, dim %d; roofline for %s%s (%.2f TB/s %s; datasheet %.2f TB/s; %.0f TFLOPS BF16 dense)\n",
           own ? "random 0.79B" : dir, cfg.n_layers, cfg.dim, tp > 1 ? (tp == 2 ? "2x " : "Nx ") : "", peaks->name, bandwidth / 1e12,
           bw_source, peaks->bandwidth / 1e12, peaks->bf16_flops / 1e12);
    if (tp > 1) printf("tensor parallel over %d GPUs: each reads 1/%d of a step's weights and KV\n", tp, tp);
    if (!measured) printf("no GPU here: NOTHING WAS MEASURED; the rows below are rooflines only\n");
#ifdef REPRISE_REAL_CUDA
    if (measured && gemm_table) {   // the projections' GEMM alone at the model's shapes: decode rows (bandwidth) and prefill (FLOPs)
        for (int v = 0; backend_cuda_gemm_variant(v); v++) printf("gemm variant %d: %s\n", v, backend_cuda_gemm_variant(v));
        rp_err perr;
        const char *prefill = backend_cuda_gemm_prefill(&perr);
        if (!prefill) return fprintf(stderr, "bench_gpu: %s\n", perr.msg), 1;
        printf("gemm at prefill rows on this GPU: %s\n", prefill);
        printf("gemm variant cublas: cuBLAS's BF16 GEMM (cublasGemmEx, FP32 accumulation): the yardstick, never in the forward\n");
        // this model's weights, then one GPU's share of Llama-3-8B's and Qwen2-72B's; the WMMA baseline (variant 0) and
        // the prompt's rows at this model's only
        double peak = 0;   // the best cuBLAS FLOP/s of the run: the BF16 peak the prefill rows are measured against
        printf("%-14s %-8s %7s %6s %6s %6s %10s %9s %8s %9s %9s\n", "shape", "gemm", "variant", "R", "N", "K", "us", "GB/s",
               "% bw", "TFLOP/s", "x cuBLAS");
        for (int m = 0; m < N_MODEL_SHAPES; m++) {
            model_config other = config_of(model_shapes[m].s);
            tp_gemm w[TP_GEMMS];
            gemms_of(m == 0 ? &cfg : &other, m == 0 ? 1 : model_shapes[m].tp, w);
            int rows[] = {1, 16, 64, 1024, n_prompt}, n_rows = m == 0 && n_prompt != 1024 && n_prompt > 64 ? 5 : 4;
            for (int i = 0; i < TP_GEMMS; i++)
                for (int r = 0; r < n_rows; r++) {
                    int R = rows[r], N = w[i].n, K = w[i].k;
                    char cerr[256];
                    double ref = bench_cublas_gemm_seconds(R, N, K, cerr, sizeof cerr);
                    if (ref <= 0) return fprintf(stderr, "bench_gpu: %s\n", cerr), 1;
                    double flops = 2.0 * R * N * K;
                    if (flops / ref > peak) peak = flops / ref;
                    for (int v = -1; v < 0 || backend_cuda_gemm_variant(v); v++) {
                        if (v >= 0 && (!gemm_variant_shown(v, R) || (v == 0 && m > 0))) continue;
                        double sec = ref, bytes = (v < 0 ? 2.0 * N * K : backend_cuda_gemm_variant_weight_bytes(v, N, K)) +
                                                  2.0 * R * K + 4.0 * R * N;   // (FP8 variants: their codes and scales)
                        if (v >= 0) {
                            rp_err gerr;
                            if ((sec = backend_cuda_time_gemm(R, N, K, v, &gerr)) <= 0) return fprintf(stderr, "bench_gpu: %s\n", gerr.msg), 1;
                        }
                        char vname[16];
                        snprintf(vname, sizeof vname, v < 0 ? "cublas" : "%d", v);
                        printf("%-14s %-8s %7s %6d %6d %6d %10.1f %9.0f %8.1f %9.1f %9.2f\n", model_shapes[m].name, w[i].name, vname,
                               R, N, K, sec * 1e6, bytes / sec / 1e9, 100 * bytes / sec / bandwidth, flops / sec / 1e12, ref / sec);
                    }
                }
        }
        printf("BF16 peak measured in this run (the best cuBLAS rate above): %.1f TFLOP/s (%.0f%% of the datasheet's %.0f)\n",
               peak / 1e12, 100 * peak / peaks->bf16_flops, peaks->bf16_flops / 1e12);
    }
#endif
    printf("%-14s %-9s %6s %14s %16s %8s\n", "schedule", "phase", "batch", "measured tok/s", "roofline tok/s", "% roof");
    const schedule *ss[2] = {&base, &rep};
    double step_seconds[2][3] = {{0}};   // measured decode step times, by schedule and batch
    (void)step_seconds;
    for (int k = 0; k < 2; k++) {
        const char *name = k ? (sched_text ? sched_text : def) : "base";
        double dtps, ptps;
        roofline(&cfg, ss[k], 1, n_prompt, tp, bandwidth, peaks->bf16_flops, &dtps, &ptps);
        double got = 0;
        if (measured) {   // prefill of one prompt
            sequence seq, *b1[1] = {&seq};
            int *ids = malloc(sizeof(int) * n_prompt);
            for (int i = 0; i < n_prompt; i++) ids[i] = (i * 7919 + 1) % cfg.vocab_size;
            float *lg = malloc(sizeof(float) * cfg.vocab_size);
            const int *f = ids;
            int bad = sequence_init(&seq, &m, ss[k], n_prompt, &err) ||
                      forward(&m, b1, 1, &f, &n_prompt, 0, lg, NULL, &err);   // warm-up
            sequence_free(&seq, &m);
            double t0 = rp_now_s();
            bad = bad || sequence_init(&seq, &m, ss[k], n_prompt, &err) || forward(&m, b1, 1, &f, &n_prompt, 0, lg, NULL, &err);
            got = n_prompt / (rp_now_s() - t0);
            sequence_free(&seq, &m);
            if (bad) return fprintf(stderr, "bench_gpu: prefill of %s: %s\n", name, err.msg), 1;
            free(ids), free(lg);
        }
        if (measured) printf("%-14s %-9s %6d %14.0f %16.0f %7.1f\n", name, "prefill", 1, got, ptps, 100 * got / ptps);
        else printf("%-14s %-9s %6d %14s %16.0f %7s\n", name, "prefill", 1, "-", ptps, "-");
        static const int batches[3] = {1, 4, 16};
        for (int bi = 0; bi < 3; bi++) {
            int batch = batches[bi];
            roofline(&cfg, ss[k], batch, n_prompt + n_decode, tp, bandwidth, peaks->bf16_flops, &dtps, &ptps);
            got = 0;
            if (measured) {
                sequence *seqs = calloc((size_t)batch, sizeof *seqs);
                gen_seq *gs = calloc((size_t)batch, sizeof *gs), **g = malloc(sizeof *g * batch);
                int *tok = malloc(sizeof(int) * batch);
                sampler greedy;   // the steps `reprise generate` runs: greedy, drawn on the device
                sampler_params gp = {.temp = 0};
                sampler_init(&greedy, &gp, cfg.vocab_size);
                for (int i = 0; i < batch; i++) {
                    if (sequence_init(&seqs[i], &m, ss[k], n_prompt + n_decode, &err))
                        return fprintf(stderr, "bench_gpu: %s\n", err.msg), 1;
                    seqs[i].cache.n_past = n_prompt;   // decode as if after a prompt: attention reads n_prompt positions
                    tok[i] = i + 1;
                    gen_begin(&gs[i], &seqs[i], &greedy, &tok[i], 1, -1);
                    gs[i].ignore_eos = 1, g[i] = &gs[i];
                }
                double t0 = 0;
                for (int step = 0; step < n_decode; step++) {
                    if (step == 2) {   // two warm-up steps
#ifdef REPRISE_REAL_CUDA
                        if (profile && k == 0 && batch == 1) backend_cuda_profile(1);
#endif
                        t0 = rp_now_s();
                    }
                    if (generate_step(&m, g, batch, NULL, &err) < 0)
                        return fprintf(stderr, "bench_gpu: decode of %s at batch %d: %s\n", name, batch, err.msg), 1;
                }
                got = (double)batch * (n_decode - 2) / (rp_now_s() - t0);
                step_seconds[k][bi] = (double)batch / got;
#ifdef REPRISE_REAL_CUDA
                if (profile && k == 0 && batch == 1) backend_cuda_profile(0);
#endif
                for (int i = 0; i < batch; i++) sequence_free(&seqs[i], &m);
                sampler_free(&greedy);
                free(seqs), free(gs), free(g), free(tok);
            }
            if (measured) printf("%-14s %-9s %6d %14.0f %16.0f %7.1f\n", name, "decode", batch, got, dtps, 100 * got / dtps);
            else printf("%-14s %-9s %6d %14s %16.0f %7s\n", name, "decode", batch, "-", dtps, "-");
        }
    }
#ifdef REPRISE_REAL_CUDA
    if (measured && tp > 1) {   // the all-reduces of a decode step: 2 per visit (attention, MLP) and 1 for the embedding
        printf("%-14s %6s %10s %12s %14s %12s\n", "all-reduce", "batch", "KiB", "us each", "per step (ms)", "% of step");
        static const int batches[3] = {1, 4, 16};
        for (int k = 0; k < 2; k++)
            for (int bi = 0; bi < 3; bi++) {
                rp_err aerr;
                size_t count = (size_t)batches[bi] * cfg.dim;
                double t = backend_cuda_time_all_reduce(m.be, count, &aerr);
                if (t <= 0) return fprintf(stderr, "bench_gpu: %s\n", aerr.msg), 1;
                int per_step = 2 * ss[k]->n_visits + 1;
                printf("%-14s %6d %10.1f %12.2f %14.3f %12.1f\n", k ? (sched_text ? sched_text : def) : "base", batches[bi],
                       count * 4 / 1024.0, t * 1e6, t * per_step * 1e3, 100 * t * per_step / step_seconds[k][bi]);
            }
        printf("(target: a 16 KiB all-reduce inside the graph in at most 8 us)\n");
    }
#endif
    printf("(%s has %d visits over %d layers: %.3fx the layer work of base; targets: decode >= 90%% and prefill >= 60%% of roofline)\n",
           sched_text ? sched_text : def, rep.n_visits, cfg.n_layers, (double)rep.n_visits / cfg.n_layers);
    schedule_free(&base), schedule_free(&rep);
    if (measured) model_free(&m);
    if (own) random_model_remove(dir);
    return 0;
}
