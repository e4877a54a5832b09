// Fuzz target for reprise serve's request parsing (the JSON bodies of /v1/completions and /v1/chat/completions):
// whatever the bytes, a request is parsed or refused with a 4xx error, never a crash or a leak. Built as a libFuzzer
// binary with -DREPRISE_FUZZ=ON; in every build, tests/fuzz/driver.c runs it on tests/fuzz/corpus/serve_request
// (real bodies; the first byte picks /v1/completions or /v1/chat/completions) and deterministic mutations of them.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "loader/json_file.h"
#include "tools/serve/serve_request.h"

static model_config cfg;
static tokenizer *tok;
static chat_template ct;
static serve_context sc;
static long accepted;   // inputs parsed into a request (the driver checks that mutations still reach past the JSON)

static void setup(void) {
    if (tok) return;
    rp_err err;
    if (config_load(&cfg, DEFAULT_MODEL_DIR, &err) || !(tok = tokenizer_load(DEFAULT_MODEL_DIR "/tokenizer.json", &err)) ||
        chat_template_load(&ct, DEFAULT_MODEL_DIR, NULL, &err)) {
        fprintf(stderr, "fuzz_serve_request: %s\n", err.msg);
        exit(1);
    }
    sc = (serve_context){.cfg = &cfg, .tok = tok, .ct = &ct, .model_name = "default_model", .default_schedule = "base",
                         .ctx = 64, .kv_budget = 64 * 6 * 4, .max_visits = 12};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    if (size < 1) return 0;
    completion_request r;
    api_error e;
    if (completion_request_parse((const char *)data + 1, size - 1, data[0] & 1, &sc, &r, &e) == 0) {
        if (r.n_prompts < 1 || r.n < 1 || r.max_tokens < 0 || r.sched.n_visits > sc.max_visits) abort();
        for (int i = 0; i < r.n_prompts; i++)
            for (int t = 0; t < r.n_prompt[i]; t++)
                if (r.prompts[i][t] < 0 || r.prompts[i][t] >= cfg.vocab_size) abort();   // ids are checked
        completion_request_free(&r);
        accepted++;
    } else if (e.status < 400 || e.status > 499 || !e.message[0]) abort();   // refusals are 4xx with a message
    return 0;
}

// Mutations must still reach past the JSON into the checks of the fields, and not all of them may pass.
int fuzz_run_check(long inputs) {
    printf("fuzz_serve_request: %ld inputs, %ld parsed into requests, the rest refused with a 4xx\n", inputs, accepted);
    tokenizer_free(tok);
    return accepted > 0 && accepted < inputs ? 0 : 1;
}
