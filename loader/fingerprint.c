// Content fingerprints: what a model or a probe set is, whatever path it was reached by (FNV-1a, 64 bits).
#include "loader/fingerprint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"

uint64_t fingerprint_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t fingerprint_str(uint64_t h, const char *s) { return fingerprint_bytes(h, s ? s : "", s ? strlen(s) + 1 : 1); }

#define SAMPLE 4096

int fingerprint_model(const char *dir, const st_archive *a, uint64_t *out, rp_err *err) {
    char *path = path_join(dir, "config.json");
    cJSON *config = json_parse_file(path, err);
    free(path);
    if (!config) return -1;
    char *canonical = cJSON_PrintUnformatted(config);   // its values, not its spacing: a re-written copy is the same model
    uint64_t h = fingerprint_str(FINGERPRINT_SEED, canonical);
    free(canonical);
    cJSON_Delete(config);
    for (int i = 0; i < a->n_tensors; i++) {   // sorted by name: the order of shards and headers does not matter
        const st_tensor *t = &a->tensors[i];
        int64_t head[2 + ST_MAX_DIMS] = {t->dtype, t->ndim};
        for (int d = 0; d < t->ndim; d++) head[2 + d] = t->shape[d];
        h = fingerprint_str(h, t->name);
        h = fingerprint_bytes(h, head, sizeof head);
        h = fingerprint_bytes(h, &t->nbytes, sizeof t->nbytes);
        size_t take = t->nbytes < SAMPLE ? t->nbytes : SAMPLE;
        const unsigned char *d = t->data;
        h = fingerprint_bytes(h, d, take);
        h = fingerprint_bytes(h, d + (t->nbytes - take) / 2, take);
        h = fingerprint_bytes(h, d + t->nbytes - take, take);
    }
    *out = h;
    return 0;
}
