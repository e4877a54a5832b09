// The search space of beam and surrogate: block labels, moves and pools, Spearman's rho, and the surrogate learning a
// known function of the per-layer visit counts.
#include <math.h>

#include "engine/schedule.h"
#include "tools/common/stats.h"
#include "test_util.h"
#include "tools/sweep/blocks.h"
#include "tools/sweep/label_set.h"
#include "tools/sweep/surrogate.h"

// A label schedule_parse reads to the visits blocks_features counts, and blocks_from_label reads back.
static void labels_parse_to_their_features(const blocks *b, int n_layers) {
    char label[256];
    blocks_label(b, label, sizeof label);
    schedule s;
    rp_err err;
    CHECK(schedule_parse(&s, label, n_layers, &err) == 0, "%s: %s", label, err.msg);
    float f[128], g[128] = {0};
    blocks_features(b, n_layers, f);
    for (int v = 0; v < s.n_visits; v++) g[s.layer[v]] += 1;
    CHECK(s.n_visits == blocks_visits(b, n_layers), "%s: %d visits, blocks say %d", label, s.n_visits, blocks_visits(b, n_layers));
    for (int l = 0; l < n_layers; l++) CHECK(f[l] == g[l], "%s: layer %d: %g visits, schedule has %g", label, l, f[l], g[l]);
    blocks back;
    CHECK(blocks_from_label(label, &back) == 0 && back.n == b->n, "%s does not read back", label);
    for (int t = 0; t < b->n && t < back.n; t++)
        CHECK(back.i[t] == b->i[t] && back.j[t] == b->j[t] && back.k[t] == b->k[t], "%s block %d reads back wrong", label, t);
    schedule_free(&s);
}

static void pool_is_distinct_valid_and_parses(void) {
    block_space sp = {.n_layers = 32, .max_blocks = 3, .max_passes = 4, .max_visits = 60};
    blocks *pool;
    int n = blocks_pool(&sp, 5000, 7, &pool);
    CHECK(n == 5000, "a pool of %d, asked for 5000 of a large space", n);
    label_set seen;
    label_set_init(&seen, n);
    int singles = 0, multi = 0;
    char label[256];
    for (int c = 0; c < n; c++) {
        CHECK(blocks_valid(&pool[c], &sp), "pool[%d] is not valid", c);
        blocks_label(&pool[c], label, sizeof label);
        CHECK(label_set_add(&seen, label), "%s is in the pool twice", label);
        if (c % 97 == 0) labels_parse_to_their_features(&pool[c], sp.n_layers);
        singles += pool[c].n == 1, multi += pool[c].n > 1;
    }
    int want_singles = 0;   // every [i, j) with k = 2..4 passes within 60 visits
    for (int i = 0; i < 32; i++)
        for (int j = i + 1; j <= 32; j++)
            for (int k = 2; k <= 4; k++) want_singles += 32 + (j - i) * (k - 1) <= 60;
    CHECK(singles == want_singles, "%d single blocks, want every one of %d", singles, want_singles);
    CHECK(multi > 0, "no multi-block configs");
    blocks *again;
    int m = blocks_pool(&sp, 5000, 7, &again);
    CHECK(m == n && !memcmp(pool, again, sizeof *pool * (size_t)n), "the same seed gives another pool");
    free(again), free(pool);
    label_set_free(&seen);
    // a small space ends when exhausted: 6 layers, one block of 2 passes, is the grid's 21 configs
    block_space tiny = {.n_layers = 6, .max_blocks = 1, .max_passes = 2, .max_visits = 12};
    CHECK(blocks_pool(&tiny, 1000, 0, &pool) == 21, "6 layers, one block: not the 21 configs of the grid");
    free(pool);
}

