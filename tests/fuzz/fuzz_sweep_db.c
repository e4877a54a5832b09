// Fuzz target: a sweep database written by someone else (what `sweep merge` reads). The input is the SQLite
// file; merging it into a fresh database must fail with a message or succeed, and the merged rows must rank.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_target.h"
#include "tools/sweep/db.h"
#include "tools/sweep/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = fuzz_write("in.sqlite", data, size);
    char out[600];
    snprintf(out, sizeof out, "%s/out.sqlite", fuzz_dir());
    unlink(out);
    sweep_db d;
    rp_err err;
    if (sweep_db_open(&d, out, &err)) abort();
    long added = 0;
    if (sweep_db_merge(&d, in, &added, &err) == 0) {
        char **labels;
        int n;
        if (sweep_top_configs(&d, 5, &labels, &n, &err) == 0) {
            for (int i = 0; i < n; i++) free(labels[i]);
            free(labels);
        }
    } else if (!err.msg[0]) abort();
    sweep_db_close(&d);
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
