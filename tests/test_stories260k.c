// The real stories260K model (../shared/models): greedy ids of llama2.c and logits of llama.cpp are reproduced.
#include <cjson/cJSON.h>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "loader/json_file.h"
#include "tests/test_util.h"

#define MODEL_DIR SHARED_DIR "/models/stories260K"
// The model's README: independent f32 implementations agree to ~2e-5; 1e-4 is the suggested bound.
#define TOL 1e-4f

static model m;
static cJSON *expected;

static int *json_ints(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int *v = malloc(sizeof(int) * (*n ? *n : 1));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

// Greedy from the prompt ids as run.c does: prompt forced, then argmax fed back, n_forward passes in all.
static void greedy_reproduces(const char *key) {
    const cJSON *g = cJSON_GetObjectItem(expected, key);
    int n_ids, n_prompt, n_forward = cJSON_GetObjectItem(g, "n_forward")->valueint;
    int *ids = json_ints(cJSON_GetObjectItem(g, "ids"), &n_ids);
    int *prompt = json_ints(cJSON_GetObjectItem(g, "prompt_ids"), &n_prompt);
    schedule s;
    schedule_base(&s, m.cfg.n_layers);
    sequence seq, *b[1] = {&seq};
    rp_err err;
    CHECK(sequence_init(&seq, &m, &s, n_forward, &err) == 0, "%s", err.msg);
    float *logits = malloc(sizeof(float) * m.cfg.vocab_size);
    int mismatch = -1;
    for (int pos = 0; pos < n_forward; pos++) {
        const int *t = &ids[pos];
        int one = 1;
        CHECK(forward(&m, b, 1, &t, &one, 0, logits, NULL, &err) == 0, "%s", err.msg);
        int next = argmax(logits, m.cfg.vocab_size);
        if (pos + 1 >= n_prompt && next != ids[pos + 1] && mismatch < 0) mismatch = pos + 1;
    }
    CHECK(mismatch < 0, "%s: first differing id at index %d (want %d)", key, mismatch, mismatch >= 0 ? ids[mismatch] : 0);
    free(logits);
    sequence_free(&seq, &m);
    schedule_free(&s);
    free(ids);
    free(prompt);
}

static void greedy_bos_200_matches_llama2c(void) { greedy_reproduces("greedy_bos_200"); }
static void greedy_once_upon_a_time_matches_llama2c(void) { greedy_reproduces("greedy_once_upon_a_time_64"); }

// Feeds `ids` in one pass and compares every row of logits with a llama.cpp dump.
static void logits_match(const char *key, const char *ids_key) {
    const cJSON *l = cJSON_GetObjectItem(expected, key);
    // its own ids, or (where "ids" is a note saying so) those of the generation it replays
    const cJSON *idsrc = cJSON_GetObjectItem(l, "ids");
    if (!cJSON_IsArray(idsrc)) idsrc = cJSON_GetObjectItem(cJSON_GetObjectItem(expected, ids_key), "ids");
    int n;
    int *ids = json_ints(idsrc, &n);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.f32", MODEL_DIR, key);
    size_t nf;
    float *want = read_f32_file(path, &nf);
    CHECK(want && nf == (size_t)n * m.cfg.vocab_size, "%s: %zu floats for %d ids", path, want ? nf : 0, n);
    if (!want) return;
    schedule s;
    schedule_base(&s, m.cfg.n_layers);
    sequence seq, *b[1] = {&seq};
    rp_err err;
    CHECK(sequence_init(&seq, &m, &s, n, &err) == 0, "%s", err.msg);
    float *got = malloc(sizeof(float) * nf);
    const int *t = ids;
    CHECK(forward(&m, b, 1, &t, &n, 1, got, NULL, &err) == 0, "%s", err.msg);
    size_t at;
    float d = max_abs_diff(got, want, nf, &at);
    CHECK(d <= TOL, "%s: max |dlogit| %.3g at row %zu id %zu", key, d, at / m.cfg.vocab_size, at % m.cfg.vocab_size);
    fprintf(stderr, "  %s: max |dlogit| vs llama.cpp %.2g over %d rows\n", key, d, n);
    free(got);
    free(want);
    sequence_free(&seq, &m);
    schedule_free(&s);
    free(ids);
}

static void logits_match_llamacpp_5_tokens(void) { logits_match("logits_bos_once_upon_a_time", NULL); }
static void logits_match_llamacpp_201_tokens(void) { logits_match("logits_greedy200_llamacpp", "greedy_bos_200"); }

int main(void) {
    if (!file_exists(MODEL_DIR "/config.json")) {
        fprintf(stderr, "SKIP: %s is absent (the shared test data is not checked out here)\n", MODEL_DIR);
        return TEST_SKIP;
    }
    rp_err err;
    expected = json_parse_file(MODEL_DIR "/expected.json", &err);
    if (!expected || model_load(&m, MODEL_DIR, "cpu", 2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    RUN(greedy_bos_200_matches_llama2c);
    RUN(greedy_once_upon_a_time_matches_llama2c);
    RUN(logits_match_llamacpp_5_tokens);
    RUN(logits_match_llamacpp_201_tokens);
    model_free(&m);
    cJSON_Delete(expected);
    return TEST_EXIT();
}
