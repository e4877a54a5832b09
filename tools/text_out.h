// Generated text as it becomes final: detokenized token by token, cut at the first stop string, with a tail that
// could still begin one held back (the command line's generate and chat, and the server, all print this way).
#ifndef REPRISE_TEXT_OUT_H
#define REPRISE_TEXT_OUT_H

#include <stddef.h>

#include "loader/tokenizer.h"

typedef struct {
    detok_stream ds;
    const char *const *stops;   // not owned
    int n_stops;
    char *text;                 // all text so far, cut at the stop string once one is hit (NUL-terminated)
    size_t len;
    size_t committed;           // text[0..committed) is final: it will never change or be cut
    int stopped;                // a stop string was hit
} text_out;

// prompt: the ids the text continues (a completion reads as it does after them; "The dog" + " was", not "was").
void text_out_init(text_out *t, const tokenizer *tok, const int *prompt, int n_prompt, const char *const *stops, int n_stops);
// Adds a generated token. Returns -1 (with err) when it cannot be decoded.
int text_out_push(text_out *t, int id, rp_err *err);
// The generation has ended (end-of-sequence or a limit): whatever the stream held back becomes final text.
int text_out_finish(text_out *t, rp_err *err);
void text_out_free(text_out *t);

#endif
