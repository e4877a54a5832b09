// Runs a fuzz target without libFuzzer, for ctest: every file of the given directories (the seed corpus and the
// inputs that once crashed) as it is, then `iterations` inputs made by mutating them (bytes changed, cut, deleted,
// duplicated, or set to characters that matter to the format), from a fixed RNG seed: the same inputs every run.
// usage: fuzz_NAME ITERATIONS DIR [DIR ...]
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

typedef struct {
    uint8_t *data;
    size_t size;
} input;

static void add_dir(const char *path, input **in, int *n) {
    DIR *d = opendir(path);
    if (!d) return;   // a target may have no regression inputs yet
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        *in = realloc(*in, sizeof **in * (size_t)(*n + 1));
        input *x = &(*in)[(*n)++];
        x->size = size > 0 ? (size_t)size : 0;
        x->data = malloc(x->size + 1);
        if (fread(x->data, 1, x->size, f) != x->size) x->size = 0;
        fclose(f);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s ITERATIONS DIR [DIR ...]\n", argv[0]), 2;
    long iters = atol(argv[1]);
    input *in = NULL;
    int n = 0;
    for (int a = 2; a < argc; a++) add_dir(argv[a], &in, &n);
    if (!n) return fprintf(stderr, "%s: no seed inputs in %s\n", argv[0], argv[2]), 1;
    for (int i = 0; i < n; i++) LLVMFuzzerTestOneInput(in[i].data, in[i].size);
    static const char special[] = "{}[]\",:-0123456789.\\\n\0+ eE";
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    for (long it = 0; it < iters; it++) {
        const input *s = &in[next() % n];
        size_t size = s->size;
        if (size + 64 > cap) cap = size + 64, buf = realloc(buf, cap);
        memcpy(buf, s->data, size);
        int edits = 1 + next() % 8;
        for (int e = 0; e < edits && size > 0; e++) {
            size_t at = next() % size;
            switch (next() % 6) {
            case 0: buf[at] = (uint8_t)next(); break;
            case 1: buf[at] = (uint8_t)special[next() % (sizeof special - 1)]; break;
            case 2: size = at + (at < 1); break;   // cut
            case 3: {                               // delete a run
                size_t len = 1 + next() % 16;
                if (at + len > size) len = size - at;
                memmove(buf + at, buf + at + len, size - at - len);
                size -= len;
                break;
            }
            case 4: {                               // duplicate a run
                size_t len = 1 + next() % 16;
                if (at + len > size) len = size - at;
                if (size + len <= cap) memmove(buf + at + len, buf + at, size - at), size += len;
                break;
            }
            default: buf[at] ^= (uint8_t)(1u << (next() % 8)); break;
            }
        }
        LLVMFuzzerTestOneInput(buf, size);
    }
    for (int i = 0; i < n; i++) free(in[i].data);
    free(in), free(buf);
    fprintf(stderr, "%s: %d seed inputs and %ld mutations, no crash\n", argv[0], n, iters);
    return fuzz_run_check(n + iters);
}
