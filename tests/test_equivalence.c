// Duplication equivalence (engine/README.md, invariants): schedule S on a model gives the logits and greedy ids of `base` on the
// checkpoint `reprise export` writes for S, prefill plus 16 decode steps, alone and in one batch mixing schedules.
#include "bench/random_model.h"
#include "tools/export.h"
#include "engine/forward.h"
#include "engine/sampler.h"
#include "tests/test_util.h"
#include "tests/ubatch_run.h"

// Alone, S and its export run the same operations in the same order. In a batch, each row's arithmetic is
// unchanged too (the CPU matmul is batch-invariant by design), so both comparisons are exact: tolerance 0.
#define TOL_BATCHED 0.0f
#define N_PROMPT 6
#define N_DECODE 16
#define N_STEPS (N_DECODE + 1)   // logits after the prefill, then after each decode step

static const char *schedules[] = {"rys:1,3", "0,1,3", "0,2,1,3", "rys:1,3,3"};
#define N_SCHED 4
static const int prompt[N_PROMPT] = {1, 7, 3, 12, 5, 9};

typedef struct {
    int ids[N_STEPS];
    float *logits;   // (N_STEPS, vocab)
} trace;

// Runs n sequences together: prefill the prompt, then N_DECODE greedy steps, each sequence feeding its own argmax.
static void run_batch(model *m, sequence **seqs, int n, trace *out, forward_stats *st) {
    int vocab = m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * n * vocab);
    const int *feed[8];
    int n_feed[8], next[8];
    rp_err err;
    for (int i = 0; i < n; i++) feed[i] = prompt, n_feed[i] = N_PROMPT;
    for (int step = 0; step < N_STEPS; step++) {
        CHECK(forward(m, seqs, n, feed, n_feed, 0, logits, st, &err) == 0, "%s", err.msg);
        for (int i = 0; i < n; i++) {
            memcpy(out[i].logits + (size_t)step * vocab, logits + (size_t)i * vocab, sizeof(float) * vocab);
            out[i].ids[step] = next[i] = argmax(logits + (size_t)i * vocab, vocab);
            feed[i] = &next[i];
            n_feed[i] = 1;
        }
    }
    free(logits);
}

static void compare(const char *what, const trace *got, const trace *want, int vocab, float tol) {
    for (int s = 0; s < N_STEPS; s++)
        CHECK(got->ids[s] == want->ids[s], "%s: step %d greedy id %d, export gives %d", what, s, got->ids[s], want->ids[s]);
    size_t at;
    float d = max_abs_diff(got->logits, want->logits, (size_t)N_STEPS * vocab, &at);
    CHECK(d <= tol, "%s: max |dlogit| %.3g at step %zu id %zu", what, d, at / vocab, at % vocab);
}

static void check_variant(const char *name) {
    char src[512];
    snprintf(src, sizeof src, "%s/%s", FIXTURES_DIR, name);
    char *tmp = make_temp_dir("equiv");
    rp_err err;
    model m;
    CHECK(model_load(&m, src, "cpu", 2, &err) == 0, "%s", err.msg);
    int vocab = m.cfg.vocab_size, ctx = N_PROMPT + N_DECODE;
    trace want[N_SCHED], alone[N_SCHED], batched[N_SCHED + 1];
    schedule sched[N_SCHED + 1];
    long visits_total = 0;
    for (int k = 0; k <= N_SCHED; k++) {
        batched[k].logits = malloc(sizeof(float) * N_STEPS * vocab);
        if (k == N_SCHED) {
            schedule_base(&sched[k], m.cfg.n_layers);
            continue;
        }
        want[k].logits = malloc(sizeof(float) * N_STEPS * vocab);
        alone[k].logits = malloc(sizeof(float) * N_STEPS * vocab);
        CHECK(schedule_parse(&sched[k], schedules[k], m.cfg.n_layers, &err) == 0, "%s", err.msg);
        visits_total += sched[k].n_visits;

        // the oracle: base on the physically duplicated checkpoint
        char out[600];
        snprintf(out, sizeof out, "%s/%d", tmp, k);
        CHECK(export_schedule(src, &sched[k], &(export_opts){.quiet = 1}, out, &err) == 0, "%s", err.msg);
        model dup;
        CHECK(model_load(&dup, out, "cpu", 2, &err) == 0, "%s", err.msg);
        CHECK(dup.cfg.n_layers == sched[k].n_visits, "exported %d layers", dup.cfg.n_layers);
        schedule base;
        schedule_base(&base, dup.cfg.n_layers);
        sequence sd;
        sequence *one[1] = {&sd};
        CHECK(sequence_init(&sd, &dup, &base, ctx, &err) == 0, "%s", err.msg);
        run_batch(&dup, one, 1, &want[k], NULL);
        sequence_free(&sd, &dup);
        schedule_free(&base);
        model_free(&dup);

        // S alone on the original weights
        sequence s;
        one[0] = &s;
        CHECK(sequence_init(&s, &m, &sched[k], ctx, &err) == 0, "%s", err.msg);
        run_batch(&m, one, 1, &alone[k], NULL);
        sequence_free(&s, &m);
        char what[128];
        snprintf(what, sizeof what, "%s %s alone", name, schedules[k]);
        compare(what, &alone[k], &want[k], vocab, 0.0f);
    }

    // all four schedules and base in one batch
    sequence seqs[N_SCHED + 1], *ptrs[N_SCHED + 1];
    for (int k = 0; k <= N_SCHED; k++) {
        CHECK(sequence_init(&seqs[k], &m, &sched[k], ctx, &err) == 0, "%s", err.msg);
        ptrs[k] = &seqs[k];
    }
    forward_stats st = {0};
    run_batch(&m, ptrs, N_SCHED + 1, batched, &st);
    for (int k = 0; k < N_SCHED; k++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s in a mixed batch", name, schedules[k]);
        compare(what, &batched[k], &want[k], vocab, TOL_BATCHED);
    }
    // base in the batch equals base alone (the first visits of the exports are base's layers 0..; compare directly)
    visits_total += m.cfg.n_layers;
    CHECK(st.visits == visits_total * N_STEPS, "visits %ld, want %ld", st.visits, visits_total * N_STEPS);
    CHECK(st.layer_execs < st.visits, "a mixed batch shared no layer executions (%ld of %ld)", st.layer_execs, st.visits);
    fprintf(stderr, "  %s: mixed batch ran %ld layer executions for %ld visits\n", name, st.layer_execs, st.visits);
    for (int k = 0; k <= N_SCHED; k++) {
        sequence_free(&seqs[k], &m);
        schedule_free(&sched[k]);
        free(batched[k].logits);
        if (k < N_SCHED) free(want[k].logits), free(alone[k].logits);
    }
    model_free(&m);
    remove_tree(tmp);
    free(tmp);
}

