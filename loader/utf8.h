// UTF-8 helpers: validation, decoding, Rust-style lossy repair, and GPT-2's byte <-> character map.
#ifndef REPRISE_UTF8_H
#define REPRISE_UTF8_H

#include <stddef.h>
#include <stdint.h>

// Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0 when it is invalid or incomplete.
int utf8_seq_len(const unsigned char *s, size_t n);

// Index of the first byte that is not valid UTF-8, or n when all of s is valid.
size_t utf8_valid_prefix(const char *s, size_t n);

// Decodes one valid sequence (as checked by utf8_seq_len) into a code point.
uint32_t utf8_decode(const unsigned char *s, int len);

// Encodes a code point; returns its length (1..4).
int utf8_encode(uint32_t cp, char *out);

// Copies s into *out replacing each maximal invalid subsequence with U+FFFD, as Rust's
// String::from_utf8_lossy does. Returns the new length; *out is heap-allocated and NUL-terminated.
size_t utf8_lossy(const char *s, size_t n, char **out);

// GPT-2 byte-level map: the printable character standing for each byte, as a code point.
uint32_t byte_to_unicode(unsigned char b);
// Inverse of byte_to_unicode; -1 for a code point that stands for no byte.
int unicode_to_byte(uint32_t cp);

#endif
