// Reading safetensors checkpoints through mmap, single-file or sharded, with every rule of the format checked.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data section. Each header
// entry is {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data section;
// "__metadata__" holds free-form strings. We check, as the reference implementation does: N within the file
// and below a bound, the header a well-formed JSON object, dtypes known, shape x dtype size == end - begin,
// offsets inside the data section, tensors non-overlapping and together covering the data section exactly.
#include "loader/safetensors.h"
#include "loader/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/json_file.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[ST_N_DTYPES] = {
    [ST_BOOL] = {"BOOL", 1},  [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},     [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_I16] = {"I16", 2}, [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},  [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4},
    [ST_I64] = {"I64", 8},    [ST_U64] = {"U64", 8}, [ST_F64] = {"F64", 8},
};

const char *st_dtype_name(st_dtype t) { return t < ST_N_DTYPES ? dtype_info[t].name : "?"; }
size_t st_dtype_size(st_dtype t) { return t < ST_N_DTYPES ? dtype_info[t].size : 0; }

int st_dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

int64_t st_numel(const st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

// A JSON number that is a non-negative integer representable exactly (below 2^53).
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    if (x->data != y->data) return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

// Parses one header entry into t (offsets relative to `data`, checked against data_size).
static int parse_entry(const cJSON *e, const char *path, const char *data, uint64_t data_size, st_tensor *t,
                       uint64_t *begin_out, rp_err *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return rp_fail(err, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return rp_fail(err, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (st_dtype_parse(dt->valuestring, &t->dtype))
        return rp_fail(err, "%s: tensor '%s': unknown dtype '%s'", path, name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return rp_fail(err, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS) return rp_fail(err, "%s: tensor '%s': %d dimensions (at most %d)", path, name, nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_uint(cJSON_GetArrayItem(shape, i), &d))
            return rp_fail(err, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;
        numel *= d;
    }
    size_t esz = st_dtype_size(t->dtype);
    if (overflow || numel > UINT64_MAX / esz)
        return rp_fail(err, "%s: tensor '%s': shape is too large", path, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return rp_fail(err, "%s: tensor '%s': \"data_offsets\" must be an array of 2 integers", path, name);
    uint64_t b, en;
    if (json_uint(cJSON_GetArrayItem(offs, 0), &b) || json_uint(cJSON_GetArrayItem(offs, 1), &en))
        return rp_fail(err, "%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    if (en < b) return rp_fail(err, "%s: tensor '%s': data_offsets end %llu before begin %llu", path, name,
                               (unsigned long long)en, (unsigned long long)b);
    if (en > data_size)
        return rp_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data section (%llu bytes)",
                       path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    if (en - b != numel * esz)
        return rp_fail(err, "%s: tensor '%s': shape x dtype size is %llu bytes but data_offsets span %llu", path, name,
                       (unsigned long long)(numel * esz), (unsigned long long)(en - b));
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    *begin_out = b;
    return 0;
}

// Checks that the tensors of one file tile its data section: sorted by offset, each starts where the last ended.
static int check_tiling(st_tensor *ts, int n, const char *data, uint64_t data_size, const char *path, rp_err *err) {
    st_tensor **order = rp_malloc(sizeof *order * (n ? n : 1));
    for (int i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, n, sizeof *order, cmp_by_offset);
    uint64_t at = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        uint64_t b = (uint64_t)((const char *)order[i]->data - data);
        if (b < at)
            rc = rp_fail(err, "%s: tensors '%s' and '%s' overlap", path, order[i - 1]->name, order[i]->name);
        else if (b > at)
            rc = rp_fail(err, "%s: tensor '%s' starts at %llu, leaving a gap after byte %llu", path, order[i]->name,
                         (unsigned long long)b, (unsigned long long)at);
        at = b + order[i]->nbytes;
    }
    if (!rc && at != data_size)
        rc = rp_fail(err, "%s: data section is %llu bytes but tensors cover %llu", path, (unsigned long long)data_size,
                     (unsigned long long)at);
    free(order);
    return rc;
}

// Maps one file and appends its tensors to the archive.
static int load_one(st_archive *a, const char *path, rp_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return rp_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return rp_fail(err, "%s: truncated: %zu bytes, a safetensors file needs at least 8", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return rp_fail(err, "%s: mmap failed: %s", path, strerror(errno));

    a->files = rp_realloc(a->files, sizeof *a->files * (a->n_files + 1));
    int fi = a->n_files++;
    a->files[fi] = (st_file){.path = rp_strdup(path), .map = map, .size = size};

    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER_BYTES)
        return rp_fail(err, "%s: header length %llu exceeds the %u-byte limit", path, (unsigned long long)hlen,
                       ST_MAX_HEADER_BYTES);
    if (hlen > size - 8)
        return rp_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes): truncated?", path,
                       (unsigned long long)hlen, size);
    if (hlen == 0 || p[8] != '{') return rp_fail(err, "%s: header does not start with '{'", path);
    char what[1100];
    snprintf(what, sizeof what, "%s: header", path);
    cJSON *h = json_parse_text((const char *)p + 8, hlen, what, err);
    if (!h) return -1;
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return rp_fail(err, "%s: header is not a JSON object", path);
    }
    const char *data = (const char *)p + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    int first = a->n_tensors, rc = 0;
    for (const cJSON *e = h->child; e && !rc; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) rc = rp_fail(err, "%s: __metadata__ is not an object", path);
            continue;
        }
        st_tensor t = {.file = fi};
        uint64_t begin;
        if ((rc = parse_entry(e, path, data, data_size, &t, &begin, err))) break;
        t.name = rp_strdup(e->string);
        a->tensors = rp_realloc(a->tensors, sizeof *a->tensors * (a->n_tensors + 1));
        a->tensors[a->n_tensors++] = t;
    }
    cJSON_Delete(h);
    if (rc) return rc;
    return check_tiling(a->tensors + first, a->n_tensors - first, data, data_size, path, err);
}

