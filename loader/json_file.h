// Reading small files whole, and JSON files into cJSON trees with errors that name the file.
#ifndef REPRISE_JSON_FILE_H
#define REPRISE_JSON_FILE_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "loader/error.h"

// What reprise reads whole, by kind of file: far above any real one, far below what would exhaust a machine (a
// "config.json" of 10 GB, -f /dev/zero or a FIFO that never ends is refused at the limit, naming it).
#define READ_LIMIT_JSON ((size_t)64 << 20)        // config.json, generation_config.json, tokenizer_config.json, indexes
#define READ_LIMIT_TOKENIZER ((size_t)1 << 30)    // tokenizer.json (the largest real ones are tens of MB)
#define READ_LIMIT_PROBE ((size_t)1 << 30)        // probe files
#define READ_LIMIT_PROMPT ((size_t)256 << 20)     // -f FILE: a prompt (a 1M-token context is about 4 MB)
#define READ_LIMIT_DATASET ((size_t)8 << 30)      // bench --dataset (ShareGPT's is 0.7 GB)
#define READ_LIMIT_SECRET ((size_t)1 << 20)       // --api-key-file

// Reads a whole file (NUL-terminated; *len excludes the NUL), at most limit bytes: a larger file, or a stream that
// goes past it, is an error naming the file, the limit and `kind`. Returns NULL and sets err on failure.
char *read_file_all(const char *path, size_t limit, const char *kind, size_t *len, rp_err *err);

// Parses a JSON file of at most READ_LIMIT_JSON bytes. Returns NULL and sets err (naming the file and byte offset)
// on failure.
cJSON *json_parse_file(const char *path, rp_err *err);

// Parses JSON text of a known length; `what` names the source in errors.
cJSON *json_parse_text(const char *text, size_t len, const char *what, rp_err *err);

// Does a file exist (and is it a regular file)?
int file_exists(const char *path);

// An output directory a long run will write in: made when missing (its parents too), and named now when it cannot be
// made or written, with `flag` (the option that gave it) and `why` (what it holds), not when the run ends.
int dir_make_writable(const char *dir, const char *flag, const char *why, rp_err *err);

// dir + "/" + name into a fresh heap string.
char *path_join(const char *dir, const char *name);

#endif
