// A run cut into --ubatch windows, shared by the CPU and CUDA tests: prompts of three sequences with different
// schedules on the llama fixture, every row's logits, then 4 decode steps.
#ifndef REPRISE_TEST_UBATCH_RUN_H
#define REPRISE_TEST_UBATCH_RUN_H

#include <stdlib.h>

#include "engine/forward.h"
#include "engine/model.h"

#define UBATCH_RUN_ROWS (11 + 8 + 11 + 4 * 3)   // prompt rows, then 3 last-row logits per decode step

// The logits of the run on `backend` with windows of `ubatch` rows (0: one window), UBATCH_RUN_ROWS x vocab floats
// (malloc'd; *vocab set), or NULL with err set.
static float *ubatch_run(const char *backend, int ubatch, int *vocab, rp_err *err) {
    const char *names[3] = {"base", "rys:1,3", "0,2,1,3"};
    int prompts[3][11], n_feed[3] = {11, 8, 11}, one[3] = {1, 1, 1}, next[3];
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 11; t++) prompts[i][t] = (7 * t + 13 * i + 1) % 90;
    plan_shape shape = {};   // defaults but the rows of a step
    shape.ubatch = ubatch;
    model m;
    if (model_load_planned(&m, FIXTURES_DIR "/llama", backend, 2, &shape, 0, err)) return NULL;
    int v = *vocab = m.cfg.vocab_size, rc = 0;
    schedule s[3];
    sequence seqs[3], *ptrs[3];
    const int *feed[3];
    for (int i = 0; i < 3; i++) {
        schedule_parse(&s[i], names[i], m.cfg.n_layers, err);
        sequence_init(&seqs[i], &m, &s[i], 24, err);
        ptrs[i] = &seqs[i], feed[i] = prompts[i];
    }
    float *out = (float *)malloc(sizeof(float) * UBATCH_RUN_ROWS * (size_t)v);
    rc = forward(&m, ptrs, 3, feed, n_feed, 1, out, NULL, err);
    for (int step = 0; step < 4 && !rc; step++) {
        for (int i = 0; i < 3; i++) next[i] = (step * 5 + i) % 90 + 1, feed[i] = &next[i];
        rc = forward(&m, ptrs, 3, feed, one, 0, out + (size_t)(30 + 3 * step) * v, NULL, err);
    }
    for (int i = 0; i < 3; i++) sequence_free(&seqs[i], &m), schedule_free(&s[i]);
    model_free(&m);
    if (rc) free(out);
    return rc ? NULL : out;
}

#endif
