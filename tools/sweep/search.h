// Searching a config space without measuring all of it on every item: successive halving, beam search, surrogate.
#ifndef REPRISE_SWEEP_SEARCH_H
#define REPRISE_SWEEP_SEARCH_H

#include <stdint.h>

#include "tools/sweep/blocks.h"
#include "tools/sweep/run.h"

// Successive halving over r->configs (base first): every config on the first start_items items of each probe, the
// better half by the report's balanced score on twice as many, and so on; the last rung runs all of each probe's
// items. Rows go to r->db as a grid sweep's do, so a rerun (after a kill too) re-ranks the same rows, keeps the
// same configs and measures only what is missing. Prints each rung's size and survivors on stderr.
int sweep_halving(sweep_run *r, int start_items, rp_err *err);

typedef struct {
    block_space space;   // what the search may propose
    int budget;          // most configs measured, the seed's included (base excluded)
    int beam;            // beam: configs kept and expanded each step
    int pool;            // surrogate: candidates ranked each round
    int round;           // surrogate: configs measured each round
    uint64_t seed;       // surrogate: the pool's random draws
} search_opts;

// Both searches first measure the seed, r->configs (the grid and configs the sweep's flags describe, base first),
// on every item; then, step by step, more configs, each on every item, until o->budget configs are measured, the
// time is up (r->deadline), or there is nothing new to propose. A config is never measured twice; every step is
// decided from the rows of the configs measured before it, so a rerun (after a kill too) retraces the same path.
//
// beam: the best o->beam configs by balanced score are expanded by blocks_moves (the partners of "add a block"
// are the best o->beam single blocks); every new config among their moves is measured.
int sweep_beam(sweep_run *r, const search_opts *o, rp_err *err);

// surrogate: a pool of o->pool configs (blocks_pool); each round trains the surrogate on every measured config's
// per-layer visit counts and balanced score, prints its Spearman correlation on a fifth of them held out, and
// measures the o->round unmeasured configs it ranks best.
int sweep_surrogate(sweep_run *r, const search_opts *o, rp_err *err);

#endif