// Sorts tensors by name and rejects a name given twice (within a file or across shards).
static int finish(st_archive *a, rp_err *err) {
    qsort(a->tensors, a->n_tensors, sizeof *a->tensors, cmp_by_name);
    for (int i = 1; i < a->n_tensors; i++)
        if (strcmp(a->tensors[i].name, a->tensors[i - 1].name) == 0)
            return rp_fail(err, "%s: tensor '%s' is defined twice", a->files[a->tensors[i].file].path,
                           a->tensors[i].name);
    return 0;
}

int st_open_file(st_archive *a, const char *path, rp_err *err) {
    memset(a, 0, sizeof *a);
    if (load_one(a, path, err) || finish(a, err)) {
        st_close(a);
        return -1;
    }
    return 0;
}

static int open_sharded(st_archive *a, const char *dir, const char *index_path, rp_err *err) {
    cJSON *idx = json_parse_file(index_path, err);
    if (!idx) return -1;
    int rc = 0;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(map)) rc = rp_fail(err, "%s: missing \"weight_map\" object", index_path);
    // Open each shard once, in order of first mention.
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = rp_fail(err, "%s: weight_map entry '%s' is not a file name", index_path, e->string);
            break;
        }
        const char *fname = e->valuestring;
        if (strchr(fname, '/') || strcmp(fname, "..") == 0 || !*fname) {
            rc = rp_fail(err, "%s: weight_map entry '%s' names '%s', which is not a plain file name", index_path,
                         e->string, fname);
            break;
        }
        char *full = path_join(dir, fname);
        int seen = 0;
        for (int f = 0; f < a->n_files && !seen; f++) seen = strcmp(a->files[f].path, full) == 0;
        if (!seen) rc = load_one(a, full, err);
        free(full);
    }
    if (!rc) rc = finish(a, err);
    // Every tensor the index names must be in the shard it names.
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        const st_tensor *t = st_find(a, e->string);
        char *full = path_join(dir, e->valuestring);
        if (!t)
            rc = rp_fail(err, "%s: tensor '%s' is listed in the index but absent from %s", index_path, e->string,
                         e->valuestring);
        else if (strcmp(a->files[t->file].path, full) != 0)
            rc = rp_fail(err, "%s: tensor '%s' is listed in %s but stored in %s", index_path, e->string, e->valuestring,
                         a->files[t->file].path);
        free(full);
    }
    cJSON_Delete(idx);
    return rc;
}

