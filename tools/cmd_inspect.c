// `reprise inspect`: what a model is and what a schedule costs, without converting any weights.
#include <stdio.h>
#include <stdlib.h>

#include "engine/backends/cpu/backend_cpu.h"
#include "loader/alloc.h"

#include "engine/memory_plan.h"
#include "engine/tensor_parallel.h"
#include "loader/quantization.h"
#include "loader/weights.h"
#include "tools/cli.h"

static const char *synopsis =
    "usage: reprise inspect [-m DIR] [--schedule S] [--tensors] [-c N] [--batch N] [--ubatch N] [--tp N]\n"
    "                       [--gpu-memory GIB]\n"
    "Prints the architecture, the tensors (a summary, or every one with --tensors), the parameter count,\n"
    "the weight memory (CPU: as stored; GPU: BF16), and for the schedule: visits vs unique layers, KV-cache bytes per\n"
    "token on each backend, and the GPU memory plan of a run of --batch sequences of -c positions each: weights,\n"
    "KV cache, activations, logits, scratch (with --tp N, one GPU's share of the split). With --gpu-memory, whether\n"
    "it fits a GPU of that size, and the longest context and the most sequences that do. No weight is read.\n";

// A count as people say it: 260.4 K, 6.74 M, 72.71 B.
static const char *count_text(long long n, char *buf, size_t cap) {
    if (n >= 1000000000LL) snprintf(buf, cap, "%.2f B", n / 1e9);
    else if (n >= 1000000) snprintf(buf, cap, "%.2f M", n / 1e6);
    else if (n >= 1000) snprintf(buf, cap, "%.1f K", n / 1e3);
    else snprintf(buf, cap, "%lld", n);
    return buf;
}

static void print_bytes(const char *label, double b) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = b;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    printf("%-28s %.2f %s (%.0f bytes)\n", label, v, unit[u], b);
}

