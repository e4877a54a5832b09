// Self-speculative decoding (engine/speculative.h): greedy output is the target's token for token, with penalties
// and a logit bias, on every fixture, the built-in model and stories260K; the acceptance rule keeps the target's
// distribution (chi-square against p); sampled generation with a draft draws the target's distribution (a
// two-sample chi-square against generation without one, on the built-in model's 16-token vocabulary).
#include "engine/generate.h"
#include "engine/memory_plan.h"
#include "engine/speculative.h"
#include "tests/test_util.h"

// The backend the tests run on: the CPU's, or (test_speculative_cuda, the same source) the emulated CUDA backend's,
// which decodes a few tokens a second: there the greedy test takes SPEC_MODELS models and SPEC_TOKENS tokens, and
// the sampled one SPEC_RUNS runs (fewer: it finds a wrong rule all the same; SPEC_RUNS 0 skips it).
#ifndef SPEC_BACKEND
#define SPEC_BACKEND "cpu"
#endif
#ifndef SPEC_RUNS
#define SPEC_RUNS 3000
#endif
#ifndef SPEC_MODELS
#define SPEC_MODELS 7
#endif
#ifndef SPEC_TOKENS
#define SPEC_TOKENS 40
#endif

// The chi-square quantile at upper tail 1e-4 (Wilson-Hilferty): a check that fails by chance once in 10^4 runs.
static double chi2_critical(int df) {
    double z = 3.719, a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

static float uniform(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)(*s >> 40) / 16777216.0f;
}

// d ~ q, then the rule: the ids it returns are distributed as p (Leviathan et al., theorem 1), and it accepts with
// probability sum_i min(p_i, q_i).
static void acceptance_rule_keeps_the_target_distribution(void) {
    enum { V = 6, TRIALS = 200000 };
    const float cases[][2][V] = {
        {{0.5f, 0.2f, 0.1f, 0.1f, 0.05f, 0.05f}, {0.1f, 0.1f, 0.2f, 0.2f, 0.2f, 0.2f}},
        {{0.3f, 0.3f, 0.4f, 0, 0, 0}, {0, 0, 0.2f, 0.3f, 0.3f, 0.2f}},   // supports barely overlap
        {{0.25f, 0.25f, 0.25f, 0.25f, 0, 0}, {0.25f, 0.25f, 0.25f, 0.25f, 0, 0}},   // p = q: always kept
        {{0, 0, 0, 0, 1, 0}, {0.2f, 0.2f, 0.2f, 0.2f, 0.1f, 0.1f}},   // a greedy target
    };
    uint64_t rng = 0x1234567;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const float *p = cases[c][0], *q = cases[c][1];
        long count[V] = {0}, kept = 0;
        for (int t = 0; t < TRIALS; t++) {
            float u = uniform(&rng), cum = 0;
            int d = V - 1;
            for (int i = 0; i < V; i++)
                if (q[i] > 0 && u < (cum += q[i])) {
                    d = i;
                    break;
                }
            int accepted, id = spec_accept_or_replace(p, q, V, d, uniform(&rng), uniform(&rng), &accepted);
            count[id]++, kept += accepted;
        }
        double chi2 = 0, overlap = 0;
        int df = -1, outside = 0;
        for (int i = 0; i < V; i++) {
            overlap += p[i] < q[i] ? p[i] : q[i];
            if (p[i] == 0) outside += count[i] != 0;
            else chi2 += pow(count[i] - TRIALS * (double)p[i], 2) / (TRIALS * (double)p[i]), df++;
        }
        double rate = (double)kept / TRIALS, se = sqrt(overlap * (1 - overlap) / TRIALS) + 1e-9;
        CHECK(outside == 0, "case %zu: ids outside the target's support were returned", c);
        CHECK(df == 0 || chi2 < chi2_critical(df), "case %zu: chi-square %.1f on %d degrees of freedom (critical %.1f)", c, chi2,
              df, chi2_critical(df > 0 ? df : 1));
        CHECK(fabs(rate - overlap) < 5 * se, "case %zu: accepted %.4f of the proposals, expected %.4f", c, rate, overlap);
    }
}

