// Reading safetensors checkpoints through mmap, single-file or sharded, with every rule of the format checked.
#ifndef REPRISE_SAFETENSORS_H
#define REPRISE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "loader/error.h"

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E4M3, ST_F8_E5M2, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64, ST_N_DTYPES
} st_dtype;

#define ST_MAX_DIMS 8
// Headers beyond this are refused before any allocation (the reference implementation uses 100 MB too).
#define ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;   // points into the file's mapping
    size_t nbytes;
    int file;           // index into st_archive.files
} st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file;

typedef struct {
    int n_files;
    st_file *files;
    int n_tensors;
    st_tensor *tensors;  // sorted by name
} st_archive;

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);
int st_dtype_parse(const char *s, st_dtype *out);   // 0 if known
int64_t st_numel(const st_tensor *t);

// Opens one .safetensors file.
int st_open_file(st_archive *a, const char *path, rp_err *err);
// Opens a model directory: model.safetensors.index.json (sharded) or model.safetensors.
int st_open_dir(st_archive *a, const char *dir, rp_err *err);
void st_close(st_archive *a);

const st_tensor *st_find(const st_archive *a, const char *name);

// Writing: a tensor whose bytes come from memory, or are made when the writer reaches it (data NULL: fill writes
// the nbytes into dst, or fails with an error), so that a converted checkpoint is never whole in memory.
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
    int (*fill)(const void *source, void *dst, rp_err *err);
    const void *source;   // fill's argument
} st_out_tensor;

// Writes a safetensors file (tensors in the given order; header lists them sorted by name), atomically
// through a temporary file renamed into place.
int st_write_file(const char *path, const st_out_tensor *t, int n, rp_err *err);

#endif