static void repeat_equals_physical_duplicate_llama(void) { check_variant("llama"); }
static void repeat_equals_physical_duplicate_qwen2(void) { check_variant("qwen2"); }
static void repeat_equals_physical_duplicate_qwen3(void) { check_variant("qwen3"); }

// engine/README.md's example: base, rys:1,3 and rys:2,4 on 6 layers take 9 layer executions together, not 22.
static void mixed_schedules_share_layer_executions(void) {
    char *tmp = make_temp_dir("six");
    rp_err err;
    schedule six;
    CHECK(schedule_parse(&six, "0-3,2-3", 4, &err) == 0, "%s", err.msg);   // any 6-layer model will do
    CHECK(export_schedule(FIXTURES_DIR "/llama", &six, &(export_opts){.quiet = 1}, tmp, &err) == 0, "%s", err.msg);
    schedule_free(&six);
    model m;
    CHECK(model_load(&m, tmp, "cpu", 2, &err) == 0, "%s", err.msg);
    const char *names[3] = {"base", "rys:1,3", "rys:2,4"};
    schedule s[3];
    sequence seqs[3], *ptrs[3];
    const int *feed[3];
    int n_feed[3];
    for (int i = 0; i < 3; i++) {
        CHECK(schedule_parse(&s[i], names[i], 6, &err) == 0, "%s", err.msg);
        CHECK(sequence_init(&seqs[i], &m, &s[i], 8, &err) == 0, "%s", err.msg);
        ptrs[i] = &seqs[i];
        feed[i] = prompt;
        n_feed[i] = 2;
    }
    float *logits = malloc(sizeof(float) * 3 * m.cfg.vocab_size);
    forward_stats st = {0};
    CHECK(forward(&m, ptrs, 3, feed, n_feed, 0, logits, &st, &err) == 0, "%s", err.msg);
    CHECK(st.layer_execs == 9 && st.visits == 22, "%ld layer executions for %ld visits", st.layer_execs, st.visits);
    free(logits);
    for (int i = 0; i < 3; i++) sequence_free(&seqs[i], &m), schedule_free(&s[i]);
    model_free(&m);
    remove_tree(tmp);
    free(tmp);
}

// A call's rows run in windows of at most --ubatch rows (a long prompt in chunks, each attending to the KV the
// earlier ones wrote); the CPU backend is batch-invariant, so every window size gives the same bits: prompts of
// three sequences with different schedules, all-rows logits and last-row logits, then decode steps.
static void ubatch_chunks_give_identical_logits(void) {
    int ubatches[] = {0, 1, 5, 7, 16}, vocab = 0;
    float *ref = NULL;
    for (size_t u = 0; u < sizeof ubatches / sizeof *ubatches; u++) {
        rp_err err;
        float *got = ubatch_run("cpu", ubatches[u], &vocab, &err);
        CHECK(got != NULL, "%s", err.msg);
        if (!got) continue;
        if (!ref) ref = got;
        else {
            CHECK(memcmp(got, ref, sizeof(float) * 30 * vocab) == 0, "--ubatch %d: prompt logits differ", ubatches[u]);
            CHECK(memcmp(got + 30 * vocab, ref + 30 * vocab, sizeof(float) * 12 * vocab) == 0,
                  "--ubatch %d: decode logits differ", ubatches[u]);
            free(got);
        }
    }
    free(ref);
}

