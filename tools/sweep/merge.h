// Merging sweep databases: another database's rows, read-only, into this one, checked as a resumed sweep's are.
#ifndef REPRISE_SWEEP_MERGE_H
#define REPRISE_SWEEP_MERGE_H

#include "tools/sweep/db.h"

// Copies the meta, items, configs, results and failures of the database at path (opened read-only, never changed;
// someone else's: NULL columns and missing tables are errors naming them) into d; rows d has already are skipped,
// and a meta value or item that differs is refused. *added counts the results added.
int sweep_merge_one(sweep_db *d, const char *path, long *added, rp_err *err);

#endif
