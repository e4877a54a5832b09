// Searching a config space without measuring all of it on every item: successive halving.
#ifndef REPRISE_SWEEP_SEARCH_H
#define REPRISE_SWEEP_SEARCH_H

#include "tools/sweep/run.h"

// Successive halving over r->configs (base first): every config on the first start_items items of each probe, the
// better half by the report's balanced score on twice as many, and so on; the last rung runs all of each probe's
// items. Rows go to r->db as a grid sweep's do, so a rerun (after a kill too) re-ranks the same rows, keeps the
// same configs and measures only what is missing. Prints each rung's size and survivors on stderr.
int sweep_halving(sweep_run *r, int start_items, rp_err *err);

#endif
