// Fuzz target: the safetensors header (mode 0: the input is a model.safetensors) and the shard index (mode 1: the
// input is model.safetensors.index.json, beside a valid one-tensor shard). Opening must fail with a message or
// give tensors that lie inside the file; every tensor is then read end to end.
#include <string.h>

#include "fuzz_target.h"
#include "loader/safetensors.h"

static const char shard_header[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

static void read_all(const st_archive *a) {
    volatile unsigned char sink = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const unsigned char *p = a->tensors[i].data;
        for (size_t b = 0; b < a->tensors[i].nbytes; b++) sink ^= p[b];   // ASan: every byte is inside the mapping
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    st_archive a;
    rp_err err;
    if (data[0] % 2 == 0) {
        const char *path = fuzz_write("one.safetensors", data + 1, size - 1);
        if (st_open_file(&a, path, &err) == 0) read_all(&a), st_close(&a);
        return 0;
    }
    // a shard dir: the input as the index, and a valid shard it may name
    unsigned char shard[8 + sizeof shard_header - 1 + 16] = {0};
    shard[0] = (unsigned char)(sizeof shard_header - 1);
    memcpy(shard + 8, shard_header, sizeof shard_header - 1);
    fuzz_write("model-00001-of-00001.safetensors", shard, sizeof shard);
    fuzz_write("model.safetensors.index.json", data + 1, size - 1);
    if (st_open_dir(&a, fuzz_dir(), &err) == 0) read_all(&a), st_close(&a);
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