int st_open_dir(st_archive *a, const char *dir, rp_err *err) {
    memset(a, 0, sizeof *a);
    char *index = path_join(dir, "model.safetensors.index.json");
    char *single = path_join(dir, "model.safetensors");
    int rc;
    if (file_exists(index))
        rc = open_sharded(a, dir, index, err);
    else if (file_exists(single))
        rc = load_one(a, single, err) || finish(a, err) ? -1 : 0;
    else
        rc = rp_fail(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(index);
    free(single);
    if (rc) st_close(a);
    return rc;
}

void st_close(st_archive *a) {
    for (int i = 0; i < a->n_files; i++) {
        munmap(a->files[i].map, a->files[i].size);
        free(a->files[i].path);
    }
    for (int i = 0; i < a->n_tensors; i++) free(a->tensors[i].name);
    free(a->files);
    free(a->tensors);
    memset(a, 0, sizeof *a);
}

const st_tensor *st_find(const st_archive *a, const char *name) {
    st_tensor key = {.name = (char *)name};
    return bsearch(&key, a->tensors, a->n_tensors, sizeof *a->tensors, cmp_by_name);
}

// ---- writing ----

static void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int cmp_out_name(const void *a, const void *b) {
    return strcmp((*(const st_out_tensor *const *)a)->name, (*(const st_out_tensor *const *)b)->name);
}

int st_write_file(const char *path, const st_out_tensor *t, int n, rp_err *err) {
    // Header text first, in memory, so its padded length is known before writing.
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    const st_out_tensor **sorted = rp_malloc(sizeof *sorted * (n ? n : 1));
    uint64_t *begin = rp_malloc(sizeof *begin * (n ? n : 1));
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        sorted[i] = &t[i];
        begin[i] = at;
        at += t[i].nbytes;
    }
    qsort(sorted, n, sizeof *sorted, cmp_out_name);
    fputs("{\"__metadata__\":{\"format\":\"pt\"}", h);
    for (int i = 0; i < n; i++) {
        const st_out_tensor *o = sorted[i];
        uint64_t b = begin[o - t];
        fputc(',', h);
        json_escape(h, o->name);
        fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(o->dtype));
        for (int d = 0; d < o->ndim; d++) fprintf(h, "%s%lld", d ? "," : "", (long long)o->shape[d]);
        fprintf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)b, (unsigned long long)(b + o->nbytes));
    }
    fputc('}', h);
    while ((ftell(h) % 8) != 0) fputc(' ', h);
    fclose(h);
    free(sorted);
    free(begin);

    char *tmp = rp_malloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = rp_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
        int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen;
        for (int i = 0; i < n && ok && !rc; i++) {
            int fills = !t[i].data && t[i].fill;
            void *made = fills ? malloc(t[i].nbytes ? t[i].nbytes : 1) : NULL;
            if (fills && !made) rc = rp_fail(err, "out of memory making tensor '%s' (%zu bytes)", t[i].name, t[i].nbytes);
            else if (made && t[i].fill(t[i].source, made, err)) rc = rp_wrap(err, "tensor '%s'", t[i].name);
            else ok = !t[i].nbytes || fwrite(made ? made : t[i].data, 1, t[i].nbytes, f) == t[i].nbytes;
            free(made);
        }
        if (fclose(f) != 0) ok = 0;
        if (!rc && !ok) rc = rp_fail(err, "%s: write failed: %s", tmp, strerror(errno));
        else if (!rc && rename(tmp, path)) rc = rp_fail(err, "%s: cannot rename into place: %s", path, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    free(hdr);
    return rc;
}
