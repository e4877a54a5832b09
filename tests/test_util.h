// A minimal test harness: named checks that print the first failing value and where, counted skips, and temp
// directories. Every test run by RUN must make a check or say why it skipped (SKIP): one that did neither could never
// fail, and fails. A program that skipped anything and failed nothing exits 77, which ctest shows as skipped.
#ifndef REPRISE_TEST_UTIL_H
#define REPRISE_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures = 0;
static long test_checks = 0;   // checks made (CHECK), all tests
static int test_skips = 0;     // skips said (SKIP), all tests

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        test_checks++;                                                                         \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            test_failures++;                                                                   \
        }                                                                                      \
    } while (0)

// A part of a test that cannot run here (its data or a tool is absent): says why, and counts.
#define SKIP(...)                                                                              \
    do {                                                                                       \
        fprintf(stderr, "  skip: ");                                                           \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fprintf(stderr, "\n");                                                                 \
        test_skips++;                                                                          \
    } while (0)

// TEST_ONLY=NAME runs only the tests whose name contains NAME (while working on one).
#define RUN(test)                                                                              \
    do {                                                                                       \
        const char *only_ = getenv("TEST_ONLY");                                               \
        if (only_ && !strstr(#test, only_)) break;                                             \
        int before_ = test_failures, skips_ = test_skips;                                      \
        long checks_ = test_checks;                                                            \
        test();                                                                                \
        if (test_checks == checks_ && test_skips == skips_) {                                  \
            fprintf(stderr, "%s: made no check and said no skip\n", #test);                   \
            test_failures++;                                                                   \
        }                                                                                      \
        fprintf(stderr, "%s %s\n",                                                             \
                test_failures != before_ ? "FAIL" : test_skips != skips_ ? "skip" : "ok  ", #test); \
    } while (0)

// The program's exit code: 1 when a check failed, else 77 (ctest: skipped) when a part was skipped, else 0.
#define TEST_EXIT()                                                                            \
    (test_failures ? (fprintf(stderr, "%d check(s) failed\n", test_failures), 1)               \
     : test_skips  ? (fprintf(stderr, "%ld checks passed, %d part(s) skipped\n", test_checks, test_skips), TEST_SKIP) \
                   : 0)

// Exit code ctest reads as "skipped" (SKIP_RETURN_CODE 77).
#define TEST_SKIP 77

// Largest |a - b| over n floats; *where gets its index.
static inline float max_abs_diff(const float *a, const float *b, size_t n, size_t *where) {
    float worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > worst || d != d) {
            worst = d != d ? INFINITY : d;
            at = i;
        }
    }
    if (where) *where = at;
    return worst;
}

// A fresh directory under $TMPDIR (or /tmp); the caller frees the string.
static inline char *make_temp_dir(const char *tag) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *p = (char *)malloc(strlen(base) + strlen(tag) + 32);
    sprintf(p, "%s/reprise-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        exit(1);
    }
    return p;
}

static inline void remove_tree(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline float *read_f32_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = (float *)malloc((size_t)sz + 4);
    size_t got = fread(p, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        free(p);
        return NULL;
    }
    *n = (size_t)sz / sizeof(float);
    return p;
}

#endif