int cmd_inspect(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code, all_tensors = 0, batch = 1;
    float gpu_memory_gib = 0;
    const option_def options[] = {
        SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
        SHARED_FLAG("--schedule"),
        {OPT_SWITCH, "--tensors", NULL, &all_tensors, .help = "list every tensor with its dtype and shape"},
        {OPT_SHARED, "-c", .help = "context of each sequence (default: max_position_embeddings up to 4096)"},
        {OPT_INT, "--batch", "N", &batch, 1, 1 << 20, .def = "1",
         .help = "sequences held and decoded together, as a sweep's --batch"},
        {OPT_SHARED, "--ubatch", .help = "most rows of one forward step (default 512)"},
        {OPT_SHARED, "--tp", .help = "the model split over N GPUs (tensor parallel): the plan of each (default 1)"},
        {OPT_REAL, "--gpu-memory", "GIB", &gpu_memory_gib, 0.001, 1e6,
         .help = "the GPU's memory in GiB (e.g. 79 for an H100 80GB, 139 for an H200)"},
        SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"),
        {OPT_SHARED, "--allow-unused-tensors",
         .help = "accepted as by the commands that run the model; inspect lists such tensors anyway"},
        {.kind = OPT_HEADING, .flag = "Tensors the model does not read (layers at or beyond num_hidden_layers, names the architecture does not\n"
                      "use) are listed and not counted; every command that runs the model refuses them unless\n"
                      "--allow-unused-tensors is given."},
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &o, &code)) return code;
    model_config c;
    st_archive a;
    schedule s;
    if (config_load(&c, o.model_dir, &err) || st_open_dir(&a, o.model_dir, &err)) {
        fprintf(stderr, "reprise inspect: %s\n", err.msg);
        return 1;
    }
    int tp = o.tp > 0 ? o.tp : 1;
    if (weights_check(&c, &a, &err) || tp_check(&c, tp, &err) || schedule_parse(&s, o.schedule, c.n_layers, &err)) {
        fprintf(stderr, "reprise inspect: %s\n", err.msg);
        st_close(&a);
        return 1;
    }
    long long params = 0, stored = 0, by_dtype[ST_N_DTYPES] = {0};
    double cpu = 0;   // the CPU backend: matrices packed in their stored dtype, vectors in float32
    int n_unused = weights_unused(&c, &a, NULL, 0);
    const st_tensor **unused = rp_malloc(sizeof *unused * (size_t)(n_unused + 1));
    weights_unused(&c, &a, unused, n_unused);
    for (int i = 0; i < a.n_tensors; i++) {
        const st_tensor *t = &a.tensors[i];
        int skip = 0;   // the parameters are those the model reads
        for (int u = 0; u < n_unused && !skip; u++) skip = unused[u] == t;
        if (skip) continue;
        stored += (long long)t->nbytes;
        by_dtype[t->dtype]++;
        char base[256];
        if (quant_companion_of(&c.quant, t->name, base, sizeof base)) continue;   // a scale: counted with its weights
        params += st_numel(t);
        cpu += cpu_tensor_bytes(&c, t, o.weights);
    }
    kv_dtype cpu_kv = kv_dtype_for_cpu(o.kv_dtype, weights_layer(&a, 0, W_Q)->dtype);
    int cpu_kv_bytes = cpu_kv == KV_DTYPE_BF16 ? 2 : 4;
    printf("%-28s %s\n", "model", o.model_dir);
    printf("%-28s %s\n", "architecture", arch_name(c.arch));
    printf("%-28s %d\n", "layers", c.n_layers);
    printf("%-28s %d\n", "hidden size", c.dim);
    printf("%-28s %d\n", "intermediate size", c.hidden_dim);
    printf("%-28s %d query, %d key/value (GQA %d:1), head_dim %d\n", "attention heads", c.n_heads, c.n_kv_heads,
           c.n_heads / c.n_kv_heads, c.head_dim);
    printf("%-28s %d\n", "vocabulary", c.vocab_size);
    printf("%-28s %d\n", "max position embeddings", c.declared_max_pos);
    if (c.sliding_window)
        printf("%-28s %d (contexts are capped there: full attention equals sliding-window attention up to it)\n",
               "sliding window", c.sliding_window);
    printf("%-28s theta %g%s\n", "rope", c.rope_theta, c.rope_llama3 ? ", llama3 scaling" : "");
    printf("%-28s %s%s%s\n", "features", c.tied_embeddings ? "tied embeddings" : "untied embeddings",
           c.qkv_bias ? ", qkv bias" : "", c.qk_norm ? ", q/k norm" : "");
    printf("%-28s %d in %d file(s):", "tensors", a.n_tensors, a.n_files);
    for (int d = 0; d < ST_N_DTYPES; d++)
        if (by_dtype[d]) printf(" %lld %s", by_dtype[d], st_dtype_name((st_dtype)d));
    printf("\n");
    printf("%-28s %lld (%s)\n", "parameters", params, count_text(params, (char[32]){0}, 32));
    weights_format gpu_weights = weights_fp8(&c, o.weights) ? WEIGHTS_FP8 : WEIGHTS_AS_STORED;   // an FP8 checkpoint stays so
    if (c.quant.method != QUANT_NONE) {
        char layout[96];
        quant_describe(&c.quant, layout, sizeof layout);
        printf("%-28s FP8 E4M3 projections (%s), the rest as stored\n", "quantization", layout);
    }
    if (n_unused) {   // a checkpoint that disagrees with its config.json: every other command refuses it
        printf("%-28s %d, not counted above; run commands refuse this checkpoint without --allow-unused-tensors\n",
               "unused tensors", n_unused);
        for (int u = 0; u < n_unused; u++) printf("  %s\n", unused[u]->name);
    }
    free(unused);
    print_bytes("weights as stored", (double)stored);
    print_bytes(gpu_weights == WEIGHTS_FP8 ? "weights in cpu backend (fp8)" : "weights in cpu backend", cpu);
    if (c.quant.method == QUANT_NONE) print_bytes("weights on a GPU (bf16)", 2.0 * params);
    if (gpu_weights == WEIGHTS_FP8)   // the plan below counts them so
        print_bytes("weights on a GPU (fp8)", (double)tp_rank_weight_bytes_fp8(&c, 1, 0));
    char text[256];
    int len = schedule_format(&s, text, sizeof text);
    printf("%-28s %s%s\n", "schedule", text, len >= (int)sizeof text ? "..." : "");
    printf("%-28s %d visits over %d unique layers (%.3fx the layer work of base)\n", "visits", s.n_visits,
           schedule_unique_layers(&s, c.n_layers), (double)s.n_visits / c.n_layers);
    double kv_visit = 2.0 * cpu_kv_bytes * c.n_kv_heads * c.head_dim;
    char label[64];
    snprintf(label, sizeof label, "KV per token, cpu (%s)", kv_dtype_name(cpu_kv));
    print_bytes(label, kv_visit * s.n_visits);
    print_bytes("KV at max context, cpu", kv_visit * s.n_visits * c.max_pos);
    print_bytes("KV per token, cuda (bf16)", 2.0 * 2 * c.n_kv_heads * c.head_dim * s.n_visits);
    if (tp > 1) {
        printf("%-28s %d GPUs: %d of %d query heads, %d of %d KV heads, %d of %d MLP rows, %d of %d vocabulary rows each\n",
               "tensor parallel", tp, c.n_heads / tp, c.n_heads, c.n_kv_heads / tp, c.n_kv_heads, (c.hidden_dim + tp - 1) / tp,
               c.hidden_dim, (c.vocab_size + tp - 1) / tp, c.vocab_size);
        print_bytes(gpu_weights == WEIGHTS_FP8 ? "weights per GPU (fp8)" : "weights per GPU (bf16)",
                    (double)tp_max_rank_weight_bytes(&c, tp, gpu_weights == WEIGHTS_FP8));
        print_bytes("KV per token per GPU", (double)memory_plan_kv_bytes_per_position(&c, tp) * s.n_visits);
    }
    plan_shape shape = {.ubatch = o.ubatch, .seqs = batch, .kv_slots = (long)s.n_visits * batch,
                        .ctx = cli_context(&o, &c, 0, NULL), .max_visits = s.n_visits, .tp = tp, .weights = gpu_weights};
    memory_plan plan;
    memory_plan_compute(&c, &shape, &plan);
    size_t device = (size_t)(gpu_memory_gib * 1073741824.0);
    char plan_text[2048];
    memory_plan_format(&plan, 0, plan_text, sizeof plan_text);
    printf("GPU memory plan%s: %d sequence(s) of %d positions, %d rows per step\n%s", tp > 1 ? " of each GPU" : "", batch,
           plan.shape.ctx, plan.shape.ubatch, plan_text);
    if (device) {
        int fits = plan.device + PLAN_HEADROOM <= device;
        printf("%-28s %s %s%.3f GiB GPU (%.3f GiB needed with headroom%s)\n", "fits", fits ? "yes, on" : "no, not on",
               tp > 1 ? "each " : "a ", gpu_memory_gib, (plan.device + PLAN_HEADROOM) / 1073741824.0, tp > 1 ? ", per GPU" : "");
        printf("%-28s %d positions (%d sequence(s))\n", "longest context that fits",
               memory_plan_max_ctx(&c, &shape, s.n_visits, device), batch);
        printf("%-28s %d (of %d positions)\n", "most sequences that fit", memory_plan_max_seqs(&c, &shape, s.n_visits, device),
               plan.shape.ctx);
    }
    if (all_tensors)
        for (int i = 0; i < a.n_tensors; i++) {
            const st_tensor *t = &a.tensors[i];
            printf("  %-60s %-5s [", t->name, st_dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("]\n");
        }
    schedule_free(&s);
    st_close(&a);
    return 0;
}
