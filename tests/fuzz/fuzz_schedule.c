// Fuzz target: the schedule syntax (reprise's ranges, rys:I,J[,K] blocks joined by '+', ExLlamaV3's layer_map,
// PEFT's layer_replication). The first byte is the layer count (1..256); the rest is the text. Parsing must fail
// with a message or give visits that are all layers of the model, and its range form must parse to the same.
#include <stdlib.h>
#include <string.h>

#include "engine/schedule.h"
#include "fuzz_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    int n_layers = 1 + data[0];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    schedule s;
    rp_err err;
    if (schedule_parse(&s, text, n_layers, &err) == 0) {
        if (s.n_visits < 1) abort();
        for (int v = 0; v < s.n_visits; v++)
            if (s.layer[v] < 0 || s.layer[v] >= n_layers) abort();
        char *again = schedule_text(&s);
        schedule t;
        if (schedule_parse(&t, again, n_layers, &err) || t.n_visits != s.n_visits ||
            memcmp(t.layer, s.layer, sizeof *s.layer * (size_t)s.n_visits))
            abort();   // the range form is the same schedule
        schedule_free(&t);
        free(again);
        schedule_free(&s);
    } else if (!err.msg[0]) abort();
    free(text);
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
