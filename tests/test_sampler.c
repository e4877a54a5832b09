// Sampling: greedy is argmax, filters keep what they promise, and a seed reproduces a run.
#include "engine/sampler.h"
#include "tests/test_util.h"

#define V 6
static const float logits[V] = {1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f};   // ids 1 and 4 tie for the top

static int histogram(sampler_params p, int draws, int *count) {
    sampler s;
    sampler_init(&s, &p, V);
    memset(count, 0, sizeof(int) * V);
    for (int i = 0; i < draws; i++) count[sampler_sample(&s, logits)]++;
    sampler_free(&s);
    int distinct = 0;
    for (int i = 0; i < V; i++) distinct += count[i] > 0;
    return distinct;
}

static void greedy_is_argmax_lowest_id_on_ties(void) {
    sampler s;
    sampler_init(&s, &(sampler_params){.temp = 0}, V);
    CHECK(sampler_sample(&s, logits) == 1, "greedy picked %d", sampler_sample(&s, logits));
    sampler_free(&s);
}

static void filters_keep_only_what_they_allow(void) {
    int count[V];
    CHECK(histogram((sampler_params){.temp = 1, .top_k = 0, .top_p = 1, .seed = 1}, 4000, count) == V,
          "unfiltered sampling should reach every id");
    CHECK(histogram((sampler_params){.temp = 1, .top_k = 2, .top_p = 1, .seed = 2}, 2000, count) == 2 && count[1] &&
              count[4], "top-k 2 keeps ids 1 and 4");
    CHECK(histogram((sampler_params){.temp = 1, .top_k = 0, .top_p = 0.5f, .seed = 3}, 2000, count) == 2,
          "top-p 0.5 keeps the two tied top ids (0.36 each)");
    // HF's order: top-p over the top-k survivors, renormalised. Top-3 are 0.384, 0.384, 0.233 of their own mass:
    // top-p 0.75 keeps 2 (over the whole vocabulary they are 0.355, 0.355, 0.215: it would keep 3)
    CHECK(histogram((sampler_params){.temp = 1, .top_k = 3, .top_p = 0.75f, .seed = 6}, 2000, count) == 2 && !count[2],
          "top-k 3 then top-p 0.75 keeps ids 1 and 4");
    // min-p 0.5: keep p >= 0.5 p_max, i.e. logit >= 3 - ln 2 = 2.31: ids 1, 4, 2
    CHECK(histogram((sampler_params){.temp = 1, .top_k = 0, .top_p = 1, .min_p = 0.5f, .seed = 4}, 2000, count) == 3 &&
              count[2] && !count[0], "min-p 0.5 keeps ids 1, 2, 4");
    // a very low temperature is greedy in all but name
    CHECK(histogram((sampler_params){.temp = 0.01f, .top_k = 0, .top_p = 1, .seed = 5}, 500, count) == 2,
          "temperature 0.01 keeps only the tied top ids");
}

static void same_seed_same_draws(void) {
    sampler a, b, c;
    sampler_params p = {.temp = 1, .top_k = 0, .top_p = 1, .seed = 42};
    sampler_init(&a, &p, V);
    sampler_init(&b, &p, V);
    p.seed = 43;
    sampler_init(&c, &p, V);
    int same = 1, differs = 0;
    for (int i = 0; i < 100; i++) {
        int x = sampler_sample(&a, logits), y = sampler_sample(&b, logits), z = sampler_sample(&c, logits);
        same &= x == y;
        differs |= x != z;
    }
    CHECK(same, "seed 42 twice gave different draws");
    CHECK(differs, "seeds 42 and 43 gave identical 100 draws");
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
}

// A row holding NaN or an infinity has no distribution: -1 (the sequence failed), never an id, for every rule.
static void non_finite_logits_give_minus_one(void) {
    sampler_params rules[] = {{.temp = 0}, {.temp = 1, .top_k = 0, .top_p = 1}, {.temp = 0.7f, .top_k = 3, .top_p = 0.9f, .min_p = 0.05f}};
    float bad[3] = {NAN, INFINITY, -INFINITY};
    for (size_t r = 0; r < sizeof rules / sizeof *rules; r++)
        for (int b = 0; b < 3; b++) {
            float row[V];
            memcpy(row, logits, sizeof row);
            row[2] = bad[b];
            sampler s;
            sampler_init(&s, &rules[r], V);
            int id = sampler_sample(&s, row);
            CHECK(id == -1, "rule %zu, value %g: got id %d", r, bad[b], id);
            CHECK(sampler_sample(&s, logits) >= 0, "a finite row still samples");
            sampler_free(&s);
        }
}

int main(void) {
    RUN(greedy_is_argmax_lowest_id_on_ties);
    RUN(filters_keep_only_what_they_allow);
    RUN(same_seed_same_draws);
    RUN(non_finite_logits_give_minus_one);
    return TEST_EXIT();
}
