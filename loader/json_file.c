// Reading small files whole, and JSON files into cJSON trees with errors that name the file.
#include "loader/json_file.h"
#include "loader/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *read_file_all(const char *path, size_t limit, const char *kind, size_t *len, rp_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rp_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        rp_fail(err, "%s: is a directory, not %s", path, kind);
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > limit) {
        fclose(f);
        rp_fail(err, "%s: %lld bytes, more than the %zu MiB a %s may have", path, (long long)st.st_size, limit >> 20, kind);
        return NULL;
    }
    // read to the end, never past the limit: a stream (a FIFO, /dev/zero) has no size to check first
    size_t cap = 4096, n = 0;
    char *buf = rp_malloc(cap);
    int too_big = 0;
    for (;;) {
        if (n + 1 >= cap) {
            if (n >= limit) {
                too_big = 1;
                break;
            }
            cap = cap * 2 > limit + 2 ? limit + 2 : cap * 2;
            char *grown = realloc(buf, cap);
            if (!grown) break;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (n > limit) too_big = 1;
    int bad = ferror(f) || (n + 1 >= cap && !too_big && !feof(f));
    fclose(f);
    if (too_big || bad) {
        free(buf);
        if (too_big) rp_fail(err, "%s: more than the %zu MiB a %s may have (read stopped there)", path, limit >> 20, kind);
        else rp_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

cJSON *json_parse_text(const char *text, size_t len, const char *what, rp_err *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        rp_fail(err, "%s: malformed JSON near byte %zu", what, off);
        return NULL;
    }
    // cJSON stops after the first value; anything but whitespace after it is malformed.
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != 0) {
            cJSON_Delete(root);
            rp_fail(err, "%s: malformed JSON: trailing data at byte %zu", what, (size_t)(p - text));
            return NULL;
        }
    }
    return root;
}

cJSON *json_parse_file(const char *path, rp_err *err) {
    size_t len;
    char *text = read_file_all(path, READ_LIMIT_JSON, "JSON file of settings", &len, err);
    if (!text) return NULL;
    cJSON *root = json_parse_text(text, len, path, err);
    free(text);
    return root;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = rp_malloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int dir_make_writable(const char *dir, const char *flag, const char *why, rp_err *err) {
    char *p = rp_strdup(dir);
    for (char *s = p + 1; *s; s++) {   // the parents first, as mkdir -p
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            int e = errno;
            rp_fail(err, "%s %s: cannot create %s: %s", flag, dir, p, strerror(e));
            free(p);
            return -1;
        }
        *s = '/';
    }
    free(p);
    if (mkdir(dir, 0755) && errno != EEXIST) return rp_fail(err, "%s %s: cannot create: %s", flag, dir, strerror(errno));
    if (access(dir, W_OK | X_OK)) return rp_fail(err, "%s %s: cannot write there (%s): %s", flag, dir, strerror(errno), why);
    return 0;
}
