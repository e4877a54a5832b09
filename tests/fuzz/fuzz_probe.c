// Fuzz target: probe files. The first byte picks the kind (math, eq, mc, jsonl, bbh); the rest is the file. Loading
// (with a subset of 3 items drawn, as --items does) must fail with a message or give items that score a few
// replies to a number in [0, 1]; the log-likelihood view must then load or be refused with a message.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_target.h"
#include "tools/sweep/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *kinds[] = {"math", "eq", "mc", "jsonl", "bbh"};
    const char *path = fuzz_write("probe", data + 1, size - 1);
    char spec[600];
    snprintf(spec, sizeof spec, "%s:%s", kinds[data[0] % 5], path);
    probe p;
    rp_err err;
    if (probe_load(&p, spec, 3, 0, 0, &err)) return 0;
    const char *replies[] = {"", "42", "Sad: 5\nHappy: 0\nAngry: 3\nCalm: 2", "B", "12345678901234567890123456789"};
    for (int i = 0; i < p.n_items && i < 8; i++)
        for (int r = 0; r < 5; r++) {
            double s = probe_score_reply(&p, &p.items[i], replies[r]);
            if (!(s >= 0 && s <= 1)) abort();
        }
    if (probe_use_loglik(&p, &err) && !err.msg[0]) abort();
    probe_free(&p);
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
