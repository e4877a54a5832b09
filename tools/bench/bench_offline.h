// `reprise bench` without --serve: llama-bench's tests (prompt processing, generation, both, at a depth) for several
// schedules side by side, each figure beside its roofline.
#ifndef REPRISE_BENCH_OFFLINE_H
#define REPRISE_BENCH_OFFLINE_H

#include "engine/memory_plan.h"

#define BENCH_MAX_LIST 32

typedef struct {
    const char *model_dir, *backend;
    int threads, tp;
    int allow_unused_tensors;                    // --allow-unused-tensors
    kv_dtype kv_dtype;                           // --kv-dtype
    weights_format weights;                      // --weights
    int prompts[BENCH_MAX_LIST], n_prompts;      // -p
    int gens[BENCH_MAX_LIST], n_gens;            // -n
    int pg[BENCH_MAX_LIST][2], n_pg;             // -pg N,M
    int depths[BENCH_MAX_LIST], n_depths;        // -d
    int batches[BENCH_MAX_LIST], n_batches;      // -b: independent sequences run together
    int reps;                                    // -r
    int warmup;                                  // one untimed run per test first
    char *schedules[BENCH_MAX_LIST];             // --schedule "base;rys:2,4"
    int n_schedules;
    const char *draft;                           // --draft: each generation test again with this draft (or NULL)
    int draft_tokens;                            // --draft-tokens (0: adapted)
    const char *format;                          // md, csv, json, jsonl
    const char *gpu;                             // --gpu: rooflines alone, for that GPU, when none is here
} bench_opts;

// Runs every test and prints the table to stdout, progress to stderr. 0, or 1 with the error printed.
int bench_offline(const bench_opts *o);

#endif
