// Reading small files whole, and JSON files into cJSON trees with errors that name the file.
#ifndef REPRISE_JSON_FILE_H
#define REPRISE_JSON_FILE_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "loader/error.h"

// Reads a whole file (NUL-terminated; *len excludes the NUL). Returns NULL and sets err on failure.
char *read_file_all(const char *path, size_t *len, rp_err *err);

// Parses a JSON file. Returns NULL and sets err (naming the file and byte offset) on failure.
cJSON *json_parse_file(const char *path, rp_err *err);

// Parses JSON text of a known length; `what` names the source in errors.
cJSON *json_parse_text(const char *text, size_t len, const char *what, rp_err *err);

// Does a file exist (and is it a regular file)?
int file_exists(const char *path);

// dir + "/" + name into a fresh heap string.
char *path_join(const char *dir, const char *name);

#endif
