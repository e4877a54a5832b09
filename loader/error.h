// User-facing errors: a message that names the file, tensor, token or field at fault.
#ifndef REPRISE_ERROR_H
#define REPRISE_ERROR_H

typedef struct rp_err {
    char msg[1024];
} rp_err;

// Formats the message into err (if not NULL) and returns -1, so callers can `return rp_fail(...)`.
int rp_fail(rp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prepends "prefix: " to an existing message (context added on the way up).
int rp_wrap(rp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
