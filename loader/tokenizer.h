// HuggingFace tokenizer.json: text to token ids and back, for byte-level and SentencePiece-style BPE tokenizers.
#ifndef REPRISE_TOKENIZER_H
#define REPRISE_TOKENIZER_H

#include <stddef.h>

#include "loader/error.h"

typedef struct tokenizer tokenizer;

// Loads a tokenizer.json. An unsupported normalizer, pre-tokenizer, model, post-processor or decoder is an
// error that names it.
tokenizer *tokenizer_load(const char *path, rp_err *err);
// The same from JSON text in memory; `path` only names it in errors.
tokenizer *tokenizer_load_text(const char *json, size_t len, const char *path, rp_err *err);
void tokenizer_free(tokenizer *t);

// Encodes UTF-8 text of length len (NUL bytes allowed). add_special: apply the post-processor's template (BOS).
// Added and special tokens written in the text are matched either way. Invalid UTF-8 is an error naming the offset.
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special, int **ids, int *n, rp_err *err);

// Decodes ids into a heap string (NUL-terminated; *len excludes it). skip_special drops special tokens.
// Bytes that do not form UTF-8 come out as U+FFFD, as in HF tokenizers. An id the tokenizer has no token for (Qwen
// pads its embedding rows past the tokenizer's vocabulary; a model may sample one) decodes to the visible
// placeholder "<|reprise:id=N|>"; a negative id is an error.
int tokenizer_decode(const tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, rp_err *err);

// Decodes ids as the continuation of context: the text decode(context + ids) has past decode(context), read from a
// window of the context's last tokens. A completion decoded alone would lose its first space to a SentencePiece
// decoder's strip-at-start step ("The dog" + " was" read as "was").
int tokenizer_decode_after(const tokenizer *t, const int *context, int n_context, const int *ids, int n, int skip_special,
                           char **out, size_t *len, rp_err *err);

// Does decoded text end in U+FFFD, the first bytes of a character a later byte token may complete?
int tokenizer_text_incomplete(const char *s, size_t n);

// Number of ids (model vocabulary and added tokens).
int tokenizer_vocab_size(const tokenizer *t);
// Id of a token's exact text (vocabulary or added token), -1 if none.
int tokenizer_token_id(const tokenizer *t, const char *text);
int tokenizer_is_special(const tokenizer *t, int id);

// Streaming detokenization: feed ids one by one and get back only text that is final, never half of a UTF-8
// sequence (and never a prefix that a later token could change, such as a stripped leading space).
typedef struct {
    const tokenizer *t;
    int skip_special;
    int *ids;
    int n, cap;
    int prefix_start;      // ids[prefix_start..] are decoded together to get context right
    int read_start;        // ids[read_start..] have not been printed yet
} detok_stream;

void detok_stream_init(detok_stream *s, const tokenizer *t, int skip_special);
// The same for text that continues context (a prompt): the first token reads as it does after it.
void detok_stream_init_after(detok_stream *s, const tokenizer *t, int skip_special, const int *context, int n_context);
// Appends id; returns a heap string with the newly final text (possibly empty), or NULL on error.
char *detok_stream_push(detok_stream *s, int id, rp_err *err);
// Whatever is still held back (an incomplete sequence at the end of generation, as U+FFFD).
char *detok_stream_flush(detok_stream *s, rp_err *err);
void detok_stream_free(detok_stream *s);

#endif
