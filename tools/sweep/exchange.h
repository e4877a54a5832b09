// Sharded searches: each step's configs split over the shards, which trade their rows through a shared directory.
#ifndef REPRISE_SWEEP_EXCHANGE_H
#define REPRISE_SWEEP_EXCHANGE_H

#include "tools/sweep/run.h"

// Runs one step of a search: step's configs (base first) on its items. Unsharded (r->exchange NULL) that is
// sweep_run_all. Sharded, this shard measures the configs at positions K, K+N, ... of the step, writes
// their rows to r->exchange/step-S.shard-K-of-N.sqlite (complete, or not at all: built aside, then renamed),
// then waits for every other shard's file of the step and copies its rows into r->db (checked as a merge is:
// the same model, probes, items and reprise), so every shard ends the step with every row and decides the next
// step as the others do. A file whose step differs (other configs or items: shards given different flags) is
// refused, naming it. A rerun finds its own rows and the files already there, so a killed shard resumes. While it
// waits, --budget-hours and Ctrl-C stop it as they stop a step (r->timed_out, r->interrupted).
int sweep_run_step(sweep_run *r, const sweep_step *step, rp_err *err);

#endif
