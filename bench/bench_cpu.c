// CPU benchmark: prefill and decode tokens/s for `base` and a repeated schedule, and their time ratio beside
// visits/layers (DESIGN.md 7: a schedule of V visits over N layers should cost V/N of base). Prints, never asserts.
//
// usage: bench_cpu [-m DIR] [--schedule S] [--prompt N] [--decode N] [-t N]
//        bench_cpu --write-model DIR   (writes the random ~100M model into DIR and exits: for `reprise bench -m DIR`)
// Without -m it writes a ~100M-parameter Llama (dim 768, 12 layers, GQA 12:4, vocab 32000, BF16, random weights)
// into a temporary directory and removes it afterwards.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "loader/json_file.h"
#include "loader/weights.h"
#include "bench/random_model.h"
#include "engine/stats.h"

typedef struct {
    double prefill_s, decode_s;
} timing;

static int run(model *m, const schedule *s, int n_prompt, int n_decode, timing *out) {
    sequence seq, *b[1] = {&seq};
    rp_err err;
    if (sequence_init(&seq, m, s, n_prompt + n_decode, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    int *prompt = malloc(sizeof(int) * n_prompt);
    for (int i = 0; i < n_prompt; i++) prompt[i] = (i * 7919 + 1) % m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * m->cfg.vocab_size);
    const int *feed = prompt;
    double t0 = rp_now_s();
    forward(m, b, 1, &feed, &n_prompt, 0, logits, NULL, &err);
    double t1 = rp_now_s();
    int one = 1, next = 0;
    for (int i = 0; i < n_decode; i++) {
        next = argmax(logits, m->cfg.vocab_size);
        feed = &next;
        forward(m, b, 1, &feed, &one, 0, logits, NULL, &err);
    }
    double t2 = rp_now_s();
    *out = (timing){t1 - t0, t2 - t1};
    free(logits);
    free(prompt);
    sequence_free(&seq, m);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *sched_text = "rys:4,8";
    int n_prompt = 128, n_decode = 32, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--write-model")) return random_model_write(argv[i + 1], RANDOM_MODEL_100M, 1) ? 1 : 0;
        if (!strcmp(argv[i], "-m")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--schedule")) sched_text = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) n_decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else return fprintf(stderr, "usage: bench_cpu [-m DIR] [--schedule S] [--prompt N] [--decode N] [-t N] | --write-model DIR\n"), 2;
    }
    char tmpl[] = "/tmp/reprise-bench-XXXXXX";
    int own = !dir;
    if (own) {
        dir = mkdtemp(tmpl);
        fprintf(stderr, "writing a ~100M-parameter model to %s\n", dir);
        if (!dir || random_model_write(dir, RANDOM_MODEL_100M, 1)) return 1;
    }
    model m;
    rp_err err;
    double t0 = rp_now_s();
    if (model_load(&m, dir, "cpu", threads, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
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
    schedule_free(&base);
    schedule_free(&rep);
    model_free(&m);
    if (own) random_model_remove(dir);
    return 0;
}
