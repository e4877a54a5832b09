// Runs the fuzz target without libFuzzer: deterministic random inputs built by mutating seeds, for ctest.
// usage: fuzz_driver [iterations] [seed]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 3000;
    rng = argc > 2 ? (uint64_t)atoll(argv[2]) : 12345;
    size_t seed_len = 0;
    rp_err err;
    char *tok_json = read_file_all(FIXTURES_DIR "/bytelevel_tokenizer.json", READ_LIMIT_TOKENIZER, "tokenizer.json", &seed_len, &err);
    if (!tok_json) return fprintf(stderr, "%s\n", err.msg), 1;
    const char *texts[] = {"Hello world", "  the\tthe\n\nthe  ", "naïve café 日本語 🦙 <|endoftext|>!", "12345 'll 've",
                           "\xf0\x9f\x98\x80\xe2\x80\x8d", "a\0b"};
    uint8_t *buf = malloc(seed_len + 4096);
    for (long it = 0; it < iters; it++) {
        size_t n;
        int mode = next() % 2;
        buf[0] = (uint8_t)mode;
        if (mode == 0) {   // a tokenizer.json with a few bytes changed, cut, or spliced
            memcpy(buf + 1, tok_json, seed_len);
            n = seed_len;
            int edits = 1 + next() % 8;
            for (int e = 0; e < edits; e++) {
                size_t at = next() % n;
                switch (next() % 3) {
                case 0: buf[1 + at] = (uint8_t)next(); break;
                case 1: n = at + 1; break;
                default: buf[1 + at] = "{}[]\",:0-\\"[next() % 10]; break;
                }
            }
        } else {   // text: seeds mixed with random bytes (random bytes make it invalid UTF-8 most of the time)
            n = 0;
            int parts = 1 + next() % 4;
            for (int p = 0; p < parts; p++) {
                if (next() % 4 == 0) {
                    int k = 1 + next() % 8;
                    for (int i = 0; i < k && n < 4000; i++) buf[1 + n++] = (uint8_t)next();
                } else {
                    int s = next() % 6;
                    size_t l = s == 5 ? 3 : strlen(texts[s]);
                    if (n + l < 4000) memcpy(buf + 1 + n, texts[s], l), n += l;
                }
            }
        }
        LLVMFuzzerTestOneInput(buf, n + 1);
    }
    free(buf);
    free(tok_json);
    printf("fuzz_driver: %ld inputs, no crash\n", iters);
    return 0;
}
