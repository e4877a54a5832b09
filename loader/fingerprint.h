// Content fingerprints: what a model or a probe set is, whatever path it was reached by (FNV-1a, 64 bits).
#ifndef REPRISE_FINGERPRINT_H
#define REPRISE_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "loader/error.h"
#include "loader/safetensors.h"

#define FINGERPRINT_SEED 0xcbf29ce484222325ull

// h extended by n bytes; a string (with its terminating zero, so "ab","c" and "a","bc" differ).
uint64_t fingerprint_bytes(uint64_t h, const void *p, size_t n);
uint64_t fingerprint_str(uint64_t h, const char *s);

// A model directory's fingerprint: config.json's values (parsed and printed compactly), every tensor's name, dtype, shape and size, and 4 KiB from
// the start, middle and end of each tensor's data (two fine-tunes of one base share every header; their weights
// differ everywhere, so the samples tell them apart). Reads about 12 KiB a tensor: milliseconds for a 72B model.
int fingerprint_model(const char *dir, const st_archive *a, uint64_t *out, rp_err *err);

#endif
