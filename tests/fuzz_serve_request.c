// Fuzz target for reprise serve's request parsing (the JSON bodies of /v1/completions and /v1/chat/completions):
// whatever the bytes, a request is parsed or refused with a 4xx error, never a crash or a leak. Built as a libFuzzer
// binary with -DREPRISE_FUZZ=ON; in every build, main() below runs it on deterministic mutations of real bodies.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
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

#ifndef REPRISE_LIBFUZZER
static uint64_t rng = 12345;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    const char *seeds[] = {
        "\x00{\"prompt\": \"12+34=\", \"max_tokens\": 8, \"temperature\": 0, \"stop\": [\"=\", \"4\"], \"logit_bias\": {\"5\": 3}}",
        "\x00{\"prompt\": [[1, 5, 6], [1, 7]], \"echo\": true, \"logprobs\": 5, \"max_tokens\": 0, \"layer_schedule\": \"rys:2,4\"}",
        "\x00{\"prompt\": [\"a\", \"b\"], \"n\": 3, \"seed\": 7, \"top_p\": 0.5, \"top_k\": 3, \"min_p\": 0.1, \"stream\": true, "
        "\"stream_options\": {\"include_usage\": true}}",
        "\x01{\"messages\": [{\"role\": \"system\", \"content\": \"x\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", "
        "\"text\": \"1+1=\"}]}], \"logprobs\": true, \"top_logprobs\": 2, \"max_completion_tokens\": 4}",
    };
    const char alphabet[] = "{}[]\",:0123456789-.e\\ntfu ";
    uint8_t buf[4096];
    for (long it = 0; it < iters; it++) {
        const char *s = seeds[next() % 4];
        size_t n = 1 + strlen(s + 1);
        memcpy(buf, s, n);
        for (int k = next() % 3; k > 0; k--) {   // change, cut, insert or duplicate a few bytes
            size_t at = 1 + next() % (n - 1);
            switch (next() % 4) {
            case 0: buf[at] = (uint8_t)next(); break;
            case 1: buf[at] = (uint8_t)alphabet[next() % (sizeof alphabet - 1)]; break;
            case 2: n = at; break;
            default:
                if (n + 8 < sizeof buf) memmove(buf + at + 8, buf + at, n - at), memcpy(buf + at, buf + (at > 8 ? at - 8 : 1), 8), n += 8;
            }
            if (n < 2) n = 2;
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_serve_request: %ld inputs, %ld parsed into requests, the rest refused with a 4xx\n", iters, accepted);
    tokenizer_free(tok);
    return accepted > 0 && accepted < iters ? 0 : 1;
}
#endif
