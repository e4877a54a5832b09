// `reprise inspect`: what a model is and what a schedule costs, without converting any weights.
#include <stdio.h>
#include <stdlib.h>

#include "loader/weights.h"
#include "tools/cli.h"

static const char *usage =
    "usage: reprise inspect [-m DIR] [--schedule S] [--tensors]\n"
    "Prints the architecture, the tensors (a summary, or every one with --tensors), the parameter count,\n"
    "the weight memory (CPU float32, GPU BF16), and for the schedule: visits vs unique layers, KV-cache bytes per\n"
    "token on each backend, and the GPU memory the schedule needs at the maximum context (one sequence).\n"
    "  -m DIR         model directory (default: the built-in model)\n"
    "  --schedule S   layer schedule (default base)\n"
    "  --tensors      list every tensor with its dtype and shape\n";

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
    int code;
    if (cli_begin(argc, argv, "m schedule tensors", usage, &o, &code)) return code;
    model_config c;
    st_archive a;
    schedule s;
    if (config_load(&c, o.model_dir, &err) || st_open_dir(&a, o.model_dir, &err)) {
        fprintf(stderr, "reprise inspect: %s\n", err.msg);
        return 1;
    }
    if (weights_check(&c, &a, &err) || schedule_parse(&s, o.schedule, c.n_layers, &err)) {
        fprintf(stderr, "reprise inspect: %s\n", err.msg);
        st_close(&a);
        return 1;
    }
    long long params = 0, stored = 0, by_dtype[ST_N_DTYPES] = {0};
    for (int i = 0; i < a.n_tensors; i++) {
        params += st_numel(&a.tensors[i]);
        stored += (long long)a.tensors[i].nbytes;
        by_dtype[a.tensors[i].dtype]++;
    }
    printf("%-28s %s\n", "model", o.model_dir);
    printf("%-28s %s\n", "architecture", arch_name(c.arch));
    printf("%-28s %d\n", "layers", c.n_layers);
    printf("%-28s %d\n", "hidden size", c.dim);
    printf("%-28s %d\n", "intermediate size", c.hidden_dim);
    printf("%-28s %d query, %d key/value (GQA %d:1), head_dim %d\n", "attention heads", c.n_heads, c.n_kv_heads,
           c.n_heads / c.n_kv_heads, c.head_dim);
    printf("%-28s %d\n", "vocabulary", c.vocab_size);
    printf("%-28s %d\n", "max position embeddings", c.max_pos);
    printf("%-28s theta %g%s\n", "rope", c.rope_theta, c.rope_llama3 ? ", llama3 scaling" : "");
    printf("%-28s %s%s%s\n", "features", c.tied_embeddings ? "tied embeddings" : "untied embeddings",
           c.qkv_bias ? ", qkv bias" : "", c.qk_norm ? ", q/k norm" : "");
    printf("%-28s %d in %d file(s):", "tensors", a.n_tensors, a.n_files);
    for (int d = 0; d < ST_N_DTYPES; d++)
        if (by_dtype[d]) printf(" %lld %s", by_dtype[d], st_dtype_name((st_dtype)d));
    printf("\n");
    printf("%-28s %lld (%.3f B)\n", "parameters", params, params / 1e9);
    print_bytes("weights as stored", (double)stored);
    print_bytes("weights in cpu backend", 4.0 * params);
    print_bytes("weights on a GPU (bf16)", 2.0 * params);
    char text[256];
    int len = schedule_format(&s, text, sizeof text);
    printf("%-28s %s%s\n", "schedule", text, len >= (int)sizeof text ? "..." : "");
    printf("%-28s %d visits over %d unique layers (%.3fx the layer work of base)\n", "visits", s.n_visits,
           schedule_unique_layers(&s, c.n_layers), (double)s.n_visits / c.n_layers);
    double kv_visit = 2.0 * 4 * c.n_kv_heads * c.head_dim;
    print_bytes("KV per token, cpu (f32)", kv_visit * s.n_visits);
    print_bytes("KV at max context, cpu", kv_visit * s.n_visits * c.max_pos);
    print_bytes("KV per token, cuda (bf16)", kv_visit / 2 * s.n_visits);
    print_bytes("GPU memory at max context", 2.0 * params + kv_visit / 2 * s.n_visits * c.max_pos);
    if (o.all_tensors)
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
