// Fuzz target for tokenizer.json loading and encoding (libFuzzer entry point; tests/fuzz/driver.c runs it without, on tests/fuzz/corpus/tokenizer).
//
// The first input byte picks the mode. Mode 0: the rest is a tokenizer.json; loading must fail cleanly or give a
// tokenizer that can encode and decode a fixed text. Mode 1: the rest is text for the byte-level tokenizers
// without a normalizer (the test fixture, and ../shared's gpt2 and llama3 when present); valid UTF-8 must come
// back unchanged from decode(encode(text)), and invalid UTF-8 must be refused with an error.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "loader/json_file.h"
#include "loader/tokenizer.h"
#include "loader/utf8.h"

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "tests/fixtures"
#endif
#ifndef SHARED_DIR
#define SHARED_DIR "../shared"
#endif

static tokenizer *roundtrip[3];
static int n_roundtrip = -1;

static void load_roundtrip_tokenizers(void) {
    const char *paths[] = {FIXTURES_DIR "/bytelevel_tokenizer.json", SHARED_DIR "/tokenizers/gpt2/tokenizer.json",
                           SHARED_DIR "/tokenizers/llama3/tokenizer.json"};
    n_roundtrip = 0;
    for (int i = 0; i < 3; i++) {
        rp_err err;
        if (!file_exists(paths[i])) continue;
        if (!(roundtrip[n_roundtrip] = tokenizer_load(paths[i], &err))) {
            fprintf(stderr, "fuzz: %s\n", err.msg);
            abort();
        }
        n_roundtrip++;
    }
}

// libFuzzer calls this once before any input: loading the real tokenizers (seconds under ASan) is not an input's
// time, which -timeout limits. The deterministic driver does not call it; the first input loads them then.
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_roundtrip_tokenizers();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (n_roundtrip < 0) load_roundtrip_tokenizers();
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    rp_err err;
    if (data[0] % 2 == 0) {
        tokenizer *t = tokenizer_load_text(text, len, "fuzz", &err);
        if (t) {
            int *ids, n;
            if (tokenizer_encode(t, "Hello, world! 123", 17, 1, &ids, &n, &err) == 0) {
                char *out;
                size_t ol;
                for (int i = 0; i < n; i++)   // ids past the vocabulary would be a bug in encode
                    if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(t)) abort();
                if (tokenizer_decode(t, ids, n, 0, &out, &ol, &err) == 0) free(out);
                free(ids);
            }
            tokenizer_free(t);
        }
        return 0;
    }
    int valid = utf8_valid_prefix(text, len) == len;
    for (int k = 0; k < n_roundtrip; k++) {
        int *ids, n;
        int rc = tokenizer_encode(roundtrip[k], text, len, 0, &ids, &n, &err);
        if (rc != (valid ? 0 : -1)) abort();   // valid text encodes, invalid text is refused
        if (rc) continue;
        // special-token text (e.g. "<|endoftext|>") maps to a special id, which decodes back to the same text
        char *out;
        size_t ol;
        if (tokenizer_decode(roundtrip[k], ids, n, 0, &out, &ol, &err)) abort();
        if (ol != len || memcmp(out, text, len) != 0) {
            fprintf(stderr, "round trip failed on tokenizer %d for %zu bytes\n", k, len);
            abort();
        }
        free(out);
        free(ids);
    }
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