// The fixtures' heads are 8 to 32 wide; a real model's are 64 or 128, which the CPU attention runs in other loops
// (whole 64-column chunks of values), with its threads (the work is over PARALLEL_MIN_WORK). A random BF16 model
// with 64-wide heads: a 70-token prompt's logits are the same bits in one pass, token by token, and batched with a
// second sequence of another schedule and length, with the KV cache in BF16 (this model's default) and in float32.
static void batch_invariant_at_real_head_size(void) {
    char *dir = make_temp_dir("heads64");
    if (random_model_write(dir, (random_model_shape){256, 512, 2, 4, 2, 320, 256}, 1)) {
        CHECK(0, "random model");
        return;
    }
    enum { N = 70, M = 45 };
    int a[N], b[M];
    for (int i = 0; i < N; i++) a[i] = (i * 37 + 11) % 320;
    for (int i = 0; i < M; i++) b[i] = (i * 53 + 5) % 320;
    kv_dtype kinds[2] = {KV_DTYPE_AUTO, KV_DTYPE_F32};
    for (int k = 0; k < 2; k++) {
        plan_shape shape = {.kv_dtype = kinds[k]};
        model m;
        rp_err err;
        if (model_load_planned(&m, dir, "cpu", 2, &shape, 0, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        CHECK(m.cfg.head_dim == 64, "head_dim %d", m.cfg.head_dim);
        int v = m.cfg.vocab_size;
        float *one = malloc(sizeof(float) * N * v), *step = malloc(sizeof(float) * N * v), *both = malloc(sizeof(float) * (N + M) * v);
        schedule sa, sb;
        schedule_parse(&sa, "rys:0,2", 2, &err), schedule_parse(&sb, "0,1,1", 2, &err);
        sequence s1, s2;
        sequence *p1[1] = {&s1}, *p2[2] = {&s2, &s1};
        const int *feed[2];
        int n_feed[2];
        // one pass, every row's logits
        CHECK(sequence_init(&s1, &m, &sa, N, &err) == 0, "%s", err.msg);
        feed[0] = a, n_feed[0] = N;
        CHECK(forward(&m, p1, 1, feed, n_feed, 1, one, NULL, &err) == 0, "%s", err.msg);
        sequence_free(&s1, &m);
        // token by token
        CHECK(sequence_init(&s1, &m, &sa, N, &err) == 0, "%s", err.msg);
        for (int i = 0; i < N; i++) {
            feed[0] = a + i, n_feed[0] = 1;
            CHECK(forward(&m, p1, 1, feed, n_feed, 0, step + (size_t)i * v, NULL, &err) == 0, "%s", err.msg);
        }
        sequence_free(&s1, &m);
        // batched after another sequence: its rows come first, so a's rows sit at other offsets of every matmul
        CHECK(sequence_init(&s1, &m, &sa, N, &err) == 0, "%s", err.msg);
        CHECK(sequence_init(&s2, &m, &sb, M, &err) == 0, "%s", err.msg);
        feed[0] = b, n_feed[0] = M, feed[1] = a, n_feed[1] = N;
        CHECK(forward(&m, p2, 2, feed, n_feed, 1, both, NULL, &err) == 0, "%s", err.msg);
        sequence_free(&s1, &m), sequence_free(&s2, &m);
        const char *kv = kv_dtype_name(kinds[k]);
        CHECK(!memcmp(one, step, sizeof(float) * N * v), "KV %s: token by token differs from one pass", kv);
        CHECK(!memcmp(one, both + (size_t)M * v, sizeof(float) * N * v), "KV %s: batched differs from alone", kv);
        size_t at;
        CHECK(max_abs_diff(one, one + v, (size_t)(N - 1) * v, &at) > 0, "KV %s: the logits are all alike", kv);
        schedule_free(&sa), schedule_free(&sb);
        free(one), free(step), free(both);
        model_free(&m);
    }
    random_model_remove(dir);
    free(dir);
}

int main(void) {
    RUN(repeat_equals_physical_duplicate_llama);
    RUN(repeat_equals_physical_duplicate_qwen2);
    RUN(repeat_equals_physical_duplicate_qwen3);
    RUN(mixed_schedules_share_layer_executions);
    RUN(ubatch_chunks_give_identical_logits);
    RUN(batch_invariant_at_real_head_size);
    return TEST_EXIT();
}