static void moves_stay_in_the_space(void) {
    block_space sp = {.n_layers = 10, .max_blocks = 2, .max_passes = 3, .max_visits = 16};
    blocks b = {.n = 1, .i = {3}, .j = {6}, .k = {2}}, partner = {.n = 1, .i = {7}, .j = {9}, .k = {2}}, out[64];
    int n = blocks_moves(&b, &sp, &partner, 1, out, 64);
    const char *want[] = {"rys:2,6", "rys:3,7", "rys:4,6", "rys:3,5", "rys:2,5", "rys:4,7", "rys:3,6,3", "rys:3,6+7,9"};
    CHECK(n == 8, "%d moves from rys:3,6, want 8", n);
    for (int m = 0; m < n && m < 8; m++) {
        char label[256];
        blocks_label(&out[m], label, sizeof label);
        CHECK(!strcmp(label, want[m]), "move %d is %s, want %s", m, label, want[m]);
        labels_parse_to_their_features(&out[m], sp.n_layers);
    }
    // at the edges and the visit limit: nothing outside the model, nothing over max_visits
    blocks edge = {.n = 1, .i = {0}, .j = {10}, .k = {2}};
    sp.max_visits = 19;
    n = blocks_moves(&edge, &sp, NULL, 0, out, 64);
    for (int m = 0; m < n; m++) CHECK(blocks_valid(&out[m], &sp), "an invalid move from rys:0,10");
    CHECK(n == 2, "rys:0,10 (20 visits; 19 allowed) has %d moves; want the two shrinks", n);
    CHECK(blocks_from_label("0-4,2-7", &b) == -1 && blocks_from_label("rys:1,2+", &b) == -1, "non-block labels read");
}

static void spearman_matches_scipy(void) {
    // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233 (ties averaged)
    double x[] = {1, 2, 3, 4, 5}, y[] = {5, 6, 7, 8, 7};
    CHECK(fabs(stats_spearman(x, y, 5) - 0.8207826816681233) < 1e-12, "rho = %.15f", stats_spearman(x, y, 5));
    double z[] = {3, 3, 3, 3, 3};
    CHECK(isnan(stats_spearman(x, z, 5)), "a constant gives a number");
}

// A score of the kind a sweep measures: a middle "reasoning" band gains from repeats, early layers lose, and too
// many extra visits hurt.
static double synthetic(const float *c, int N) {
    double s = 0, extra = 0;
    for (int l = 0; l < N; l++) {
        double w = exp(-((l - 20.0) / 4) * ((l - 20.0) / 4)) - (l < 8 ? 0.4 : 0);
        s += w * (c[l] - 1), extra += c[l] - 1;
    }
    return s - 0.002 * extra * extra;
}

static void surrogate_learns_a_known_objective(void) {
    int N = 32, n_train = 400, n_test = 400;
    block_space sp = {.n_layers = N, .max_blocks = 2, .max_passes = 3, .max_visits = 64};
    blocks *pool;
    int n = blocks_pool(&sp, 100000, 1, &pool);
    CHECK(n >= n_train + n_test, "a pool of %d", n);
    float *x = malloc(sizeof(float) * (size_t)(n_train + n_test) * N), *y = malloc(sizeof(float) * (size_t)n_train);
    double *truth = malloc(sizeof(double) * (size_t)n_test), *pred = malloc(sizeof(double) * (size_t)n_test);
    for (int r = 0; r < n_train + n_test; r++) {   // every 97th of the pool: singles and multi-blocks both
        blocks_features(&pool[(long)r * 97 % n], N, x + (size_t)r * N);
        if (r < n_train) y[r] = (float)synthetic(x + (size_t)r * N, N);
        else truth[r - n_train] = synthetic(x + (size_t)r * N, N);
    }
    surrogate *s;
    rp_err err;
    if (surrogate_fit(&s, x, y, n_train, N, &err)) {
        CHECK(strstr(err.msg, "without libxgboost") != NULL, "%s", err.msg);
        SKIP("%s", err.msg);
    } else {
        float *p = malloc(sizeof(float) * (size_t)n_test);
        CHECK(surrogate_predict(s, x + (size_t)n_train * N, n_test, p, &err) == 0, "%s", err.msg);
        for (int i = 0; i < n_test; i++) pred[i] = p[i];
        double rho = stats_spearman(pred, truth, n_test);
        fprintf(stderr, "surrogate: Spearman %.3f on %d held-out configs, trained on %d\n", rho, n_test, n_train);
        CHECK(rho >= 0.9, "Spearman %.3f < 0.9", rho);
        free(p);
        surrogate_free(s);
    }
    free(x), free(y), free(truth), free(pred), free(pool);
}

int main(void) {
    RUN(pool_is_distinct_valid_and_parses);
    RUN(moves_stay_in_the_space);
    RUN(spearman_matches_scipy);
    RUN(surrogate_learns_a_known_objective);
    return TEST_EXIT();
}