// Loads a model for one sequence and a draft (2 sequences), on the CPU backend.
static int load(model *m, const char *dir, int ctx) {
    plan_shape shape = {.seqs = 2, .logit_rows = SPEC_MAX_TOKENS + 1, .kv_slots = 64, .ctx = ctx, .max_visits = 32};
    rp_err err;
    if (model_load_planned(m, dir, SPEC_BACKEND, 2, &shape, 0, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return -1;
    }
    return 0;
}

// Generates n ids after prompt under schedule `target` (with draft `draft`, K = k, when not NULL): the ids into out,
// the draft's counters into spec (proposed, accepted). Returns the ids drawn.
static int generate(model *m, const char *target, const char *draft, int k, sampler_params sp, const int *bias_id,
                    const float *bias, int n_bias, const int *prompt, int n_prompt, int n, int *out, long spec[2]) {
    rp_err err;
    schedule ts, ds;
    sequence seq;
    spec_draft d;
    sampler smp;
    int ctx = n_prompt + n, got = 0;
    if (schedule_parse(&ts, target, m->cfg.n_layers, &err) || sequence_init(&seq, m, &ts, ctx, &err)) {
        CHECK(0, "%s: %s", target, err.msg);
        return 0;
    }
    int drafted = draft != NULL;
    if (drafted && (schedule_parse(&ds, draft, m->cfg.n_layers, &err) || spec_draft_init(&d, m, &ds, ctx, k, sp.seed, &err))) {
        CHECK(0, "draft %s: %s", draft, err.msg);
        drafted = 0;
    }
    sampler_init(&smp, &sp, m->cfg.vocab_size);
    sampler_set_prompt(&smp, prompt, n_prompt);
    gen_seq g;
    gen_begin(&g, &seq, &smp, prompt, n_prompt, n);
    g.ignore_eos = 1, g.bias_id = bias_id, g.bias = bias, g.n_bias = n_bias;
    if (drafted) g.draft = &d;
    gen_seq *batch[1] = {&g};
    while (g.state == GEN_RUNNING) {
        if (generate_step(m, batch, 1, NULL, &err) < 0) {
            CHECK(0, "step: %s", err.msg);
            break;
        }
        for (int j = 0; j < g.n_drawn && got < n; j++) out[got++] = g.drawn[j];
    }
    if (spec) spec[0] = drafted ? d.proposed : 0, spec[1] = drafted ? d.accepted : 0;
    sampler_free(&smp);
    if (drafted) spec_draft_free(&d, m), schedule_free(&ds);
    sequence_free(&seq, m);
    schedule_free(&ts);
    return got;
}

// Greedy: the same ids with and without a draft - drafts that agree often, rarely, always (the target's own
// schedule), K fixed and adapted, with penalties and a logit bias (the rows' edits see the proposals before them).
static void greedy_output_is_the_targets(void) {
    struct { const char *dir; const char *target, *drafts[3]; } models[] = {
        {DEFAULT_MODEL_DIR, "base", {"0-3,5", "0,5", "base"}},
        {DEFAULT_MODEL_DIR, "rys:2,4", {"0-2,4,5", "base", "rys:2,4"}},
        {FIXTURES_DIR "/llama", "rys:1,3", {"0,2,3", "0,3", "base"}},
        {FIXTURES_DIR "/qwen2", "base", {"0,1,3", "0,3", "rys:1,2"}},
        {FIXTURES_DIR "/qwen3", "base", {"0,2,3", "3", "base"}},
        {FIXTURES_DIR "/mistral", "0-3,2,3", {"0,1,3", "0", "base"}},
        {SHARED_DIR "/models/stories260K", "base", {"0,1,2,4", "0,4", "base"}},
    };
    enum { N = SPEC_TOKENS };
    const int bias_id[2] = {5, 7};
    const float bias[2] = {1.5f, -2.0f};
    _Static_assert(SPEC_MODELS <= sizeof models / sizeof *models, "SPEC_MODELS");
    for (size_t mi = 0; mi < SPEC_MODELS; mi++) {
        model m;
        char probe[512];
        snprintf(probe, sizeof probe, "%s/config.json", models[mi].dir);
        FILE *f = fopen(probe, "r");
        if (!f) {
            SKIP("%s is not here", models[mi].dir);
            continue;
        }
        fclose(f);
        if (load(&m, models[mi].dir, 64)) continue;
        int prompt[6], V = m.cfg.vocab_size;
        for (int i = 0; i < 6; i++) prompt[i] = 1 + (i * 7 + (int)mi) % (V - 1);
        sampler_params greedy = {.temp = 0, .top_p = 1}, penalised = greedy;
        penalised.repeat_penalty = 1.3f, penalised.presence_penalty = 0.4f, penalised.frequency_penalty = 0.2f;
        for (int pi = 0; pi < 2; pi++) {
            sampler_params sp = pi ? penalised : greedy;
            int want[N], got[N];
            int n_want = generate(&m, models[mi].target, NULL, 0, sp, bias_id, bias, pi ? 2 : 0, prompt, 6, N, want, NULL);
            CHECK(n_want == N, "%s: %d ids", models[mi].dir, n_want);
            for (int di = 0; di < 3; di++)
                for (int k = 0; k <= 3; k += 3) {
                    long spec[2] = {0, 0};
                    int n_got = generate(&m, models[mi].target, models[mi].drafts[di], k, sp, bias_id, bias, pi ? 2 : 0,
                                         prompt, 6, N, got, spec);
                    CHECK(n_got == N && !memcmp(got, want, sizeof want),
                          "%s %s, draft %s, K %d%s: the ids differ from the target's alone", models[mi].dir,
                          models[mi].target, models[mi].drafts[di], k, pi ? ", penalties and bias" : "");
                    CHECK(spec[0] > 0, "%s, draft %s: nothing was proposed", models[mi].dir, models[mi].drafts[di]);
                    if (!strcmp(models[mi].drafts[di], models[mi].target))   // the target's own schedule: all kept
                        CHECK(spec[1] == spec[0], "%s: the target's own schedule as the draft had %ld of %ld accepted",
                              models[mi].dir, spec[1], spec[0]);
                }
        }
        model_free(&m);
    }
}

// B sequences at once, each its own sampler seeded seed0 + b, under `target` (drafted by `draft`, K = k, when not
// NULL): their first n ids after prompt into out[b * n ..]. The batch is what makes the emulated backend's run
// affordable: its cost grows with the launches, hardly with the rows.
#define SAMPLED_BATCH 100
static void generate_batch(model *m, const char *target, const char *draft, int k, sampler_params sp, uint64_t seed0, int B,
                           const int *prompt, int n_prompt, int n, int *out, long *accepted) {
    rp_err err;
    schedule ts, ds;
    sequence seq[SAMPLED_BATCH];
    spec_draft d[SAMPLED_BATCH];
    sampler smp[SAMPLED_BATCH];
    gen_seq g[SAMPLED_BATCH], *batch[SAMPLED_BATCH];
    int ctx = n_prompt + n, got[SAMPLED_BATCH] = {0}, made = 0;
    if (schedule_parse(&ts, target, m->cfg.n_layers, &err) || (draft && schedule_parse(&ds, draft, m->cfg.n_layers, &err))) {
        CHECK(0, "%s: %s", target, err.msg);
        return;
    }
    for (; made < B; made++) {
        sp.seed = seed0 + (uint64_t)made;
        if (sequence_init(&seq[made], m, &ts, ctx, &err)) break;
        if (draft && spec_draft_init(&d[made], m, &ds, ctx, k, sp.seed, &err)) {
            sequence_free(&seq[made], m);
            break;
        }
        sampler_init(&smp[made], &sp, m->cfg.vocab_size);
        sampler_set_prompt(&smp[made], prompt, n_prompt);
        gen_begin(&g[made], &seq[made], &smp[made], prompt, n_prompt, n);
        g[made].ignore_eos = 1, g[made].draft = draft ? &d[made] : NULL, batch[made] = &g[made];
    }
    CHECK(made == B, "%d of %d sequences: %s", made, B, err.msg);
    for (int running = made; running > 0;) {
        running = generate_step(m, batch, made, NULL, &err);
        CHECK(running >= 0, "step: %s", err.msg);
        for (int b = 0; b < made; b++)
            for (int j = 0; j < g[b].n_drawn && got[b] < n; j++) out[b * n + got[b]++] = g[b].drawn[j];
    }
    for (int b = 0; b < made; b++) {
        CHECK(got[b] == n, "sequence %d drew %d of %d ids", b, got[b], n);
        if (draft) *accepted += d[b].accepted, spec_draft_free(&d[b], m);
        sampler_free(&smp[b]);
        sequence_free(&seq[b], m);
    }
    if (draft) schedule_free(&ds);
    schedule_free(&ts);
}

// Sampled: the 2nd and 3rd ids with draft `0,5` (K 2) and without, SPEC_RUNS runs each (seeds apart), plain and
// filtered: a two-sample chi-square per id position.
static void sampled_output_keeps_the_targets_distribution(void) {
    model m;
    plan_shape shape = {.seqs = 2 * SAMPLED_BATCH, .logit_rows = SAMPLED_BATCH * 3, .kv_slots = SAMPLED_BATCH * 8, .ctx = 16,
                        .max_visits = 6};
    rp_err err;
    if (model_load_planned(&m, DEFAULT_MODEL_DIR, SPEC_BACKEND, 2, &shape, 0, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    enum { RUNS = SPEC_RUNS, N = 3 };
    const int prompt[] = {1, 4};   // BOS and a digit: the first ids of a problem vary most
    sampler_params filters[2] = {{.temp = 1, .top_p = 1}, {.temp = 0.8f, .top_k = 6, .top_p = 0.9f, .min_p = 0.02f}};
    int V = m.cfg.vocab_size, *ids = malloc(sizeof(int) * SAMPLED_BATCH * N);
    for (int fi = 0; fi < 2; fi++) {
        long a[N][64] = {{0}}, b[N][64] = {{0}}, accepted = 0;
        for (int r = 0; r < RUNS; r += SAMPLED_BATCH) {
            int B = RUNS - r < SAMPLED_BATCH ? RUNS - r : SAMPLED_BATCH;
            generate_batch(&m, "base", NULL, 0, filters[fi], 1000 + (uint64_t)r, B, prompt, 2, N, ids, NULL);
            for (int i = 0; i < B; i++)
                for (int pos = 1; pos < N; pos++) a[pos][ids[i * N + pos]]++;
            generate_batch(&m, "base", "0,5", 2, filters[fi], 900000 + (uint64_t)r, B, prompt, 2, N, ids, &accepted);
            for (int i = 0; i < B; i++)
                for (int pos = 1; pos < N; pos++) b[pos][ids[i * N + pos]]++;
        }
        for (int pos = 1; pos < N; pos++) {
            double chi2 = 0;
            int df = -1;
            for (int i = 0; i < V; i++)
                if (a[pos][i] + b[pos][i] > 0) chi2 += pow((double)(a[pos][i] - b[pos][i]), 2) / (double)(a[pos][i] + b[pos][i]), df++;
            CHECK(df < 1 || chi2 < chi2_critical(df), "filters %d, id %d: chi-square %.1f on %d degrees of freedom (critical %.1f)",
                  fi, pos + 1, chi2, df, chi2_critical(df > 0 ? df : 1));
            fprintf(stderr, "  filters %d, id %d: chi-square %.1f on %d df; %ld proposals accepted in %d runs\n", fi, pos + 1,
                    chi2, df, accepted, RUNS);
        }
    }
    free(ids);
    model_free(&m);
}

int main(void) {
    RUN(acceptance_rule_keeps_the_target_distribution);
    RUN(greedy_output_is_the_targets);
#if SPEC_RUNS > 0
    RUN(sampled_output_keeps_the_targets_distribution);
#else
    (void)sampled_output_keeps_the_targets_distribution;
#endif
    return TEST_EXIT();
}
